"""One definition of a test config and of a bundle: api.Config.copy (a template for many
containers), the plugin's oci_config (the base of every bundle, overridable in a conftest.py) and
bundle(name=), and tests/conftest.py's make_bundle/base_config built on them (spec defaults plus the
suite's own needs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pyruntime_tests_conftest import ROOTFS, base_config

from pyruntime import api, spec

pytest_plugins = ["pytester"]


def test_config_copy_is_independent() -> None:
    template = api.Config(rootfs="/srv/rootfs").env(A="1")
    copy = template.copy().args("sh").env(B="2").mount("/x", "tmpfs", "tmpfs")
    copy.process["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    assert template.data["process"]["args"] == ["sh"] and "B=2" not in template.data["process"]["env"]
    assert "CAP_SYS_ADMIN" not in template.data["process"]["capabilities"]["bounding"]
    assert all(m["destination"] != "/x" for m in template.data["mounts"])
    assert copy.data["root"]["path"] == "/srv/rootfs" and "A=1" in copy.data["process"]["env"]


def _suite_expected(args: list[str], cgroups_path: str) -> dict:
    """What tests/conftest.py promises: `pyruntime spec`'s defaults for the shared rootfs (no
    terminal) plus a /tmp tmpfs and CAP_SYS_ADMIN, with these args and cgroupsPath."""
    expected = spec.default_spec()
    expected["process"].update(terminal=False, args=args)
    for caps in expected["process"]["capabilities"].values():
        caps.append("CAP_SYS_ADMIN")
    expected["root"]["path"] = str(ROOTFS)
    expected["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev"]})
    expected["linux"]["cgroupsPath"] = cgroups_path
    return expected


def test_base_config_is_the_spec_default_plus_the_suites_needs() -> None:
    assert base_config(["echo", "hi"], "/cg/x") == _suite_expected(["echo", "hi"], "/cg/x")


def test_make_bundle_is_the_plugins_bundle(make_bundle, bundle, cgroup_parent, oci_cgroup_parent, state_root,
                                           oci_root, tmp_path) -> None:
    assert (cgroup_parent, state_root) == (oci_cgroup_parent, oci_root)  # one root, one leak check
    seen = []
    first = make_bundle(["sh", "-c", "true"], edit=lambda c: seen.append(type(c)) or c.update(hostname="h1"))
    assert seen == [dict]  # make_bundle's edits get the plain config.json dict
    second = bundle(["true"], name="named")
    assert (first, second) == (tmp_path / "b0", tmp_path / "named")
    config = json.loads((first / "config.json").read_text())
    expected = _suite_expected(["sh", "-c", "true"], f"{cgroup_parent}/b0")
    expected["hostname"] = "h1"
    assert config == expected
    assert json.loads((second / "config.json").read_text()) == _suite_expected(["true"], f"{cgroup_parent}/named")
    with pytest.raises(FileExistsError):
        bundle(["true"], name="named")


@pytest.mark.skipif(os.geteuid() != 0, reason="the plugin's fixtures make cgroups")
def test_an_oci_config_override_reaches_every_bundle(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
import pytest

@pytest.fixture
def oci_config(oci_config):
    return oci_config.hostname("suite").env(SUITE="1")
""")
    pytester.makepyfile(test_inner="""
import json

def test_bundles(bundle, oci_cgroup_parent):
    one = bundle(["true"], edit=lambda c: c.hostname("mine"))
    two = bundle(["sh"])
    a, b = (json.loads((p / "config.json").read_text()) for p in (one, two))
    assert (a["hostname"], b["hostname"]) == ("mine", "suite")  # one bundle's edit stays its own
    assert "SUITE=1" in a["process"]["env"] and "SUITE=1" in b["process"]["env"]
    assert b["process"]["args"] == ["sh"] and b["linux"]["cgroupsPath"] == oci_cgroup_parent + "/b1"
""")
    rootfs = Path(__file__).resolve().parents[2] / "bundles" / "busybox" / "rootfs"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--oci-rootfs={rootfs}")
    result.assert_outcomes(passed=1)
    assert result.ret == 0

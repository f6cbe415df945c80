"""The pytest plugin's leak check: a session whose tests leave a container, a cgroup or a mount made
through the fixtures behind fails, and says what leaked (it is removed all the same)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates containers")

ROOTFS = Path(__file__).resolve().parents[2] / "bundles" / "busybox" / "rootfs"


def _run(pytester: pytest.Pytester, body: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=body)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--oci-rootfs={ROOTFS}")


def test_a_clean_session_passes(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
from pyruntime import api

def test_clean(container, oci_root):
    c = container(["sleep", "100"])
    assert c.exec_run(["echo", "hi"], timeout=30).stdout == b"hi\\n"
    with api.Container("mine", c.state()["bundle"], root=oci_root) as other:
        assert other.status == "created"
""")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert "LEAK" not in result.stdout.str()


def test_a_leaked_container_fails_the_session(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
from pyruntime import api

def test_leaky(oci_root, bundle):
    api.Container("leaky", bundle(["sleep", "100"]), root=oci_root).create()  # never deleted
""")
    result.assert_outcomes(passed=1)  # the test itself passed...
    assert result.ret == 1  # ...the session did not
    out = result.stdout.str()
    assert "pyruntime leak check" in out and "container left behind: leaky" in out


def test_a_leaked_cgroup_fails_the_session(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
import os

def test_leaky_cgroup(oci_cgroup_parent):
    base = "/sys/fs/cgroup"
    hierarchy = base if os.path.exists(base + "/cgroup.controllers") else base + "/pids"
    os.makedirs(hierarchy + oci_cgroup_parent + "/stray")
""")
    result.assert_outcomes(passed=1)
    assert result.ret == 1
    assert "cgroup left behind" in result.stdout.str() and "stray" in result.stdout.str()
    assert not list(Path("/sys/fs/cgroup").glob("*/pyruntime-pytest-*/stray"))


def test_a_leaked_mount_fails_the_session(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
import subprocess

def test_leaky_mount(bundle):
    path = bundle(["true"])
    (path / "m").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "none", str(path / "m")], check=True)
""")
    result.assert_outcomes(passed=1)
    assert result.ret == 1
    out = result.stdout.str()
    assert "mount left behind" in out and "/m" in out
    with open("/proc/self/mountinfo") as f:
        assert str(pytester.path) not in f.read()  # and it was unmounted

"""Shared fixtures: the runtime under test, a private --root, a private cgroup parent, bundles.

Built on the API and its pytest plugin (pyruntime/pytest_plugin.py), not beside them: a test config
is an api.Config (`pyruntime spec`'s defaults plus what every test container needs: suite_config),
a bundle is the plugin's `bundle` (make_bundle only adapts its edits to the plain dict), the private
--root and cgroup parent are the plugin's oci_root and oci_cgroup_parent, and what a test leaves
behind (containers, cgroups, mounts under its root and bundles) is removed and reported by the
plugin's leak check, which fails the session.
CLI tests keep calling the runtime binary (rt, sh), chosen by PYRUNTIME_BIN (default: the
project's venv), so the same tests can run against runc for comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyruntime import api
from pyruntime.pytest_plugin import cgroup_dirs  # noqa: F401 - the tests import it from here
from pyruntime.state import valid_id

REPO = Path(__file__).resolve().parent.parent
ROOTFS = REPO / "bundles" / "busybox" / "rootfs"
RUNTIME = os.environ.get("PYRUNTIME_BIN") or str(Path(sys.executable).parent / "pyruntime")
# Under emulation (the VM tiers: tests/vm/) everything runs 10-20x slower: no per-example deadline
# for hypothesis there (its default, 200 ms, measures the machine, not the code).
if float(os.environ.get("PYRUNTIME_TEST_SLOWDOWN", "1")) > 1:
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("emulated", deadline=None)
    _hypothesis_settings.load_profile("emulated")


def suite_config(rootfs: str | Path = ROOTFS) -> api.Config:
    """The config every test container starts from: `pyruntime spec`'s defaults (api.Config) for the
    shared busybox rootfs (read-only: tests never write to it), plus what the tests' scripts need: a
    tmpfs on /tmp (where they write) and CAP_SYS_ADMIN (they mount)."""
    return api.Config(rootfs=rootfs).add_capabilities("CAP_SYS_ADMIN").mount(
        "/tmp", "tmpfs", "tmpfs", ["nosuid", "nodev"])


def base_config(args: list[str], cgroups_path: str) -> dict[str, Any]:
    """suite_config with these args and cgroupsPath, as the plain config.json dict."""
    return suite_config().args(*args).cgroups_path(cgroups_path).data


class Runtime:
    """Calls the runtime binary with a private --root."""

    def __init__(self, binary: str, root: str) -> None:
        self.binary, self.root = binary, root

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess:
        """Run a command; stdout/stderr are captured through files, not pipes, because a created
        container inherits them and would hold a pipe open long after the runtime exits."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            kw.setdefault("stdin", subprocess.DEVNULL)
            kw.setdefault("stdout", out)
            kw.setdefault("stderr", err)
            proc = subprocess.run(self.argv(*args), timeout=timeout, **kw)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def state(self, cid: str) -> dict[str, Any]:
        return json.loads(self("state", cid).stdout)

    def ids(self) -> list[str]:
        """The containers under the root (every name that is an ID: the root also keeps caches)."""
        return sorted(n for n in os.listdir(self.root) if valid_id(n)) if os.path.isdir(self.root) else []


@pytest.fixture(scope="session")
def oci_rootfs() -> Path:
    """The plugin's rootfs (of `bundle`, `container`): the shared busybox one."""
    return ROOTFS


@pytest.fixture
def oci_config() -> api.Config:
    """The plugin's base of every bundle: suite_config."""
    return suite_config()


@pytest.fixture
def state_root(oci_root: str) -> str:
    """A private --root: the plugin's oci_root (its leftovers are deleted and reported as leaks)."""
    return oci_root


@pytest.fixture
def rt(state_root: str) -> Runtime:
    return Runtime(RUNTIME, state_root)


@pytest.fixture
def cgroup_parent(oci_cgroup_parent: str) -> str:
    """A private parent cgroup: the plugin's oci_cgroup_parent (cgroups left under it are removed
    and reported as leaks)."""
    return oci_cgroup_parent


BundleMaker = Callable[..., Path]


@pytest.fixture
def make_bundle(bundle: BundleMaker) -> BundleMaker:
    """make_bundle(args, edit=None, name=None) -> the plugin's bundle(args, edit, name) (config.json
    from suite_config, cgroup <cgroup_parent>/<name>), its edit given the plain dict (Config.data)."""

    def make(args: list[str] | None = None, edit: Callable[[dict[str, Any]], None] | None = None,
             name: str | None = None) -> Path:
        return bundle(args or ["true"], (lambda config: edit(config.data)) if edit else None, name)

    return make


@pytest.fixture
def cid() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


# -- helpers shared by the integration tiers (issue 2) -------------------------------------------

def bind_mount(source: str | Path, destination: str, *options: str) -> dict[str, Any]:
    """A config.json bind mount entry (options default to rbind)."""
    return {"destination": destination, "type": "bind", "source": str(source),
            "options": list(options) or ["rbind"]}


@pytest.fixture
def private_rootfs(tmp_path: Path) -> Path:
    """A writable per-test copy of the busybox rootfs (symlinks kept), for tests that plant files."""
    dest = tmp_path / "private-rootfs"
    shutil.copytree(ROOTFS, dest, symlinks=True)
    return dest


@pytest.fixture
def sh(rt: Runtime, make_bundle: BundleMaker, cid: str) -> Callable[..., subprocess.CompletedProcess]:
    """sh(script, edit=None, check=True): run `sh -c script` in a new container in the foreground;
    returns the CompletedProcess (stdout, stderr, returncode) after the container is gone."""
    counter = iter(range(1_000_000))

    def run(script: str, edit: Callable[[dict[str, Any]], None] | None = None, check: bool = True,
            args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        n = next(counter)
        bundle = make_bundle(["sh", "-c", script], edit=edit, name=f"sh{n}")
        proc = rt("run", *args, "--bundle", str(bundle), f"{cid}-{n}", check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"container exited {proc.returncode}: {proc.stderr.strip()}\n{proc.stdout}")
        return proc

    return run


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll predicate until it returns something truthy; fail the test after timeout seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (mode, size)} of every entry under root (symlinks not followed)."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size if not os.path.isdir(p) else 0)
    return out


@pytest.fixture(scope="session", autouse=True)
def shared_rootfs_untouched() -> Iterator[None]:
    """The shared busybox rootfs is read-only for tests: a mount destination missing from it would be
    created there by the runtime (as runc does), so tests mount under /tmp or use private_rootfs."""
    before = _tree(ROOTFS) if ROOTFS.is_dir() else {}
    yield
    after = _tree(ROOTFS) if ROOTFS.is_dir() else {}
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"tests changed the shared rootfs {ROOTFS}: {changed[:20]}"


# Test modules import these helpers as `pyruntime_tests_conftest`, never as `conftest`: pytest loads every
# tier's conftest.py as a module named "conftest" (the last one loaded wins), a unique name always
# reaches this one.
sys.modules["pyruntime_tests_conftest"] = sys.modules[__name__]

"""pytest plugin: containers as fixtures, and a leak check over everything they made.

Registered through the `pytest11` entry point, so it is loaded wherever pyruntime is installed, but
it does nothing unless a test requests one of its fixtures (`-p no:pyruntime` turns it off):

- `oci_rootfs`: the root filesystem bundles are made from: `--oci-rootfs DIR`, the `oci_rootfs` ini
  option or $PYRUNTIME_ROOTFS (the test is skipped when none is set or it does not exist);
- `oci_root`: a private state root (--root) for the test; `oci_runtime`: a pyruntime.api.Runtime on it;
- `oci_cgroup_parent`: a private parent cgroup ("/pyruntime-pytest-<random>") under which the
  fixtures place every container's cgroup;
- `oci_config`: the pyruntime.api.Config every bundle of the test starts from (each gets its own
  copy): `pyruntime spec`'s defaults for oci_rootfs. Override this fixture in a conftest.py to give
  every bundle of a test suite the same changes;
- `bundle`: a factory, bundle(args=("true",), edit=None, name=None) -> a bundle directory
  <tmp_path>/<name> (name defaults to b0, b1...; a name used twice is an error) holding a copy of
  oci_config with these args and the cgroup <oci_cgroup_parent>/<name>; edit(config), a
  pyruntime.api.Config, changes it before it is written;
- `container`: a factory, container(args, config=None, start=True, **options) -> a created (and
  by default started) pyruntime.api.Container, force-deleted after the test.

The leak check: after each test, what its fixtures made must be gone: containers under oci_root
that the `container` factory does not own (made directly through the API and never deleted), cgroups
left under oci_cgroup_parent, mounts under the test's roots and bundles. Each is removed, recorded,
and at the end of the session reported; a session with a leak fails (exit status 1) even if every
test passed. `cgroup_dirs(rel)` lists what is left of a cgroup (every hierarchy, deepest first), for
tests that check a cgroup is gone.

Needs root (real namespaces, mounts and cgroups); containers are created by the test process itself
(see pyruntime.api: the caller becomes a child subreaper).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CGROUP_BASE = "/sys/fs/cgroup"
_LEAKS = pytest.StashKey[list[str]]()
_PATHS = pytest.StashKey[list[str]]()  # per test: the roots and bundles whose mounts are checked


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--oci-rootfs", default=None, help="pyruntime plugin: the rootfs of the `bundle` fixture")
    parser.addini("oci_rootfs", "pyruntime plugin: the rootfs of the `bundle` fixture", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_LEAKS] = []


def _leak(request: pytest.FixtureRequest, what: str) -> None:
    request.config.stash[_LEAKS].append(f"{request.node.nodeid}: {what}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.stash.get(_LEAKS, None) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    leaks = config.stash.get(_LEAKS, None)
    if leaks:
        terminalreporter.section("pyruntime leak check", sep="=", red=True, bold=True)
        for line in leaks:
            terminalreporter.line(f"LEAK {line}", red=True)
        terminalreporter.line(f"{len(leaks)} leak(s): the run fails (they were removed)", red=True)


# -- cgroups and mounts ---------------------------------------------------------------------------------
def _hierarchies() -> list[Path]:
    base = Path(CGROUP_BASE)
    if (base / "cgroup.controllers").exists():  # cgroup v2 only
        return [base]
    return [p for p in base.iterdir() if p.is_dir() and not p.is_symlink()] if base.is_dir() else []


def cgroup_dirs(rel: str) -> list[Path]:
    """Every directory of cgroup rel (a cgroupsPath: absolute, under the hierarchies' roots) in every
    mounted hierarchy, deepest first; [] once it is gone everywhere."""
    found: list[Path] = []
    for hierarchy in _hierarchies():
        top = hierarchy / rel.lstrip("/")
        if top.is_dir():
            found += sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            found.append(top)
    return found


def _remove_cgroup_tree(rel: str) -> list[Path]:
    """Kill what is in it, remove it; what could not be removed."""
    for d in cgroup_dirs(rel):
        for name in ("cgroup.freeze", "freezer.state"):  # a paused leftover would never die
            try:
                (d / name).write_text("0" if name == "cgroup.freeze" else "THAWED")
            except OSError:
                pass
        try:
            for pid in (d / "cgroup.procs").read_text().split():
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    for _attempt in range(50):
        for d in cgroup_dirs(rel):
            try:
                d.rmdir()
            except OSError:
                pass
        if not cgroup_dirs(rel):
            return []
        import time

        time.sleep(0.02)
    return cgroup_dirs(rel)


def _mounts_under(paths: list[str]) -> list[str]:
    try:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
    except OSError:
        return []
    return [p for p in points if any(p == root or p.startswith(root.rstrip("/") + "/") for root in paths)]


# -- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def oci_rootfs(pytestconfig: pytest.Config) -> Path:
    value = pytestconfig.getoption("--oci-rootfs") or os.environ.get("PYRUNTIME_ROOTFS")
    ini = pytestconfig.getini("oci_rootfs")
    if not value and ini:  # relative to the ini file's directory
        value = str(pytestconfig.rootpath / ini)
    if not value:
        pytest.skip("no rootfs: give --oci-rootfs DIR (or the oci_rootfs ini option, or $PYRUNTIME_ROOTFS)")
    path = Path(value).resolve()
    if not path.is_dir():
        pytest.skip(f"rootfs {path} does not exist")
    return path


@pytest.fixture
def oci_cgroup_parent(request: pytest.FixtureRequest) -> Iterator[str]:
    rel = f"/pyruntime-pytest-{uuid.uuid4().hex[:12]}"
    yield rel
    top = rel.lstrip("/")
    left = [str(d) for d in cgroup_dirs(rel) if d.name != top]  # the parent itself is ours to remove
    for d in left:
        _leak(request, f"cgroup left behind: {d}")
    for d in _remove_cgroup_tree(rel):
        _leak(request, f"cgroup cannot be removed: {d}")


@pytest.fixture
def oci_root(request: pytest.FixtureRequest, oci_cgroup_parent: str) -> Iterator[str]:
    """A private state root; torn down after the containers (and before the cgroup parent)."""
    base = "/run" if os.access("/run", os.W_OK) else None
    root = tempfile.mkdtemp(prefix="pyruntime-pytest-", dir=base)
    request.node.stash.setdefault(_PATHS, []).append(root)
    yield root
    from . import api

    for cid in api.Runtime(root).ids():
        _leak(request, f"container left behind: {cid} (in {root})")
        try:
            api.Runtime(root).delete(cid, force=True)
        except api.RuntimeFailure as e:
            _leak(request, f"container cannot be deleted: {cid}: {e}")
    for point in _mounts_under(request.node.stash.get(_PATHS, [])):
        _leak(request, f"mount left behind: {point}")
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def oci_runtime(oci_root: str) -> Any:
    from . import api

    return api.Runtime(oci_root)


@pytest.fixture
def oci_config(oci_rootfs: Path) -> Any:
    from . import api

    return api.Config(rootfs=oci_rootfs)


@pytest.fixture
def bundle(request: pytest.FixtureRequest, tmp_path: Path, oci_config: Any, oci_cgroup_parent: str,
           oci_root: str) -> Callable[..., Path]:
    counter = iter(range(1_000_000))
    request.node.stash.setdefault(_PATHS, []).append(str(tmp_path))

    def make(args: Any = ("true",), edit: Callable[[Any], Any] | None = None, name: str | None = None) -> Path:
        name = name or f"b{next(counter)}"
        path = tmp_path / name
        path.mkdir()  # FileExistsError: a name used twice
        config = oci_config.copy().args(*args).cgroups_path(f"{oci_cgroup_parent}/{name}")
        if edit:
            edit(config)
        config.write(path)
        return path

    return make


@pytest.fixture
def container(bundle: Callable[..., Path], oci_root: str) -> Iterator[Callable[..., Any]]:
    from . import api

    made: list[api.Container] = []

    def make(args: Any = ("sleep", "3600"), *, config: Any = None, start: bool = True,
             id: str | None = None, edit: Callable[[Any], Any] | None = None, **options: Any) -> api.Container:  # noqa: A002
        c = api.Container(id or f"c-{uuid.uuid4().hex[:12]}", config or bundle(args, edit), root=oci_root, **options)
        made.append(c)
        c.create()
        if start:
            c.start()
        return c

    yield make
    for c in made:
        try:
            c.delete(force=True)
        except api.RuntimeFailure:
            pass  # oci_root's teardown reports what is left

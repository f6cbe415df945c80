"""Shared fixtures: the runtime under test, a private --root, a private cgroup parent, bundles.

Every fixture cleans up after itself and fails the test if the test left a container behind.
The runtime binary is chosen by PYRUNTIME_BIN (default: the project's venv), so the same tests can
run against runc for comparison.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ROOTFS = REPO / "bundles" / "busybox" / "rootfs"
RUNTIME = os.environ.get("PYRUNTIME_BIN") or str(Path(sys.executable).parent / "pyruntime")
CGROUP_BASE = "/sys/fs/cgroup"
# Under emulation (the VM tiers: tests/vm/) everything runs 10-20x slower: no per-example deadline
# for hypothesis there (its default, 200 ms, measures the machine, not the code).
if float(os.environ.get("PYRUNTIME_TEST_SLOWDOWN", "1")) > 1:
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("emulated", deadline=None)
    _hypothesis_settings.load_profile("emulated")


def base_config(args: list[str], cgroups_path: str) -> dict[str, Any]:
    """A small config.json for the shared busybox rootfs (read-only: tests never write to it)."""
    return {
        "ociVersion": "1.3.0",
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "args": args, "cwd": "/",
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "capabilities": {k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]
                             for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
        },
        "root": {"path": str(ROOTFS), "readonly": True},
        "hostname": "testbox",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "cgroupsPath": cgroups_path,
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
        },
    }


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
        return sorted(os.listdir(self.root)) if os.path.isdir(self.root) else []


@pytest.fixture
def state_root(cgroup_parent: str) -> Iterator[str]:
    # Depends on cgroup_parent so that it is torn down first: a failed test's containers are deleted
    # (processes reaped, cgroups removed) before cgroup_parent checks and removes what is left.
    root = tempfile.mkdtemp(prefix="prt-", dir="/run")
    yield root
    left = sorted(os.listdir(root))
    for cid in left:
        subprocess.run([RUNTIME, "--root", root, "delete", "--force", cid], capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)
    assert not left, f"test left containers behind: {left}"


@pytest.fixture
def rt(state_root: str) -> Runtime:
    return Runtime(RUNTIME, state_root)


def cgroup_dirs(rel: str) -> list[Path]:
    """Every directory of the cgroup rel in every hierarchy, deepest first."""
    found: list[Path] = []
    base = Path(CGROUP_BASE)
    # a pure cgroup v2 host (or the VM tier) has one hierarchy at the base itself
    hierarchies = [base] if (base / "cgroup.controllers").exists() else base.iterdir()
    for hierarchy in hierarchies:
        top = hierarchy / rel.lstrip("/")
        if top.is_dir():
            found += sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            found.append(top)
    return found


def _kill_cgroup(d: Path) -> None:
    try:
        for pid in (d / "cgroup.procs").read_text().split():
            os.kill(int(pid), signal.SIGKILL)
    except (OSError, ValueError):
        pass


@pytest.fixture
def cgroup_parent() -> Iterator[str]:
    """A private parent cgroup (absolute, outside the machine's own groups), removed afterwards."""
    rel = f"/pyruntime-test-{uuid.uuid4().hex[:12]}"
    yield rel
    leftovers = [d for d in cgroup_dirs(rel) if d.name != rel.lstrip("/")]
    for d in cgroup_dirs(rel):
        _kill_cgroup(d)
        try:
            d.rmdir()
        except OSError:
            pass
    remaining = cgroup_dirs(rel)
    assert not remaining, f"cannot remove test cgroups: {remaining}"
    assert not leftovers, f"test left cgroups behind: {leftovers}"


BundleMaker = Callable[..., Path]


@pytest.fixture
def make_bundle(tmp_path: Path, cgroup_parent: str) -> BundleMaker:
    """make_bundle(args, edit=None, name=None) -> bundle dir with config.json for the busybox rootfs."""
    counter = iter(range(1_000_000))

    def make(args: list[str] | None = None, edit: Callable[[dict[str, Any]], None] | None = None,
             name: str | None = None) -> Path:
        name = name or f"b{next(counter)}"
        bundle = tmp_path / name
        bundle.mkdir()
        config = base_config(args or ["true"], f"{cgroup_parent}/{name}")
        if edit:
            edit(config)
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    return make


@pytest.fixture
def cid() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def deep_copy(obj: Any) -> Any:
    return copy.deepcopy(obj)


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

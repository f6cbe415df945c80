"""The podman tier's fixtures (imported by test_podman.py; not a conftest.py, which would shadow the
top-level conftest module that other tiers import by name): a private podman environment (tests/podman/setup.sh), a `podman`
caller bound to one runtime (pyruntime, and runc as the control), and leak checks.

Nothing touches the host's podman configuration or storage: CONTAINERS_CONF, CONTAINERS_STORAGE_CONF
and CONTAINERS_REGISTRIES_CONF point into a temporary directory that is reset and removed at the end
of the session. After every test: no container left in podman, no runtime state directory, no
libpod-* cgroup and no conmon process; after the session, the cgroups podman created for itself
(/libpod_parent and its conmon group) are removed if they did not exist before.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "containerd"))
from private import default_root_restorer, remove_new_plain_cgroup_dirs, wait_for_text  # noqa: E402  (the engine tiers' shared helpers)

ROOTFS = REPO / "bundles" / "busybox" / "rootfs"
RUNTIME = os.environ.get("PYRUNTIME_BIN") or str(Path(sys.executable).parent / "pyruntime")
CGROUP_BASE = "/sys/fs/cgroup"
IMAGE = "localhost/pyrt-busybox"
RUNTIMES = ["pyruntime", "runc"]
STATE_ROOTS = {"pyruntime": "/run/pyruntime", "runc": "/run/runc"}
PARENT = "libpod_parent"  # podman's cgroupfs parent: cgroupsPath /libpod_parent/libpod-<id>
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the podman tier runs as root"
    for tool in ("podman", "conmon", "runc"):
        if not shutil.which(tool):
            return f"{tool} is not installed (make deps)"
    if not (ROOTFS / "bin" / "busybox").exists():
        return "bundles/busybox/rootfs is missing (make bundles)"
    return None


def libpod_cgroups() -> set[str]:
    """Every cgroup directory under libpod_parent in every hierarchy (v1 ones and a v2 root)."""
    found: set[str] = set()
    for top in [Path(CGROUP_BASE, PARENT), *Path(CGROUP_BASE).glob(f"*/{PARENT}")]:
        if top.is_dir() and top.parent.name != PARENT:
            found.add(str(top))
            # os.walk, not rglob: another podman user's cgroup removed mid-walk is skipped, not raised
            found.update(os.path.join(root, d) for root, dirs, _ in os.walk(top) for d in dirs)
    return found


def remove_cgroup_dir(d: str) -> None:
    """rmdir a cgroup; a plain directory (a controller not mounted on this host, where conmon writes
    a `tasks` file) loses its files first. Never raises: what stays is reported by the callers."""
    try:
        if not os.path.exists(os.path.join(d, "cgroup.procs")):
            for entry in os.scandir(d):
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
        os.rmdir(d)
    except OSError:
        pass


def conmon_pids(marker: str) -> list[int]:
    """conmon processes started for our private environment (their command line names its dir)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and os.path.basename(cmdline[0]) == b"conmon" and marker.encode() in b" ".join(cmdline):
            pids.append(int(entry))
    return pids


def settled_conmon_pids(marker: str, timeout: float = 5.0) -> list[int]:
    """conmon processes still there after a grace period: after a failed create podman may return
    a moment before its conmon has exited."""
    deadline = time.monotonic() + timeout
    while (pids := conmon_pids(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids


def state_ids(runtime: str) -> set[str]:
    root = STATE_ROOTS[runtime]
    return {n for n in os.listdir(root) if _HEX64.match(n)} if os.path.isdir(root) else set()


class PodmanEnv:
    def __init__(self, directory: str, env: dict[str, str], bridge: str, subnet: str) -> None:
        self.dir, self.env, self.bridge, self.subnet = directory, env, bridge, subnet

    def container_ids(self) -> set[str]:
        """Every container this environment ever created (from podman's events file), so that the
        leak checks never blame containers of another podman user on the same host."""
        try:
            text = Path(self.dir, "tmp", "events", "events.log").read_text()
        except FileNotFoundError:
            return set()
        return set(re.findall(r'"ID":"([0-9a-f]{64})"', text))


@pytest.fixture(scope="session", name="podman_env")
def podman_env_fixture() -> Iterator[PodmanEnv]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    directory = tempfile.mkdtemp(prefix="pyrt-podman-", dir="/tmp")
    tag = uuid.uuid4().hex[:8]
    bridge, subnet = f"pyrt{tag}", f"10.231.{int(tag[:2], 16)}"
    env = dict(os.environ, PYRT_PODMAN_BRIDGE=bridge, PYRT_PODMAN_SUBNET=subnet)
    cgroups_before = libpod_cgroups()
    tops_before = set(os.listdir(CGROUP_BASE))
    restore_root = default_root_restorer(STATE_ROOTS["pyruntime"])
    try:
        subprocess.run(["sh", str(HERE / "setup.sh"), directory, RUNTIME], check=True, env=env,
                       capture_output=True, timeout=120)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"tests/podman/setup.sh failed: {e.stderr.decode().strip()}") from None
    env.update(CONTAINERS_CONF=f"{directory}/containers.conf",
               CONTAINERS_STORAGE_CONF=f"{directory}/storage.conf",
               CONTAINERS_REGISTRIES_CONF=f"{directory}/registries.conf")
    penv = PodmanEnv(directory, env, bridge, subnet)
    yield penv
    ours = penv.container_ids()
    subprocess.run(["sh", str(HERE / "teardown.sh"), directory], env=env, capture_output=True, timeout=300)
    leaked = settled_conmon_pids(directory)
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)
    restore_root()
    # podman leaves /libpod_parent and /libpod_parent/conmon behind; remove what we caused, if empty
    for d in sorted(libpod_cgroups() - cgroups_before, key=lambda p: -p.count("/")):
        remove_cgroup_dir(d)
    remove_new_plain_cgroup_dirs(tops_before)  # conmon's, for controllers nothing mounts here
    left = sorted(d for d in libpod_cgroups() - cgroups_before if os.path.basename(d).removeprefix("libpod-") in ours)
    assert not leaked, f"conmon processes left after the session: {leaked}"
    assert not left, f"cgroups left after the session: {left}"
    assert not os.path.exists(directory)


class Podman:
    """`podman --runtime NAME ...` in the private environment; output captured through files
    (conmon and the container inherit podman's stdio in some modes and would hold pipes open)."""

    image = IMAGE

    def __init__(self, runtime: str, penv: PodmanEnv) -> None:
        self.runtime, self.penv = runtime, penv
        self.state_root = STATE_ROOTS[runtime]  # podman never passes --root: the default one

    def argv(self, *args: str) -> list[str]:
        return ["podman", "--runtime", self.runtime, *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 60, env: dict[str, str] | None = None,
                 **kw: Any) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            kw.setdefault("stdin", subprocess.DEVNULL)
            proc = subprocess.run(self.argv(*args), stdout=out, stderr=err, env=env or self.penv.env,
                                  timeout=timeout, cwd="/", **kw)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env=self.penv.env, cwd="/", **kw)

    def runtime_path(self) -> str:
        return RUNTIME if self.runtime == "pyruntime" else shutil.which(self.runtime) or self.runtime

    def run_d(self, *args: str, **kw: Any) -> str:
        """`podman run -d IMAGE-args...` -> the container's full id."""
        return self("run", "-d", *args, **kw).stdout.strip()

    def inspect(self, cid: str, fmt: str) -> str:
        return self("inspect", "--format", fmt, cid).stdout.strip()

    def cgroup_dirs(self, cid: str) -> list[Path]:
        """The container's cgroup in every hierarchy (podman's cgroupsPath /libpod_parent/libpod-<id>)."""
        name = f"{PARENT}/libpod-{cid}"
        return [p for p in [Path(CGROUP_BASE, name), *Path(CGROUP_BASE).glob(f"*/{name}")] if p.is_dir()]

    def cgroup_file(self, cid: str, controller: str, v1_name: str, v2_name: str) -> Path:
        """A control file of the container's cgroup: the v1 controller's where it is mounted (this
        hybrid host), else the unified hierarchy's."""
        if Path(CGROUP_BASE, controller, "cgroup.procs").exists():
            return Path(CGROUP_BASE, controller, PARENT, f"libpod-{cid}", v1_name)
        return Path(CGROUP_BASE, PARENT, f"libpod-{cid}", v2_name)

    def wait_log(self, cid: str, text: str, timeout: float = 10) -> str:
        return wait_for_text(lambda: self("logs", cid).stdout, text, timeout)


@pytest.fixture(params=RUNTIMES, name="podman")
def podman_fixture(request: pytest.FixtureRequest, podman_env: PodmanEnv) -> Iterator[Podman]:
    runtime = request.param
    p = Podman(runtime, podman_env)
    failed_before = request.session.testsfailed
    states_before = state_ids(runtime)
    cgroups_before = libpod_cgroups()
    yield p
    left = p("ps", "-a", "-q", "--no-trunc", check=False).stdout.split()
    if left:
        p("rm", "-f", "-t", "0", *left, check=False)
    ours = podman_env.container_ids()
    leaked_states = sorted((state_ids(runtime) - states_before) & ours)
    for cid in leaked_states:
        subprocess.run([shutil.which(runtime) if runtime == "runc" else RUNTIME, "delete", "--force", cid],
                       capture_output=True, timeout=60)
    leaked_cgroups = sorted(c for c in libpod_cgroups() - cgroups_before
                            if os.path.basename(c).removeprefix("libpod-") in ours)
    for d in sorted(leaked_cgroups, key=lambda p: -p.count("/")):
        try:
            os.rmdir(d)
        except OSError:
            pass
    leaked_conmon = settled_conmon_pids(podman_env.dir)
    for pid in leaked_conmon:
        os.kill(pid, signal.SIGKILL)
    if request.session.testsfailed != failed_before:
        return  # the test failed (reported already); its leftovers were cleaned above
    assert not left, f"test left podman containers: {left}"
    assert not leaked_states, f"runtime state left in {STATE_ROOTS[runtime]}: {leaked_states}"
    assert not leaked_cgroups, f"cgroups left: {leaked_cgroups}"
    assert not leaked_conmon, f"conmon processes left: {leaked_conmon}"


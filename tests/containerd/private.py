"""Daemons of the engine tiers (docker, kubernetes), started privately: everything they keep lives
under one temporary directory (their root, state, sockets, pidfiles, logs), and stop() ends them by
pid, kills what they left (shims by the directory named on their command line), unmounts what they
mounted under that directory and removes it.

containerd's runc v2 shim puts its socket in /run/containerd/s/ whatever the config says (it is
compiled in); the directory is removed at the end if the session created it and left it empty.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SHIM_SOCKET_DIRS = (Path("/run/containerd/s"), Path("/run/containerd"))


def pids_naming(marker: str, names: tuple[str, ...] | None = None) -> list[int]:
    """Processes whose command line contains marker (and whose argv[0] basename is one of names)."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0]:
            continue
        if names is not None and os.path.basename(argv[0]).decode(errors="replace") not in names:
            continue
        if marker.encode() in b" ".join(argv):
            found.append(int(entry))
    return found


def mounts_under(base: str) -> list[str]:
    """Mount points under base, deepest (latest) first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target == base or target.startswith(base.rstrip("/") + "/"):
            points.append(target)
    return list(reversed(points))


def unmount_under(base: str) -> list[str]:
    """Unmount (lazily) everything under base; returns what was mounted."""
    found = mounts_under(base)
    for target in found:
        subprocess.run(["umount", "-l", target], capture_output=True, timeout=30)
    return found


def wait_for(predicate: Callable[[], object], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")
        time.sleep(0.1)


def default_root_restorer(root: str) -> Callable[[], None]:
    """podman and buildah pass the runtime no --root: pyruntime keeps its state, and its seccomp
    cache (state.SECCOMP_CACHE), in the host's default root. Call before the tier; the function it
    returns removes, after the tier, the cache and the root if they were not there before (containers
    a tier leaves are its leak checks' to report, not removed here)."""
    from pyruntime.state import SECCOMP_CACHE

    cache = os.path.join(root, SECCOMP_CACHE)
    root_existed, cache_existed = os.path.isdir(root), os.path.isdir(cache)

    def restore() -> None:
        if not cache_existed:
            shutil.rmtree(cache, ignore_errors=True)
        if not root_existed:
            try:
                os.rmdir(root)
            except OSError:  # not empty: something else is there
                pass
    return restore


def wait_for_text(read: Callable[[], str], text: str, timeout: float) -> str:
    """read() until what it returns contains text, or timeout: the last thing read (an engine's
    `logs`, which the caller then asserts on)."""
    deadline = time.monotonic() + timeout
    while True:
        out = read()
        if text in out or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


def stop_pid(pid: int, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL after timeout; reaps it when it is our child."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        return
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class PrivateContainerd:
    """containerd with root, state, grpc and ttrpc sockets under base; extra is appended to its
    config.toml (a CRI plugin section, for instance)."""

    def __init__(self, base: Path, extra: str = "", cri: bool = False) -> None:
        self.base = base
        self.sock = str(base / "containerd.sock")
        self.log_path = base / "containerd.log"
        disabled = "[]" if cri else '["io.containerd.grpc.v1.cri"]'
        (base / "containerd.toml").write_text(
            f'version = 2\nroot = "{base}/containerd-root"\nstate = "{base}/containerd-state"\n'
            f'disabled_plugins = {disabled}\n'
            f'[grpc]\n  address = "{self.sock}"\n[ttrpc]\n  address = "{self.sock}.ttrpc"\n'
            f'[debug]\n  address = ""\n[metrics]\n  address = ""\n' + extra)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["containerd", "--config", str(self.base / "containerd.toml")],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        wait_for(lambda: subprocess.run(["ctr", "-a", self.sock, "version"], capture_output=True,
                                        timeout=10).returncode == 0 or self.proc.poll() is not None,
                 60, "containerd", self.log_path)
        if self.proc.poll() is not None:
            raise RuntimeError(f"containerd exited {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")

    def ctr(self, namespace: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ctr", "-a", self.sock, "-n", namespace, *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: exit {proc.returncode}: {proc.stderr}")
        return proc

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc.pid, self.proc)


class PrivateDir:
    """A temporary directory for a tier's daemons, with what stop() must check and clean."""

    def __init__(self, prefix: str) -> None:
        self.shim_dirs_before = {d for d in SHIM_SOCKET_DIRS if d.exists()}
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))

    def cleanup(self) -> dict[str, list]:
        """Kill leftover processes naming the directory, unmount, remove; returns what was left."""
        left_pids = pids_naming(str(self.path))
        for pid in left_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in left_pids:
            deadline = time.monotonic() + 10
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.05)
        left_mounts = unmount_under(str(self.path))
        shutil.rmtree(self.path, ignore_errors=True)
        for d in SHIM_SOCKET_DIRS:
            if d not in self.shim_dirs_before:
                try:
                    d.rmdir()
                except OSError:
                    pass
        return {"processes": left_pids, "mounts": left_mounts}


def remove_new_plain_cgroup_dirs(tops_before: set[str]) -> None:
    """`podman run` (conmon) makes plain directories in /sys/fs/cgroup's tmpfs for controllers that
    /proc/cgroups lists but nothing mounts (hybrid hosts): remove the trees that appeared, files first."""
    for name in set(os.listdir("/sys/fs/cgroup")) - tops_before:
        top = Path("/sys/fs/cgroup", name)
        if top.is_symlink() or not top.is_dir() or os.path.ismount(top):
            continue
        for root, _dirs, files in os.walk(top, topdown=False):
            try:
                for f in files:
                    os.unlink(os.path.join(root, f))
                os.rmdir(root)
            except OSError:
                pass

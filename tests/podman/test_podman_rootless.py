"""Rootless podman: podman run by an unprivileged user (made for the session: rootless_env.py) drives
pyruntime, and runc as the control, inside its own user namespace (the runtime's euid is 0 there,
but it is not the host's root): no cgroups on this cgroup-v1 host without delegation, device nodes
bind-mounted, state in $XDG_RUNTIME_DIR/<runtime>. Every test runs once per runtime; the fixture
fails a test that leaves a container, a runtime state directory, a cgroup or a conmon behind.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from podman_env import CGROUP_BASE, RUNTIMES
from private import wait_for_text
from rootless_env import PATH, RootlessPodman, rootless_env_fixture, uid_pids  # noqa: F401 - the fixture
from test_podman import run_in_pty

pytestmark = pytest.mark.podman
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
V1_HOST = Path(CGROUP_BASE, "memory", "cgroup.procs").exists()


class Runtime:
    """`podman --runtime NAME ...` as the test user."""

    def __init__(self, env: RootlessPodman, name: str) -> None:
        self.env, self.name, self.image = env, name, env.image
        self.state_root = env.xdg / name  # podman passes no --root: the runtime's rootless default

    def __call__(self, *args: str, **kw):  # noqa: ANN204
        return self.env("--runtime", self.name, *args, **kw)

    def run_d(self, *args: str) -> str:
        return self("run", "-d", *args).stdout.strip()

    def inspect(self, cid: str, fmt: str) -> str:
        return self("inspect", "--format", fmt, cid).stdout.strip()

    def state_ids(self) -> set[str]:
        root = self.state_root
        return {n for n in os.listdir(root) if _HEX64.match(n)} if root.is_dir() else set()

    def conmons(self) -> list[int]:
        return [p for p in uid_pids(self.env.user.uid) if _comm(p) == "conmon"]

    def wait_log(self, cid: str, text: str, timeout: float = 20) -> str:
        return wait_for_text(lambda: self("logs", cid).stdout, text, timeout)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cgroups_named(cid: str) -> list[str]:
    """Any cgroup directory named after the container, in any hierarchy (there should be none)."""
    found = []
    for top in Path(CGROUP_BASE).iterdir():
        for parent in ("libpod_parent", "pyruntime", "machine.slice", "user.slice"):
            for p in (top / parent / f"libpod-{cid}", top / parent / cid, top / f"libpod-{cid}"):
                if p.is_dir():
                    found.append(str(p))
    return found


@pytest.fixture(params=RUNTIMES, name="rt")
def rt_fixture(request: pytest.FixtureRequest, rootless_env: RootlessPodman) -> Iterator[Runtime]:
    rt = Runtime(rootless_env, request.param)
    failed_before = request.session.testsfailed
    yield rt
    left = rt("ps", "-a", "-q", "--no-trunc", check=False).stdout.split()
    if left:
        rt("rm", "-f", "-t", "0", *left, check=False)
    states = sorted(rt.state_ids())
    deadline = time.monotonic() + 10  # a conmon may exit a moment after podman returned
    while (conmons := rt.conmons()) and time.monotonic() < deadline:
        time.sleep(0.1)
    if request.session.testsfailed != failed_before:
        return
    assert not left, f"test left podman containers: {left}"
    assert not states, f"runtime state left in {rt.state_root}: {states}"
    assert not conmons, f"conmon processes left: {conmons}"


# -- run ----------------------------------------------------------------------------------------------

def test_run_echo(rt):
    proc = rt("run", "--rm", rt.image, "echo", "hi")
    assert proc.stdout == "hi\n" and "Error" not in proc.stderr, proc.stderr
    assert rt("ps", "-a", "-q").stdout == ""


def test_exit_code_passed_through(rt):
    assert rt("run", "--rm", rt.image, "sh", "-c", "exit 7", check=False).returncode == 7


def _one_runtime_line(rt: Runtime, stderr: str) -> str:
    """The runtime's error as podman shows it: one line "Error: <runtime>: ...", no traceback."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and lines[0].startswith(f"Error: {rt.name}: "), stderr
    assert "internal error" not in stderr and "Traceback" not in stderr and "PermissionError" not in stderr
    return lines[0]


def test_missing_executable_is_127(rt):
    proc = rt("run", "--rm", rt.image, "no-such-program", check=False)
    assert proc.returncode == 127, proc.stderr
    line = _one_runtime_line(rt, proc.stderr)
    assert 'exec: "no-such-program": executable file not found in $PATH' in line
    assert "seccomp" not in line  # the program is missing: nothing of a filter (runc's words)


def test_not_executable_is_126(rt):
    proc = rt("run", "--rm", rt.image, "/etc/passwd", check=False)
    assert proc.returncode == 126, proc.stderr
    line = _one_runtime_line(rt, proc.stderr)
    assert "permission denied" in line.lower() and "seccomp" not in line


def test_run_user(rt):
    proc = rt("run", "--rm", "--user", "1000:1000", rt.image, "sh", "-c", "id; grep CapEff /proc/self/status")
    assert proc.stdout.startswith("uid=1000(user) gid=1000(user)"), proc.stdout
    assert proc.stdout.splitlines()[1] == "CapEff:\t0000000000000000"


def test_run_it_pty(rt):
    """A terminal: the pty is stdio and /dev/console (runtime-spec's default devices, as runc), with
    the caller's window size; input reaches the program, its exit code comes back."""
    script = "tty; stty size; stat -c 'console %t:%T' /dev/console; read x; echo got:$x; exit 4"
    rc, text = run_in_pty(rt.env.argv("--runtime", rt.name, "run", "-it", "--rm", rt.image, "sh", "-c", script),
                          {"PATH": PATH}, (30, 90), [(b"console ", b"typed\n"), (b"got:typed", None)])
    assert rc == 4, text
    assert "/dev/pts/0\n30 90\nconsole 88:0\n" in text and "got:typed\n" in text, text


@pytest.mark.skipif(not V1_HOST, reason="cgroup v1 hosts only: podman itself drops the limits there")
def test_limits_are_ignored_on_v1_without_delegation(rt):
    """podman drops the limits (its own warning); the container runs, in no cgroup of its own."""
    proc = rt("run", "--rm", "--memory", "64m", "--pids-limit", "50", rt.image, "echo", "ok")
    assert proc.stdout == "ok\n"
    assert "Resource limits are not supported and ignored on cgroups V1 rootless systems" in proc.stderr


# -- run -d, exec, stop, rm ---------------------------------------------------------------------------

def test_detached_exec_stop_rm(rt):
    script = 'echo started; trap "echo got-term; exit 3" TERM; while :; do sleep 0.1; done'
    cid = rt.run_d(rt.image, "sh", "-c", script)
    assert "started" in rt.wait_log(cid, "started")
    assert rt.inspect(cid, "{{.State.Status}}") == "running"
    # the runtime's state: in the user's $XDG_RUNTIME_DIR, owned by the user (root in its namespace)
    state_dir = rt.state_root / cid
    assert state_dir.is_dir() and state_dir.stat().st_uid == rt.env.user.uid
    assert not Path("/run", rt.name, cid).exists()
    assert cgroups_named(cid) == []  # nothing delegated: no cgroup, as runc
    assert rt("exec", cid, "echo", "in-exec").stdout == "in-exec\n"
    assert rt("exec", "-u", "1000:1000", cid, "id").stdout.startswith("uid=1000(user) gid=1000(user)")
    assert rt("exec", cid, "cat", "/proc/1/cmdline").stdout.startswith("sh\0-c\0")
    assert rt("exec", cid, "sh", "-c", "exit 3", check=False).returncode == 3
    failed = rt("exec", cid, "no-such-program", check=False)
    assert failed.returncode == 127, failed.stderr
    assert "executable file not found in $PATH" in _one_runtime_line(rt, failed.stderr)
    begin = time.monotonic()
    rt("stop", "-t", "10", cid)
    took = time.monotonic() - begin
    assert took < 8, f"stop took {took:.1f}s: SIGTERM was not delivered, podman waited for its timeout"
    assert rt.inspect(cid, "{{.State.Status}}") == "exited"
    assert rt.inspect(cid, "{{.State.ExitCode}}") == "3"
    assert rt("logs", cid).stdout == "started\ngot-term\n"
    rt("rm", cid)
    assert not state_dir.exists()
    assert rt("ps", "-a", "-q").stdout == ""


def test_rm_force_running(rt):
    cid = rt.run_d(rt.image, "sleep", "1000")
    if V1_HOST:  # no cgroup, so no freezer: podman refuses before it calls the runtime
        paused = rt("pause", cid, check=False)
        assert paused.returncode == 125 and "rootless containers with cgroup V1" in paused.stderr, paused.stderr
    rt("rm", "-f", "-t", "0", cid)
    assert rt("container", "exists", cid, check=False).returncode == 1
    assert not (rt.state_root / cid).exists()


def test_state_as_podman_calls_it(rt):
    """podman calls `state ID` with only XDG_RUNTIME_DIR in the environment (no USER, no --root),
    as uid 0 of its user namespace: the runtime must look in $XDG_RUNTIME_DIR/<runtime>."""
    cid = rt.run_d(rt.image, "sleep", "1000")
    try:
        runtime = rt.env.runtime_path if rt.name == "pyruntime" else "runc"
        proc = rt.env("unshare", "env", "-i", f"XDG_RUNTIME_DIR={rt.env.xdg}", f"PATH={os.environ['PATH']}",
                      runtime, "state", cid)
        state = json.loads(proc.stdout)
        assert state["id"] == cid and state["status"] == "running"
        gone = rt.env("unshare", "env", "-i", f"XDG_RUNTIME_DIR={rt.env.xdg}", f"PATH={os.environ['PATH']}",
                      runtime, "state", "0" * 64, check=False)
        assert gone.returncode != 0 and "does not exist" in gone.stderr
    finally:
        rt("rm", "-f", "-t", "0", cid)


# -- the same container as runc's ---------------------------------------------------------------------

PROBE = ("id; grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status; cat /proc/self/uid_map /proc/self/gid_map; "
         "ls /dev /sys/class/net /sys/fs/cgroup /sys/fs/cgroup/memory | sort; ulimit -n; umask; "
         # (/proc/mounts lists mounts in no meaningful order: sorted)
         "mount | sort")


def test_container_matches_runcs(rootless_env):
    """What the container sees (identity, capabilities, seccomp, id maps, /dev, network, mounts) is
    the same with both runtimes."""
    seen = {}
    for name in RUNTIMES:
        proc = Runtime(rootless_env, name)("run", "--rm", rootless_env.image, "sh", "-c", PROBE)
        assert proc.returncode == 0, proc.stderr
        # the overlay's upper/work directories are the container's own
        seen[name] = re.sub(r"^overlay on / type overlay \(.*\)$", "overlay on / type overlay", proc.stdout, flags=re.M)
    # The one difference: the tmpfs under the v1 binds is read-only as the mount's "ro" asks;
    # runc 1.1.5 leaves it writable (later runc versions remount it read-only too).
    cgroup_tmpfs = re.compile(r"^tmpfs on /sys/fs/cgroup type tmpfs \((r[ow]),", re.M)
    assert [m.group(1) for m in cgroup_tmpfs.finditer(seen["pyruntime"])] == ["ro"]
    seen["pyruntime"] = cgroup_tmpfs.sub(lambda m: m.group(0).replace("(ro,", "(rw,"), seen["pyruntime"])
    diff = "".join(difflib.unified_diff(seen["runc"].splitlines(True), seen["pyruntime"].splitlines(True), "runc", "pyruntime"))
    assert not diff, diff

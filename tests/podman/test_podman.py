"""The end-to-end tier: the real podman + conmon from apt drive pyruntime, and runc as the control,
on a busybox image imported into a private storage (tests/podman/setup.sh).

Every test runs once per runtime (the `podman` fixture is parametrized over pyruntime and runc), so
the matrix of both appears in one run. The fixture fails a test that leaves a container, a runtime
state directory, a libpod-* cgroup or a conmon process behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from podman_env import podman_env_fixture, podman_fixture  # noqa: F401 - the fixtures

pytestmark = pytest.mark.podman

NET_RAW = 13  # capability bit numbers, as in /proc/self/status
CAPS_LINE = "CapEff:\t{:016x}"


def status_field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in {text!r}")


# -- basics -------------------------------------------------------------------------------------

def test_run_echo(podman):
    proc = podman("run", "--rm", podman.image, "echo", "hi")
    assert proc.stdout == "hi\n"
    assert podman("ps", "-a", "-q").stdout == ""


def test_exit_code_passed_through(podman):
    proc = podman("run", "--rm", podman.image, "sh", "-c", "exit 7", check=False)
    assert proc.returncode == 7


def test_missing_executable_is_127(podman):
    proc = podman("run", "--rm", podman.image, "no-such-program", check=False)
    assert proc.returncode == 127, proc.stderr
    # podman read the runtime's JSON --log line: its message, not a bare "exit status 1"
    assert "executable file not found in $PATH" in proc.stderr


def test_not_executable_is_126(podman):
    proc = podman("run", "--rm", podman.image, "/etc/passwd", check=False)
    assert proc.returncode == 126, proc.stderr
    assert "permission denied" in proc.stderr.lower()


def test_detached_ps_logs_stop_rm(podman):
    script = 'echo started; trap "echo got-term; exit 3" TERM; while :; do sleep 0.1; done'
    cid = podman.run_d(podman.image, "sh", "-c", script)
    assert "started" in podman.wait_log(cid, "started")
    ps = podman("ps", "--no-trunc", "--format", "{{.ID}} {{.Status}}").stdout
    assert f"{cid} Up" in ps
    assert podman.inspect(cid, "{{.State.Status}}") == "running"
    begin = time.monotonic()
    podman("stop", "-t", "10", cid)
    took = time.monotonic() - begin
    assert took < 5, f"stop took {took:.1f}s: SIGTERM was not delivered, podman waited for its timeout"
    assert podman.inspect(cid, "{{.State.Status}}") == "exited"
    assert podman.inspect(cid, "{{.State.ExitCode}}") == "3"
    assert podman("logs", cid).stdout == "started\ngot-term\n"
    podman("rm", cid)
    assert podman("ps", "-a", "-q").stdout == ""


def test_rm_cleans_up(podman, tmp_path):
    """While it runs the container has runtime state and cgroups; after `run --rm`, nothing."""
    cidfile = tmp_path / "cid"
    proc = podman.popen("run", "--rm", "-i", "--cidfile", str(cidfile), podman.image, "sh", "-c", "read x",
                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (cidfile.exists() and cidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        cid = cidfile.read_text().strip()
        while podman.inspect(cid, "{{.State.Status}}") != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Path(podman.state_root, cid).is_dir()
        assert len(podman.cgroup_dirs(cid)) >= 1
        proc.communicate(b"done\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert podman("container", "exists", cid, check=False).returncode == 1
    assert not Path(podman.state_root, cid).exists()
    assert podman.cgroup_dirs(cid) == []


def test_no_pivot_root(podman):
    """containers.conf no_pivot_root: conmon passes `create ... --no-pivot`; MS_MOVE + chroot."""
    conf = Path(podman.penv.dir, "no-pivot.conf")
    if not conf.exists():
        text = Path(podman.penv.env["CONTAINERS_CONF"]).read_text()
        conf.write_text(text.replace("[engine]\n", "[engine]\nno_pivot_root = true\n", 1))
    env = dict(podman.penv.env, CONTAINERS_CONF=str(conf))
    cid = podman.run_d(podman.image, "sleep", "1000", env=env)
    conmon = next(p for p in conmon_argvs() if cid in p)
    assert "--no-pivot" in conmon
    listing = podman("exec", cid, "ls", "/").stdout.split()
    assert {"bin", "etc", "proc"} <= set(listing) and "work" not in listing  # the image, not the host
    podman("rm", "-f", "-t", "0", cid)


def conmon_argvs() -> list[list[str]]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode().split("\0")
        except (OSError, NotADirectoryError):
            continue
        if os.path.basename(argv[0]) == "conmon":
            found.append(argv)
    return found


# -- exec ---------------------------------------------------------------------------------------

@pytest.fixture
def running(podman) -> str:
    cid = podman.run_d(podman.image, "sleep", "1000")
    yield cid
    podman("rm", "-f", "-t", "0", cid)


def test_state_as_podman_calls_it(podman, running):
    """podman runs `state ID` with an environment of only XDG_RUNTIME_DIR (and no --root)."""
    binary = podman.runtime_path()
    env = {"XDG_RUNTIME_DIR": ""}
    proc = subprocess.run([binary, "state", running], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)
    assert state["id"] == running and state["status"] == "running"
    assert state["pid"] == int(podman.inspect(running, "{{.State.Pid}}"))
    gone = subprocess.run([binary, "state", "0" * 64], env=env, capture_output=True, text=True, timeout=30)
    assert gone.returncode != 0 and "does not exist" in gone.stderr  # how podman knows it is gone


def test_exec(podman, running):
    assert podman("exec", running, "echo", "hi").stdout == "hi\n"
    assert podman("exec", "-u", "1000:1000", running, "id").stdout.startswith("uid=1000(user) gid=1000(user)")
    assert podman("exec", "-w", "/tmp", running, "pwd").stdout == "/tmp\n"
    assert podman("exec", "-e", "FOO=bar", running, "sh", "-c", "echo $FOO").stdout == "bar\n"
    # exec joins the container's pid namespace: its init is `sleep` as pid 1
    assert podman("exec", running, "cat", "/proc/1/cmdline").stdout == "sleep\x001000\x00"


def test_exec_failing(podman, running):
    assert podman("exec", running, "sh", "-c", "exit 3", check=False).returncode == 3
    proc = podman("exec", running, "no-such-program", check=False)
    assert proc.returncode == 127, proc.stderr
    assert podman.inspect(running, "{{.State.Status}}") == "running"


# -- terminals ----------------------------------------------------------------------------------

Step = tuple[bytes, "bytes | Callable[[int], None] | None"]


def run_in_pty(argv: list[str], env: dict[str, str], size: tuple[int, int], steps: list[Step],
               timeout: float = 30) -> tuple[int, str]:
    """Run argv on a new pty (its controlling terminal) of the given size; for each (text, action)
    wait until the output contains text, then write bytes or call action(master). Returns the exit
    code and everything the terminal showed."""
    master, slave = pty.openpty()
    termios.tcsetwinsize(slave, size)

    def controlling_tty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd="/",
                            preexec_fn=controlling_tty)  # noqa: PLW1509 - no threads here
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    pending = list(steps)
    try:
        while time.monotonic() < deadline:
            while pending and pending[0][0] in out:
                _, action = pending.pop(0)
                if isinstance(action, bytes):
                    os.write(master, action)
                elif action is not None:
                    action(master)
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: every slave fd is closed
                    break
                if not data:
                    break
                out += data
            elif proc.poll() is not None and not pending:
                break
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = out.decode(errors="replace").replace("\r\n", "\n")
    assert not pending, f"terminal never showed {pending[0][0]!r}; it showed {text!r}"
    return rc, text


# Prints the size, echoes a line typed at the terminal, waits for the size to change, prints it again.
TTY_SCRIPT = ('tty; stty size; read line; echo "got:$line"; i=0; '
              'while [ "$(stty size)" = "{rows} {cols}" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; '
              'stty size; exit {code}')


def _tty_steps(rows: int, cols: int, new: tuple[int, int]) -> list[Step]:
    return [(f"{rows} {cols}\r\n".encode(), b"hello\n"),
            (b"got:hello", lambda m: termios.tcsetwinsize(m, new)),
            (f"{new[0]} {new[1]}\r\n".encode(), None)]


def test_run_it_pty(podman):
    script = TTY_SCRIPT.format(rows=33, cols=101, code=5)
    rc, text = run_in_pty(podman.argv("run", "-it", "--rm", podman.image, "sh", "-c", script),
                          podman.penv.env, (33, 101), _tty_steps(33, 101, (40, 120)))
    assert rc == 5, text
    # podman also forwards the SIGWINCH as `kill ID 28`; when that call races the container's state,
    # the runtime (runc too) rightly says it is not running, and podman's error line lands anywhere on
    # the pty (seen between two lines of the program's output under load): it is podman's, not ours.
    text = "".join(ln for ln in text.splitlines(keepends=True) if "container not running" not in ln)
    assert "/dev/pts/0\n33 101\n" in text and "got:hello\n40 120\n" in text


def test_exec_it_pty(podman, running):
    script = TTY_SCRIPT.format(rows=27, cols=91, code=4)
    rc, text = run_in_pty(podman.argv("exec", "-it", running, "sh", "-c", script),
                          podman.penv.env, (27, 91), _tty_steps(27, 91, (30, 100)))
    assert rc == 4, text
    assert "/dev/pts/" in text and "27 91\n" in text and "got:hello\n30 100\n" in text


# -- signals and the freezer --------------------------------------------------------------------

def test_pause_unpause(podman):
    cid = podman.run_d(podman.image, "sh", "-c", "while :; do date +%s%N > /tmp/tick; sleep 0.05; done")
    freezer = podman.cgroup_file(cid, "freezer", "freezer.state", "cgroup.freeze")
    podman("pause", cid)
    assert podman.inspect(cid, "{{.State.Status}}") == "paused"
    assert freezer.read_text().strip() in ("FROZEN", "1")
    assert "Paused" in podman("ps", "-a", "--format", "{{.Status}}").stdout
    podman("unpause", cid)
    assert podman.inspect(cid, "{{.State.Status}}") == "running"
    assert freezer.read_text().strip() in ("THAWED", "0")
    podman("rm", "-f", "-t", "0", cid)


def test_kill_term(podman):
    cid = podman.run_d(podman.image, "sh", "-c",
                       'trap "echo term; exit 42" TERM; echo ready; while :; do sleep 0.1; done')
    podman.wait_log(cid, "ready")
    podman("kill", "-s", "TERM", cid)
    assert podman("wait", cid).stdout.strip() == "42"
    assert "term" in podman("logs", cid).stdout
    podman("rm", cid)


def test_kill_kill(podman):
    cid = podman.run_d(podman.image, "sh", "-c", 'trap "" TERM; while :; do sleep 0.1; done')
    podman("kill", "-s", "KILL", cid)
    assert podman("wait", cid).stdout.strip() == "137"
    podman("rm", cid)


# -- resources ----------------------------------------------------------------------------------

def test_memory_and_pids_limits(podman):
    """--memory 64m --pids-limit 50: the cgroup values, a fork bomb capped, an allocation killed."""
    # An inner shell forks 200 sleeps until a fork fails (busybox sh then gives up); the outer one
    # reports and execs, so it needs no fork of its own once the limit is reached.
    bomb = "sh -c 'for i in $(seq 200); do sleep 600 & done' 2>/dev/null; echo forked; exec sleep 600"
    cid = podman.run_d("--memory", "64m", "--pids-limit", "50", podman.image, "sh", "-c", bomb)
    assert "forked" in podman.wait_log(cid, "forked", timeout=30)
    pids = podman.cgroup_file(cid, "pids", "pids.max", "pids.max").parent
    assert (pids / "pids.max").read_text().strip() == "50"
    assert 40 <= int((pids / "pids.current").read_text()) <= 50
    assert int(status_field((pids / "pids.events").read_text().replace(" ", ":", 1), "max")) > 0
    limit = podman.cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max")
    assert int(limit.read_text()) == 64 * 1024 * 1024
    podman("rm", "-f", "-t", "0", cid)
    # a 256 MiB string (bounded, so a missing limit cannot hurt the host) must be OOM-killed
    grow = "awk 'BEGIN { s = \"x\"; for (i = 0; i < 28; i++) s = s s; print length(s) }'; echo rc=$?"
    proc = podman("run", "--rm", "--memory", "64m", podman.image, "sh", "-c", grow)
    assert "rc=137" in proc.stdout, proc.stdout


# -- networks -----------------------------------------------------------------------------------

def test_network_none(podman):
    assert podman("run", "--rm", "--network", "none", podman.image, "ls", "/sys/class/net").stdout.split() == ["lo"]


def test_network_host(podman):
    before = set(os.listdir("/sys/class/net"))
    inside = set(podman("run", "--rm", "--network", "host", podman.image, "ls", "/sys/class/net").stdout.split())
    after = set(os.listdir("/sys/class/net"))
    # the host's interfaces (other tests on the host may add or remove some meanwhile)
    assert before & after <= inside <= before | after and len(inside) > 1


def test_network_default(podman):
    subnet = podman.penv.subnet
    proc = podman("run", "--rm", podman.image, "sh", "-c",
                  f"ls /sys/class/net; ip -4 addr show eth0; ping -c 1 -W 5 {subnet}.1")
    assert proc.stdout.split()[:2] == ["eth0", "lo"]
    assert f"inet {subnet}." in proc.stdout
    assert "1 packets received" in proc.stdout


# -- security -----------------------------------------------------------------------------------

def test_read_only(podman):
    proc = podman("run", "--rm", "--read-only", podman.image, "sh", "-c",
                  "touch /x; echo root=$?; touch /tmp/x; echo tmp=$?")
    assert "root=1" in proc.stdout and "tmp=0" in proc.stdout
    assert "Read-only file system" in proc.stderr


def test_cap_drop_all_add_net_raw(podman):
    only_raw = "--cap-drop", "ALL", "--cap-add", "NET_RAW"
    status = podman("run", "--rm", *only_raw, podman.image, "cat", "/proc/self/status").stdout
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert int(status_field(status, field), 16) == 1 << NET_RAW, status
    assert int(status_field(status, "CapInh"), 16) == 0
    # NET_RAW is what a raw ICMP socket needs: ping works with it and fails without any capability
    assert podman("run", "--rm", *only_raw, podman.image, "ping", "-c1", "-W2", "127.0.0.1", check=False).returncode == 0
    assert podman("run", "--rm", "--cap-drop", "ALL", podman.image, "ping", "-c1", "-W2", "127.0.0.1",
                  check=False).returncode != 0


def test_seccomp_default_and_unconfined(podman):
    default = podman("run", "--rm", podman.image, "cat", "/proc/self/status").stdout
    assert status_field(default, "Seccomp") == "2"
    assert int(status_field(default, "Seccomp_filters")) >= 1
    unconfined = podman("run", "--rm", "--security-opt", "seccomp=unconfined", podman.image,
                        "cat", "/proc/self/status").stdout
    assert status_field(unconfined, "Seccomp") == "0"


def test_user(podman):
    proc = podman("run", "--rm", "--user", "1000:1000", podman.image, "sh", "-c", "id; grep CapEff /proc/self/status")
    assert proc.stdout.startswith("uid=1000(user) gid=1000(user)")
    assert int(status_field(proc.stdout.split("\n", 1)[1], "CapEff"), 16) == 0


# -- many at once -------------------------------------------------------------------------------

def test_parallel_20(podman, tmp_path):
    procs = []
    for i in range(20):
        out = (tmp_path / f"out{i}").open("wb")
        procs.append((i, out, podman.popen("run", "--rm", podman.image, "echo", f"c{i}",
                                           stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)))
    for i, out, proc in procs:
        rc = proc.wait(timeout=120)
        out.close()
        text = (tmp_path / f"out{i}").read_text()
        assert rc == 0 and text == f"c{i}\n", f"container {i}: exit {rc}: {text}"
    assert podman("ps", "-a", "-q").stdout == ""

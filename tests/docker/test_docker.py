"""Docker (Debian's docker.io 20.10) drives pyruntime through containerd's runc v2 shim, on a private
dockerd (tests/docker/docker_env.py): every test runs once with `--runtime pyrt` and once with
docker's built-in runc as the control; test_hardened_same_as_runc compares both side by side.
The fixtures fail a test that leaves a container, runtime state, a cgroup or a shim behind.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest
from docker_env import docker_env_fixture, docker_fixture, dockers_fixture  # noqa: F401 - the fixtures

pytestmark = pytest.mark.docker

NET_RAW = 13


def status_field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in {text!r}")


# -- run ----------------------------------------------------------------------------------------

def test_run_output_and_exit_code(docker):
    assert docker("run", "--rm", docker.image, "echo", "hi").stdout == "hi\n"
    assert docker("run", "--rm", docker.image, "sh", "-c", "echo out; echo err >&2; exit 7",
                  check=False).returncode == 7
    both = docker("run", "--rm", docker.image, "sh", "-c", "echo out; echo err >&2", check=False)
    assert (both.stdout, both.stderr.splitlines()[-1]) == ("out\n", "err")


def test_missing_and_not_executable(docker):
    missing = docker("run", "--rm", docker.image, "no-such-program", check=False)
    assert missing.returncode == 127, missing.stderr
    # the shim read the runtime's JSON --log: its reason, not a bare "exit status 1"
    assert "executable file not found in $PATH" in missing.stderr
    denied = docker("run", "--rm", docker.image, "/etc/passwd", check=False)
    assert denied.returncode == 126, denied.stderr
    assert "permission denied" in denied.stderr.lower()
    assert docker("ps", "-aq").stdout == ""


def test_tty(docker):
    proc = docker("run", "--rm", "-t", docker.image, "sh", "-c", "tty; [ -t 0 ] && echo stdin-is-tty; exit 3",
                  check=False)
    assert proc.returncode == 3
    assert proc.stdout == "/dev/pts/0\r\nstdin-is-tty\r\n"


def test_stdin(docker):
    proc = docker("run", "--rm", "-i", docker.image, "sh", "-c", "read a; read b; echo got:$a:$b; tty",
                  input=b"one\ntwo\n", stdin=None, check=False)
    assert proc.stdout == "got:one:two\nnot a tty\n"
    assert proc.returncode == 1  # tty's status when stdin is not a terminal


# -- lifecycle ----------------------------------------------------------------------------------

def test_exec(docker):
    cid = docker.run_d(docker.image, "sleep", "600")
    assert docker("exec", cid, "echo", "exec-ok").stdout == "exec-ok\n"
    assert docker("exec", cid, "sh", "-c", "exit 3", check=False).returncode == 3
    assert docker("exec", "-u", "1000:1000", "-w", "/tmp", "-e", "FOO=bar", cid, "sh", "-c",
                  "id -u; pwd; echo $FOO").stdout == "1000\n/tmp\nbar\n"
    piped = docker("exec", "-i", cid, "cat", input=b"through stdin\n", stdin=None)
    assert piped.stdout == "through stdin\n"
    assert docker("exec", "-t", cid, "tty").stdout == "/dev/pts/0\r\n"
    missing = docker("exec", cid, "no-such-program", check=False)
    # docker 20.10 prints an exec's start error on stdout (with either runtime)
    assert missing.returncode == 126 and "executable file not found" in missing.stdout + missing.stderr
    # the exec'd processes are gone, the container's sleep is still pid 1
    assert docker("exec", cid, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '").stdout == "sleep 600 "
    docker("rm", "-f", cid)


def test_pause_unpause(docker):
    cid = docker.run_d(docker.image, "sh", "-c", "while :; do date +%s%N > /tmp/tick; sleep 0.05; done")
    freezer = docker.cgroup_file(cid, "freezer", "freezer.state", "cgroup.freeze")
    docker("pause", cid)
    assert docker.inspect(cid, "{{.State.Status}} {{.State.Paused}}") == "paused true"
    assert freezer.read_text().strip() in ("FROZEN", "1")
    # the container is the runtime's own: its state command reads it (each reads only its own format)
    assert docker.runtime_state(cid)["status"] == "paused"
    tick = docker("exec", cid, "cat", "/tmp/tick", check=False)
    assert tick.returncode != 0 and "paused" in tick.stderr  # docker refuses exec into a paused container
    docker("unpause", cid)
    assert docker.inspect(cid, "{{.State.Status}}") == "running"
    assert docker.runtime_state(cid)["status"] == "running"
    assert freezer.read_text().strip() in ("THAWED", "0")
    first = docker("exec", cid, "cat", "/tmp/tick").stdout
    deadline = time.monotonic() + 10
    while docker("exec", cid, "cat", "/tmp/tick").stdout == first:
        assert time.monotonic() < deadline, "the loop did not resume after unpause"
        time.sleep(0.1)
    docker("rm", "-f", cid)


def test_update(docker):
    cid = docker.run_d("--memory", "64m", "--memory-swap", "64m", "--pids-limit", "50", docker.image,
                       "sleep", "600")
    mem = docker.cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max")
    pids = docker.cgroup_file(cid, "pids", "pids.max", "pids.max")
    shares = docker.cgroup_file(cid, "cpu", "cpu.shares", "cpu.weight")
    assert int(mem.read_text()) == 64 << 20 and pids.read_text().strip() == "50"
    docker("update", "--memory", "96m", "--memory-swap", "128m", "--pids-limit", "40", "--cpu-shares", "512", cid)
    assert int(mem.read_text()) == 96 << 20
    assert pids.read_text().strip() == "40"
    if shares.name == "cpu.shares":
        assert shares.read_text().strip() == "512"
    assert docker.inspect(cid, "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}") == f"{96 << 20} 40"
    # the container sees its own limits (the cgroup mount shows its cgroup)
    inside = docker("exec", cid, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                    "/sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max")
    assert inside.stdout.split() == [str(96 << 20), "40"]
    docker("rm", "-f", cid)


def test_stop_start_rm(docker):
    script = 'echo started; trap "echo got-term; exit 3" TERM; while :; do sleep 0.1; done'
    cid = docker.run_d(docker.image, "sh", "-c", script)
    assert "started" in docker.wait_log(cid, "started")
    begin = time.monotonic()
    docker("stop", "-t", "20", cid)
    took = time.monotonic() - begin
    assert took < 10, f"stop took {took:.1f}s: SIGTERM was not delivered, docker waited for its timeout"
    assert docker.inspect(cid, "{{.State.Status}} {{.State.ExitCode}}") == "exited 3"
    assert docker("logs", cid).stdout == "started\ngot-term\n"
    docker("start", cid)
    assert docker.wait_log(cid, "started\ngot-term\nstarted").count("started") == 2
    assert docker.inspect(cid, "{{.State.Status}}") == "running"
    docker("kill", cid)
    assert docker("wait", cid).stdout.strip() == "137"
    docker("rm", cid)
    assert docker("ps", "-aq").stdout == ""


def test_oom_exit_137(docker):
    """A 256 MiB string under a 32 MiB limit (bounded: a missing limit cannot hurt the host)."""
    hog = "awk 'BEGIN { s = \"x\"; for (i = 0; i < 28; i++) s = s s; print length(s) }'"
    cid = docker("create", "--memory", "32m", "--memory-swap", "32m", docker.image, "sh", "-c", f"exec {hog}").stdout.strip()
    docker("start", cid)
    assert docker("wait", cid).stdout.strip() == "137"
    assert docker.inspect(cid, "{{.State.ExitCode}} {{.State.OOMKilled}}") == "137 true"
    docker("rm", cid)
    assert docker("run", "--rm", "--memory", "32m", "--memory-swap", "32m", docker.image, "sh", "-c", hog,
                  check=False).returncode == 137


# -- hardened: read-only root, tmpfs, caps, no-new-privileges, ulimits, pids, user, volume, device ----

HARDENED_SCRIPT = (
    "id; grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; ulimit -n; ulimit -Hn; "
    "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; "
    "touch /x 2>/dev/null; echo root=$?; touch /scratch/x; echo tmp=$?; "
    "echo hi > /data/from-container; echo vol=$?; cat /data/from-host; "
    "head -c 4 /dev/myzero | od -An -tx1; ls -l /dev/myzero | cut -c1; "
    "cat /proc/1/cmdline | tr '\\0' ' ' | cut -d' ' -f1; echo; "
    "grep -E ' / | /scratch | /data ' /proc/self/mounts | cut -d' ' -f2-4 | sed 's/,lowerdir.*//'")


def hardened_args(docker, volume: str) -> list[str]:
    args = ["--read-only", "--tmpfs", "/scratch", "--cap-drop", "ALL", "--cap-add", "NET_RAW",
            "--security-opt", "no-new-privileges", "--ulimit", "nofile=1024:2048", "--pids-limit", "20",
            "--user", "1000:1000", "-v", f"{volume}:/data", "--device", "/dev/zero:/dev/myzero"]
    if shutil.which("docker-init"):  # Debian's tini package provides it; --init uses it
        args.append("--init")
    return args


def _volume(tmp_path, name: str):
    vol = tmp_path / name
    vol.mkdir()
    vol.chmod(0o777)
    (vol / "from-host").write_text("from the host\n")
    return vol


def test_hardened(docker, tmp_path):
    vol = _volume(tmp_path, "vol")
    proc = docker("run", "--rm", *hardened_args(docker, str(vol)), docker.image, "sh", "-c", HARDENED_SCRIPT)
    out = proc.stdout
    assert out.startswith("uid=1000(user) gid=1000(user)"), out
    assert int(status_field(out, "CapBnd"), 16) == 1 << NET_RAW
    assert int(status_field(out, "CapEff"), 16) == 0  # a non-root user keeps no effective caps
    assert status_field(out, "NoNewPrivs") == "1" and status_field(out, "Seccomp") == "2"
    lines = out.splitlines()
    assert lines[lines.index("1024") + 1] == "2048"
    assert "20" in lines and "root=1" in lines and "tmp=0" in lines and "vol=0" in lines
    assert "from the host" in lines and " 00 00 00 00" in lines and "c" in lines
    assert (vol / "from-container").read_text() == "hi\n"
    assert (vol / "from-container").stat().st_uid == 1000
    assert "/ overlay ro" in out and "/scratch tmpfs rw" in out
    if not shutil.which("docker-init"):
        pytest.skip("docker-init (Debian package tini) is not installed: --init was not tested")
    assert "/sbin/docker-init" in lines


def test_hardened_same_as_runc(dockers, tmp_path):
    """The same hardened container under both runtimes prints exactly the same lines."""
    outs = {}
    for name, d in dockers.items():
        vol = _volume(tmp_path, f"vol-{name}")
        proc = d("run", "--rm", *hardened_args(d, str(vol)), d.image, "sh", "-c", HARDENED_SCRIPT, check=False)
        outs[name] = (proc.returncode, re.sub(r"vol-\w+", "vol", proc.stdout))
    assert outs["pyruntime"] == outs["runc"]


# -- many at once -------------------------------------------------------------------------------

def test_parallel_10(docker, tmp_path):
    procs = []
    for i in range(10):
        out = (tmp_path / f"out{i}").open("wb")
        procs.append((i, out, subprocess.Popen(docker.argv("run", "--rm", docker.image, "echo", f"c{i}"),
                                               env=docker.denv.env, stdin=subprocess.DEVNULL, stdout=out,
                                               stderr=subprocess.STDOUT)))
    for i, out, proc in procs:
        rc = proc.wait(timeout=180)
        out.close()
        text = (tmp_path / f"out{i}").read_text()
        assert rc == 0 and text.endswith(f"c{i}\n"), f"container {i}: exit {rc}: {text}"
    assert docker("ps", "-aq").stdout == ""

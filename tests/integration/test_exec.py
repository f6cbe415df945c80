"""`exec`: one more process in a running container, in all of its namespaces and its cgroup, with
its own user, capabilities, cwd and environment, and nothing of the runtime's."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _termutil import wait_gone
from pyruntime_tests_conftest import ROOTFS, wait_until

NS = ("pid", "mnt", "net", "ipc", "uts", "cgroup", "user", "time")


@pytest.fixture
def running(rt, make_bundle, cid) -> Iterator[str]:
    """A started container whose init sleeps; deleted afterwards."""
    def edit(config):  # noqa: ANN001, ANN202
        config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 777, "hard": 888}]

    rt("create", "--bundle", str(make_bundle(["sleep", "1000"], edit=edit)), cid)
    try:
        rt("start", cid)
        yield cid
    finally:
        rt("delete", "--force", cid)


def _init_pid(rt, cid: str) -> int:  # noqa: ANN001
    return rt.state(cid)["pid"]


def _detached(rt, cid: str, tmp_path: Path, *args: str, **kw) -> int:  # noqa: ANN001, ANN003
    pid_file = tmp_path / f"exec-{time.monotonic_ns()}.pid"
    rt("exec", "--detach", "--pid-file", str(pid_file), *args[:-1], cid, *args[-1].split(), **kw)
    text = pid_file.read_text()
    assert text.isdigit(), f"pid file must hold the bare pid: {text!r}"
    return int(text)


def _status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def test_foreground_output_and_exit_code(rt, running):
    proc = rt("exec", running, "sh", "-c", "echo hi; echo err >&2; exit 7", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, "hi\n", "err\n")
    assert rt("exec", running, "true").returncode == 0


def test_exit_by_signal_gives_128_plus_n(rt, running):
    assert rt("exec", running, "sh", "-c", "kill -9 $$", check=False).returncode == 137


def test_env_cwd_user_and_groups(rt, running):
    proc = rt("exec", "-e", "FOO=bar", "--env", "EMPTY=", "--cwd", "/tmp", "-u", "1000:1001", "-g", "10", "-g", "20,30",
              running, "sh", "-c", 'echo "$FOO|$EMPTY|$TERM|$HOME"; pwd; id -u; id -g; id -G')
    lines = proc.stdout.splitlines()
    assert lines[0] == "bar||xterm|/home"  # the container's env kept, ours appended; HOME from its passwd
    assert lines[1:4] == ["/tmp", "1000", "1001"]
    assert sorted(lines[4].split()) == ["10", "1001", "20", "30"]


def test_user_uid_only_keeps_the_configs_gid(rt, running):
    assert rt("exec", "-u", "5", running, "sh", "-c", "id -u; id -g").stdout.split() == ["5", "0"]


BAD_USERS = ["root", "1000abc", "1000:", ":1000", "-1", "0x10", " 1", "1 ", "1:2:3", "4294967295", "99999999999",
             "1000:nogroup", "\u0661\u0662", "+5", "1_000", "0o7", "1\n", "0\n"]


def test_user_parsing_is_exact(rt, running):
    """Anything but uid[:gid] in plain decimal is refused before anything runs (crun CVE-2026-30892)."""
    for user in BAD_USERS:
        proc = rt("exec", "-u", user, running, "id", check=False)
        assert proc.returncode == 255 and "--user" in proc.stderr and proc.stdout == "", (user, proc)


def test_bad_additional_gid_is_refused(rt, running):
    proc = rt("exec", "-g", "wheel", running, "true", check=False)
    assert proc.returncode == 255 and "--additional-gids" in proc.stderr


def test_namespaces_and_cgroup_are_the_inits(rt, running, tmp_path):
    init = _init_pid(rt, running)
    pid = _detached(rt, running, tmp_path, "sleep 30")
    try:
        for ns in NS:
            assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{init}/ns/{ns}"), ns
        assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{init}/cgroup").read_text()
        assert os.stat(f"/proc/{pid}/root").st_ino == os.stat(f"/proc/{init}/root").st_ino
        # the process sees itself with a pid of the container's pid namespace
        ns_pids = [ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("NSpid:")]
        assert ns_pids[0].split()[1] == str(pid) and len(ns_pids[0].split()) == 3
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)


def test_detached_exec_pid_file_and_quick_return(rt, running, tmp_path):
    t0 = time.monotonic()
    pid = _detached(rt, running, tmp_path, "sleep 30")
    assert time.monotonic() - t0 < 5
    try:
        assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0030\x00"
        # not a child of the exited runtime, and not left as a zombie of it
        assert Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0] in ("S", "R")
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)


def test_exec_process_runs_the_containers_binary_never_a_host_file(rt, running, tmp_path):
    """/proc/<pid>/exe of the exec'd process is the rootfs's busybox; inside the container no process
    has the host's Python (or any host file) as its executable."""
    pid = _detached(rt, running, tmp_path, "sleep 30")
    try:
        busybox = os.stat(ROOTFS / "bin" / "busybox")

        def exe() -> tuple[int, int]:
            st = os.stat(f"/proc/{pid}/exe")
            return st.st_dev, st.st_ino

        # `exec -d` returns once the process runs the sealed stub, which execs the program right away
        # (a memfd, never a host file, meanwhile): wait for that execve
        wait_until(lambda: exe() == (busybox.st_dev, busybox.st_ino), what="the program's execve")
        python = os.stat(os.path.realpath(sys.executable))
        listing = rt("exec", running, "sh", "-c", "for p in /proc/[0-9]*; do readlink $p/exe; done").stdout
        assert listing.split() and all(line in ("/bin/busybox",) for line in listing.split()), listing
        for p in Path(f"/proc/{pid}/root/proc").glob("[0-9]*"):
            try:
                st = os.stat(p / "exe")
            except OSError:
                continue
            assert (st.st_dev, st.st_ino) != (python.st_dev, python.st_ino)
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)


def test_shebang_proc_self_exe_reexecutes_the_stub_not_the_runtime(rt, running):
    """A program whose interpreter is /proc/self/exe re-runs what exec'd it: the sealed memfd stub,
    which refuses to run without its arguments (125). The host's Python is untouched."""
    python = os.path.realpath(sys.executable)
    before = hashlib.sha256(Path(python).read_bytes()).hexdigest()
    rt("exec", running, "sh", "-c", "printf '#!/proc/self/exe\\n' > /tmp/evil && chmod +x /tmp/evil")
    proc = rt("exec", running, "/tmp/evil", check=False)
    assert proc.returncode == 125, (proc.returncode, proc.stderr)
    assert "initstub" in proc.stderr
    assert hashlib.sha256(Path(python).read_bytes()).hexdigest() == before


def test_capabilities_inheritable_empty_and_cap_flag(rt, running, tmp_path):
    pid = _detached(rt, running, tmp_path, "sleep 30")
    try:
        assert int(_status_field(pid, "CapInh"), 16) == 0  # crun CVE-2022-27650
        assert int(_status_field(pid, "CapAmb"), 16) == 0
        eff = int(_status_field(pid, "CapEff"), 16)
        assert eff == int(_status_field(_init_pid(rt, running), "CapEff"), 16)
        assert not eff & (1 << 13)  # CAP_NET_RAW is not in the config
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
    pid = _detached(rt, running, tmp_path, "--cap", "CAP_NET_RAW", "sleep 30")
    try:
        assert int(_status_field(pid, "CapEff"), 16) & (1 << 13)
        assert int(_status_field(pid, "CapBnd"), 16) & (1 << 13)
        assert int(_status_field(pid, "CapInh"), 16) == 0
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)


def test_non_root_user_loses_capabilities(rt, running):
    out = rt("exec", "-u", "1000", running, "sh", "-c", "grep -E '^Cap(Eff|Prm|Inh)' /proc/self/status").stdout
    assert all(int(line.split()[1], 16) == 0 for line in out.splitlines()), out


def test_rlimits_and_no_new_privs_from_the_container(rt, running):
    out = rt("exec", running, "sh", "-c", "ulimit -n; ulimit -Hn; grep NoNewPrivs /proc/self/status").stdout.split()
    assert out[:2] == ["777", "888"]
    assert out[-1] == "1"


def test_no_new_privs_flag(rt, make_bundle, cid):
    def edit(config):  # noqa: ANN001, ANN202
        config["process"]["noNewPrivileges"] = False

    rt("create", "--bundle", str(make_bundle(["sleep", "1000"], edit=edit)), cid)
    try:
        rt("start", cid)
        cmd = ["sh", "-c", "grep NoNewPrivs /proc/self/status"]
        assert rt("exec", cid, *cmd).stdout.split()[-1] == "0"
        assert rt("exec", "--no-new-privs", cid, *cmd).stdout.split()[-1] == "1"
    finally:
        rt("delete", "--force", cid)


def test_only_stdio_and_preserved_fds_reach_the_process(rt, running, tmp_path):
    pid_file = tmp_path / "p.pid"
    argv = rt.argv("exec", "--detach", "--pid-file", str(pid_file), "--preserve-fds", "1", running, "sleep", "30")
    subprocess.run(["sh", "-c", 'exec "$@" 3</dev/null', "sh", *argv], check=True, timeout=30,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    pid = int(pid_file.read_text())
    try:
        assert sorted(int(x) for x in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2, 3]
        assert os.readlink(f"/proc/{pid}/fd/3") == "/dev/null"
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
    pid = _detached(rt, running, tmp_path, "sleep 30")
    try:
        assert sorted(int(x) for x in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)


@pytest.mark.parametrize("cwd", ["/proc/self/fd/3", "/proc/thread-self/fd/4", "/proc/1/fd/3", "/proc/self/fd/"])
def test_cwd_into_proc_fd_is_refused(rt, running, cwd):
    """CVE-2024-21626: a cwd through a file descriptor could land in a host directory."""
    proc = rt("exec", "--cwd", cwd, running, "pwd", check=False)
    assert proc.returncode == 255 and proc.stdout == "" and "cwd" in proc.stderr


def test_bad_cwd_and_missing_programs(rt, running):
    proc = rt("exec", "--cwd", "/nonexistent", running, "pwd", check=False)
    assert proc.returncode == 255 and "no such file or directory" in proc.stderr
    proc = rt("exec", running, "no-such-program", check=False)
    assert proc.returncode == 255 and "executable file not found in $PATH" in proc.stderr
    proc = rt("exec", running, "/no/such/file", check=False)
    assert proc.returncode == 255 and "no such file or directory" in proc.stderr
    proc = rt("exec", running, "/etc", check=False)
    assert proc.returncode == 255 and "permission denied" in proc.stderr
    proc = rt("exec", "--cwd", "relative", running, "pwd", check=False)
    assert proc.returncode == 255 and "absolute" in proc.stderr


def test_process_file(rt, running, tmp_path):
    """conmon's form: --process with a runtime-spec process, capabilities with an inheritable set
    only when the file asks for one."""
    caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    process = {"terminal": False, "cwd": "/tmp", "user": {"uid": 2000, "gid": 3000, "additionalGids": [4000]},
               "args": ["sh", "-c", "pwd; id -u; id -g; id -G; echo $X; grep -E '^Cap(Inh|Amb)' /proc/self/status"],
               "env": ["PATH=/bin", "X=from-file"],
               "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps,
                                "ambient": caps}}
    f = tmp_path / "process.json"
    f.write_text(json.dumps(process))
    out = rt("exec", "--process", str(f), running).stdout.splitlines()
    assert out[:3] == ["/tmp", "2000", "3000"]
    assert sorted(out[3].split()) == ["3000", "4000"]
    assert out[4] == "from-file"
    assert int(out[5].split()[1], 16) == (1 << 5) | (1 << 10)  # asked for: CAP_KILL, CAP_NET_BIND_SERVICE
    assert int(out[6].split()[1], 16) == (1 << 5) | (1 << 10)


BAD_PROCESS_FILES = [
    ('{"cwd": "/", "args": "sh"}', "args: expected an array"),
    ('{"args": ["sh"]}', "cwd: required field is missing"),
    ('{"cwd": "/", "args": ["true"], "user": {"uid": -1, "gid": 0}}', "user.uid: -1 is out of range"),
    ('{"cwd": "/", "args": ["true"], "capabilities": {"effective": ["CAP_BOGUS"]}}', "CAP_BOGUS"),
    ('{"cwd": "/", "args": ["true"], "env": ["NOEQUALS"]}', "env[0]"),
    ('{"cwd": "/", "args": []}', "args"),
    ("[1, 2]", "expected a JSON object"),
    ("{not json", "invalid JSON"),
]


def test_bad_process_file_is_one_clear_line(rt, running, tmp_path):
    f = tmp_path / "process.json"
    for content, where in BAD_PROCESS_FILES:
        f.write_text(content)
        proc = rt("exec", "--process", str(f), running, check=False)
        assert proc.returncode == 255, content
        assert str(f) in proc.stderr and where in proc.stderr, (content, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    missing = tmp_path / "missing.json"
    proc = rt("exec", "--process", str(missing), running, check=False)
    assert proc.returncode == 255 and str(missing) in proc.stderr and "no such file" in proc.stderr


def test_process_file_and_command_together_is_refused(rt, running, tmp_path):
    f = tmp_path / "p.json"
    f.write_text('{"cwd": "/", "args": ["true"]}')
    proc = rt("exec", "--process", str(f), running, "true", check=False)
    assert proc.returncode == 255 and "not both" in proc.stderr


def test_exec_into_stopped_paused_and_missing_containers(rt, make_bundle, cid, running):
    proc = rt("exec", "no-such-container", "true", check=False)
    assert proc.returncode == 255 and "does not exist" in proc.stderr

    freezer = _freezer_state(rt, running)
    freezer.write_text("FROZEN")
    try:
        assert rt.state(running)["status"] == "paused"
        proc = rt("exec", running, "true", check=False, timeout=20)
        assert proc.returncode == 255 and "paused" in proc.stderr
    finally:
        freezer.write_text("THAWED")

    other = cid + "-x"
    rt("run", "--detach", "--bundle", str(make_bundle(["true"])), other)
    try:
        deadline = time.monotonic() + 10
        while rt.state(other)["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        proc = rt("exec", other, "true", check=False)
        assert proc.returncode == 255 and "stopped" in proc.stderr
    finally:
        rt("delete", "--force", other)


def _freezer_state(rt, cid: str) -> Path:  # noqa: ANN001
    for line in Path(f"/proc/{_init_pid(rt, cid)}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if "freezer" in ctrls.split(","):
            return Path("/sys/fs/cgroup/freezer") / path.lstrip("/") / "freezer.state"
    pytest.skip("no v1 freezer on this host")


def test_foreground_exec_forwards_signals_and_does_not_hold_the_lock(rt, running):
    proc = subprocess.Popen(rt.argv("exec", running, "sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.05; done"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.7)
        assert rt.state(running)["status"] == "running"
        rt("kill", running, "CONT")  # needs the container's lock (shared): not held by a running exec
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 42
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()



@pytest.mark.parametrize("detach", [False, True])
def test_exec_process_never_holds_the_state_lock(rt, running, tmp_path, detach):
    """delete --force takes the state lock exclusively: an exec'd process that runs on (or a child
    stuck before its exec) must not make it wait."""
    args = ["exec", *(["--detach"] if detach else []), running, "sleep", "1000"]
    proc = subprocess.Popen(rt.argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _sleepers(rt, running) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _sleepers(rt, running), "the exec'd sleep never ran"
        if detach:
            assert proc.wait(timeout=10) == 0
        t0 = time.monotonic()
        rt("delete", "--force", running, timeout=20)
        assert time.monotonic() - t0 < 3, "delete --force waited for the lock"
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _sleepers(rt, cid: str) -> list[int]:  # noqa: ANN001
    """The container's processes other than its init that run `sleep 1000` after their exec."""
    out = []
    for pid in json.loads(rt("ps", "--format", "json", cid).stdout):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd[:2] == [b"sleep", b"1000"] and pid != _init_pid(rt, cid):
            out.append(pid)
    return out



def test_exec_children_never_hold_the_state_lock(rt, running):
    """A joiner stuck before its exec (here: frozen on joining a paused container's cgroup) after its
    runtime died must not keep the state lock: delete --force (exclusive lock) must not wait."""
    freezer = _freezer_state(rt, running)
    init = _init_pid(rt, running)
    rt("pause", running)
    proc = subprocess.Popen(rt.argv("exec", "--ignore-paused", running, "sleep", "1000"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        procs = freezer.with_name("cgroup.procs")
        deadline = time.monotonic() + 10
        while len(procs.read_text().split()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        joiner = [int(p) for p in procs.read_text().split() if int(p) != init]
        assert joiner, "the exec joiner never joined the cgroup"
        proc.kill()  # the runtime dies; its joiner stays frozen
        proc.wait()
        t0 = time.monotonic()
        done = rt("delete", "--force", running, check=False, timeout=5)
        assert done.returncode == 0 and time.monotonic() - t0 < 3, done.stderr
    except subprocess.TimeoutExpired:
        pytest.fail("delete --force waited for the lock held by a frozen exec child")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if freezer.exists():  # the failure case: let the fixture's delete through
            freezer.write_text("THAWED")


def test_exec_cgroup_flag_joins_a_sub_cgroup(rt, running, tmp_path):
    init = _init_pid(rt, running)
    pids_rel = next(line.split(":", 2)[2] for line in Path(f"/proc/{init}/cgroup").read_text().splitlines()
                    if "pids" in line.split(":")[1].split(","))
    sub = Path("/sys/fs/cgroup/pids") / pids_rel.lstrip("/") / "sub"
    sub.mkdir()
    try:
        pid = _detached(rt, running, tmp_path, "--cgroup", "pids:sub", "sleep 30")
        try:
            assert str(pid) in (sub / "cgroup.procs").read_text().split()
        finally:
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid)
        proc = rt("exec", "--cgroup", "pids:../escape", running, "true", check=False)
        assert proc.returncode == 255 and "--cgroup" in proc.stderr
    finally:
        for _ in range(50):
            try:
                sub.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def test_seccomp_of_the_container_applies_to_exec(rt, make_bundle, cid):
    def edit(config):  # noqa: ANN001, ANN202
        config["process"]["noNewPrivileges"] = False
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}

    rt("create", "--bundle", str(make_bundle(["sleep", "1000"], edit=edit)), cid)
    try:
        rt("start", cid)
        for user in ("0", "1000"):  # as root (filter loaded late) and as a user without CAP_SYS_ADMIN (early)
            out = rt("exec", "-u", user, cid, "sh", "-c",
                     "grep '^Seccomp:' /proc/self/status; mkdir /tmp/d$$ 2>/dev/null; echo rc=$?").stdout.split()
            assert out == ["Seccomp:", "2", "rc=1"], (user, out)
    finally:
        rt("delete", "--force", cid)


def test_exec_into_a_user_namespace(rt, make_bundle, cid, tmp_path):
    """setns through the pidfd enters the user namespace first: ids are the container's, mapped on the host."""
    def edit(config):  # noqa: ANN001, ANN202
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["mounts"] = [m for m in config["mounts"] if m["type"] not in ("sysfs", "cgroup")]

    rt("create", "--bundle", str(make_bundle(["sleep", "1000"], edit=edit)), cid)
    try:
        rt("start", cid)
        out = rt("exec", "-u", "1000:1000", "-g", "5", cid, "sh", "-c", "id -u; id -g; id -G; cat /proc/self/uid_map")
        assert out.stdout.split() == ["1000", "1000", "1000", "5", "0", "100000", "65536"]
        pid = _detached(rt, cid, tmp_path, "sleep 30")
        try:
            assert _status_field(pid, "Uid").split() == ["100000"] * 4
            assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink(f"/proc/{_init_pid(rt, cid)}/ns/user")
        finally:
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid)
    finally:
        rt("delete", "--force", cid)


def test_namespace_join_falls_back_to_proc_ns_files(rt, running):
    """On kernels without setns(pidfd) the joiner enters /proc/<pid>/ns/* one by one: forced here by
    handing it an fd that is not a pidfd (setns answers EINVAL, as an old kernel does)."""
    from pyruntime.exec_ import _namespaces_to_join
    from pyruntime.process.setns_init import ExecPlan, _enter_namespaces

    init = _init_pid(rt, running)
    flags = _namespaces_to_join(init)
    assert flags
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            host_proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY)
            not_a_pidfd = os.open("/dev/null", os.O_RDONLY)
            plan = ExecPlan(container_id=running, process={}, args=[], init_pid=init, pidfd=not_a_pidfd,
                            ns_flags=flags, cgroup_paths={}, cap_sets=None, setgroups_allowed=True, stub_fd=-1)
            _enter_namespaces(plan)
            links = [os.readlink(f"self/ns/{ns}", dir_fd=host_proc) for ns in ("mnt", "net", "ipc", "uts", "cgroup")]
            os.write(w, json.dumps(links).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        got = f.read()
    os.waitpid(pid, 0)
    assert json.loads(got) == [os.readlink(f"/proc/{init}/ns/{ns}") for ns in ("mnt", "net", "ipc", "uts", "cgroup")]


def test_runtime_fds_in_the_preserved_range_never_reach_the_container(rt, make_bundle, cid, tmp_path):
    """--preserve-fds N with fewer fds than N: the numbers left free are taken by the runtime's own
    files (its --log file, the container's state dir). Those are close-on-exec, the caller's are not:
    only the caller's may get through, for the init and for exec alike."""
    log = tmp_path / "runtime.log"
    rt("--log", str(log), "run", "--detach", "--preserve-fds", "4", "--bundle", str(make_bundle(["sleep", "1000"])),
       cid)
    try:
        init = _init_pid(rt, cid)
        assert sorted(int(x) for x in os.listdir(f"/proc/{init}/fd")) == [0, 1, 2]
        pid = _detached(rt, cid, tmp_path, "--preserve-fds", "4", "sleep 30")
        # the same through the global --log flag (it comes before the command)
        pid_file = tmp_path / "logged.pid"
        rt("--log", str(log), "exec", "--detach", "--pid-file", str(pid_file), "--preserve-fds", "4", cid, "sleep", "30")
        logged = int(pid_file.read_text())
        try:
            for p in (pid, logged):
                targets = [os.readlink(f"/proc/{p}/fd/{fd}") for fd in os.listdir(f"/proc/{p}/fd")]
                assert len(targets) == 3, targets
                assert not any(str(log) in t or rt.root in t for t in targets), targets
        finally:
            for p in (pid, logged):
                os.kill(p, signal.SIGKILL)
                wait_gone(p)
    finally:
        rt("delete", "--force", cid)


def test_early_seccomp_with_a_profile_that_lacks_close_range(rt, make_bundle, cid):
    """A user without CAP_SYS_ADMIN and without no_new_privs gets the filter before the user change;
    what the runtime does after it must not need syscalls an old profile lacks (close_range)."""
    def edit(config):  # noqa: ANN001, ANN202
        config["process"]["noNewPrivileges"] = False
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}

    rt("create", "--bundle", str(make_bundle(["sleep", "1000"], edit=edit)), cid)
    try:
        rt("start", cid)
        out = rt("exec", "-u", "1000", cid, "sh", "-c", "id -u; grep '^Seccomp:' /proc/self/status").stdout.split()
        assert out == ["1000", "Seccomp:", "2"]
    finally:
        rt("delete", "--force", cid)

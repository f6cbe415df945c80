"""CVE-2019-5736 class: a container must never get a writable handle on a host binary or library
(the runtime's init stub, the host Python, libpython, the C extension) through /proc/<pid>/exe or
/proc/<pid>/map_files of any process it can see, nor through a `#!/proc/self/exe` entrypoint."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _attack import (  # noqa: F401 - fixtures
    attack_findings,
    attacker_bin,
    evil_bundle,
    evil_rootfs,
    has_command,
    host_untouched,
    over_privileged,
    own_inodes,
    userns_rootfs,
    wait_file,
)


def plant(rootfs: Path, attacker_bin: Path) -> None:
    shutil.copy(attacker_bin, rootfs / "attacker")
    evil = rootfs / "evil"
    evil.write_text("#!/proc/self/exe\n")
    evil.chmod(0o755)


def test_waiting_init_is_a_sealed_memfd_mapping_no_host_file(rt, make_bundle, cid):
    """Between create and start the container's only process is the stub, run from a sealed memfd:
    its exe cannot be opened for writing, and it maps no file of the host at all."""
    rt("create", "--bundle", str(make_bundle(["true"])), cid)
    try:
        pid = rt.state(cid)["pid"]
        exe = f"/proc/{pid}/exe"
        assert os.readlink(exe).startswith("/memfd:pyruntime-init")
        with pytest.raises(OSError) as e:
            os.open(exe, os.O_WRONLY)
        assert e.value.errno in (26, 1)  # ETXTBSY (being executed) or EPERM (sealed)
        fd = os.open(exe, os.O_RDONLY)
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            want = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK
            assert seals & want == want
            with pytest.raises(OSError):
                os.pwrite(fd, b"x", 0)
        finally:
            os.close(fd)
        files = {line.split()[5] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                 if len(line.split()) >= 6 and line.split()[5].startswith("/")}
        assert all(f.startswith("/memfd:pyruntime-init") for f in files), files
    finally:
        rt("delete", "--force", cid)


def test_shebang_proc_self_exe_entrypoint(rt, evil_bundle, evil_rootfs, attacker_bin, cid):
    """The entrypoint is a script whose interpreter is /proc/self/exe: the kernel re-runs whatever
    executes the entrypoint. That is the stub from its memfd (not a host binary); it refuses to run
    without its arguments, and nothing of the host is reachable or changed."""
    plant(evil_rootfs, attacker_bin)
    proc = rt("run", "--bundle", str(evil_bundle(["/evil"])), cid, check=False)
    assert proc.returncode == 125, (proc.returncode, proc.stderr)
    assert "initstub: usage" in proc.stderr


def base_caps() -> list[str]:
    from pyruntime_tests_conftest import base_config

    return base_config(["true"], "/x")["process"]["capabilities"]["bounding"]


@pytest.fixture
def host_marker(tmp_path: Path) -> Path:
    """A host file no container may reach, in the directory the runtime is started from: seen
    through /proc/<pid>/root or /proc/<pid>/cwd of some process, it is a way out."""
    d = tmp_path / "runtime-cwd"
    d.mkdir()
    marker = d / f"prt-host-marker-{os.getpid()}"
    marker.write_text("host")
    return marker


def _joined(a_pid: int, entry: list[str]):  # noqa: ANN202 - config edit
    def edit(config: dict) -> None:
        for ns in config["linux"]["namespaces"]:
            if ns["type"] == "pid":
                ns["path"] = f"/proc/{a_pid}/ns/pid"
        config["process"]["args"] = entry

    return edit


@pytest.mark.parametrize("ptrace", [False, True], ids=["default-caps", "cap-sys-ptrace"])
def test_container_sharing_pid_ns_cannot_reach_host_binaries(rt, evil_bundle, evil_rootfs, attacker_bin, cid,
                                                              ptrace, host_marker):
    """Container A scans every process it can see, as fast as it can, for a writable or O_PATH handle
    on an exe or mapped file while the runtime sets container B up in A's pid namespace (B's init
    is the runtime's Python until it execs the stub) and B runs a `#!/proc/self/exe` entrypoint.
    A holds CAP_SYS_ADMIN (map_files needs it); with CAP_SYS_PTRACE too it could pass the
    non-dumpable check, which is why the runtime's Python must never be reachable at all."""
    plant(evil_rootfs, attacker_bin)

    def caps(config: dict) -> None:
        if ptrace:
            for k in ("bounding", "effective", "permitted"):
                config["process"]["capabilities"][k].append("CAP_SYS_PTRACE")

    a = evil_bundle(["sh", "-c", f"/attacker scan 30 {host_marker} > /scan.out 2>&1; sleep 100"], edit=caps, name="a")
    rt("run", "--detach", "--bundle", str(a), f"{cid}-a")
    try:
        a_pid = rt.state(f"{cid}-a")["pid"]
        wait_file(evil_rootfs / "scan.out", "SCANNING")
        deadline = time.monotonic() + 2.5
        n = 0
        while time.monotonic() < deadline or n < 3:
            b = evil_bundle(["/evil"], edit=_joined(a_pid, ["/evil"]), name=f"b{n}")
            rt("create", "--bundle", str(b), f"{cid}-b{n}", cwd=host_marker.parent)
            rt("start", f"{cid}-b{n}")
            time.sleep(0.05)
            rt("delete", "--force", f"{cid}-b{n}")
            n += 1
        (evil_rootfs / "stop-scan").touch()
        out = wait_file(evil_rootfs / "scan.out", "DONE", timeout=30)
    finally:
        rt("delete", "--force", f"{cid}-a")
    assert "pyruntime-init" in out, "the attacker never saw the stub: the attack did not run"
    bad = attack_findings(out, own_inodes(evil_rootfs))
    assert not bad, "\n".join(bad)
    if ptrace:  # it did reach the runtime's Python and libraries: read-only mounts are what stopped it
        assert "Read-only file system" in out
    bounding = base_caps() + (["CAP_SYS_PTRACE"] if ptrace else [])
    hijackable = over_privileged(out, bounding)
    assert not hijackable, "a process with more capabilities than the container was visible:\n" + "\n".join(hijackable)


@pytest.mark.skipif(not has_command("exec"), reason="`pyruntime exec` is not implemented yet (issue: exec)")
@pytest.mark.parametrize("ptrace", [False, True], ids=["default-caps", "cap-sys-ptrace"])
def test_exec_into_container_cannot_expose_host_binaries(rt, evil_bundle, evil_rootfs, attacker_bin, cid, ptrace,
                                                         host_marker):
    """The process `exec` puts into a running container must not be a host binary the container
    can reopen for writing: the container scans while `exec` runs a `#!/proc/self/exe` program."""
    plant(evil_rootfs, attacker_bin)

    def caps(config: dict) -> None:
        if ptrace:
            for k in ("bounding", "effective", "permitted"):
                config["process"]["capabilities"][k].append("CAP_SYS_PTRACE")

    bundle = evil_bundle(["sh", "-c", f"/attacker scan 30 {host_marker} > /scan.out 2>&1; sleep 100"], edit=caps)
    rt("run", "--detach", "--bundle", str(bundle), cid)
    try:
        wait_file(evil_rootfs / "scan.out", "SCANNING")
        deadline = time.monotonic() + 2.5
        n = 0
        while time.monotonic() < deadline or n < 3:
            n += 1
            rt("exec", cid, "/evil", check=False, cwd=host_marker.parent)
            rt("exec", cid, "true", check=False, cwd=host_marker.parent)
        (evil_rootfs / "stop-scan").touch()
        out = wait_file(evil_rootfs / "scan.out", "DONE", timeout=30)
    finally:
        rt("delete", "--force", cid)
    # the attacker did see the joining runtime process: denied (not dumpable) or read-only
    assert "Permission denied" in out or "Read-only file system" in out, "the attack did not run:\n" + out
    bad = attack_findings(out, own_inodes(evil_rootfs))
    assert not bad, "\n".join(bad)
    if ptrace:  # it did reach the runtime's Python and libraries: read-only mounts are what stopped it
        assert "Read-only file system" in out
    bounding = base_caps() + (["CAP_SYS_PTRACE"] if ptrace else [])
    hijackable = over_privileged(out, bounding)
    assert not hijackable, "a process with more capabilities than the container was visible:\n" + "\n".join(hijackable)


def test_stub_rejects_writes_to_itself_from_inside(rt, evil_bundle, evil_rootfs, attacker_bin, cid):
    """The container's process opens /proc/1/exe (the stub memfd it was started from, if anything
    still runs it) and its own exe read-write: nothing of the host is reachable."""
    plant(evil_rootfs, attacker_bin)
    proc = rt("run", "--bundle", str(evil_bundle(["/attacker", "writeself"])), cid, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "WRITTEN" not in proc.stdout
    # /attacker itself is the container's own file, busy while it runs
    assert "Text file busy" in proc.stdout


def test_user_namespaced_container_cannot_reach_joining_init(rt, make_bundle, userns_rootfs, attacker_bin, cid):
    """Container A's root has every capability of A's user namespace (CAP_SYS_PTRACE included) and
    container B's init (the runtime's Python) joins that user namespace and A's pid namespace. B's
    init is not dumpable (PR_SET_DUMPABLE(0) before the fork, and again by the kernel when it changes
    to the namespace's root) and its mm belongs to the host's user namespace, so A must see
    nothing of it: no exe, no map_files, no handle on the host's Python or its libraries."""
    evil_rootfs = userns_rootfs
    plant(evil_rootfs, attacker_bin)
    subprocess.run(["chown", "-R", "100000:100000", str(evil_rootfs)], check=True)
    all_caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID", "CAP_SETGID",
                "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]

    def userns(config: dict) -> None:
        config["root"] = {"path": str(evil_rootfs), "readonly": False}
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        for k in ("bounding", "effective", "permitted"):
            config["process"]["capabilities"][k] = all_caps
        config["mounts"] = [m for m in config["mounts"] if m["type"] not in ("sysfs", "mqueue")]

    a = make_bundle(["sh", "-c", "/attacker scan 30 > /scan.out 2>&1; sleep 100"], edit=userns, name="a")
    rt("run", "--detach", "--bundle", str(a), f"{cid}-a")
    try:
        a_pid = rt.state(f"{cid}-a")["pid"]
        wait_file(evil_rootfs / "scan.out", "SCANNING")

        def join(config: dict) -> None:
            userns(config)
            for ns in config["linux"]["namespaces"]:
                if ns["type"] in ("pid", "user"):
                    ns["path"] = f"/proc/{a_pid}/ns/{ns['type']}"
            config["linux"].pop("uidMappings")
            config["linux"].pop("gidMappings")

        deadline = time.monotonic() + 2.5
        n = 0
        while time.monotonic() < deadline or n < 3:
            b = make_bundle(["/evil"], edit=join, name=f"b{n}")
            rt("create", "--bundle", str(b), f"{cid}-b{n}")
            rt("delete", "--force", f"{cid}-b{n}")
            n += 1
        (evil_rootfs / "stop-scan").touch()
        out = wait_file(evil_rootfs / "scan.out", "DONE", timeout=30)
    finally:
        rt("delete", "--force", f"{cid}-a")
    assert "pyruntime-init" in out, "the attacker never saw B's init: the attack did not run"
    python = os.path.basename(os.path.realpath(sys.executable))
    seen = [line for line in out.splitlines() if python in line or "libpython" in line]
    assert not seen, "A reached the runtime's Python in B's init:\n" + "\n".join(seen)
    bad = attack_findings(out, own_inodes(evil_rootfs))
    assert not bad, "\n".join(bad)


def test_late_joined_pid_namespace_is_the_containers(rt, make_bundle, cid, tmp_path):
    """The init joins a configured pid namespace only after pivot_root: the container still lives in
    that namespace, its /proc is that namespace's (not the host's), startContainer hooks get its
    host pid, and a terminal is still its controlling terminal."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
    from _termutil import ConsoleReceiver

    rt("run", "--detach", "--bundle", str(make_bundle(["sleep", "30"], name="a")), f"{cid}-a")
    try:
        a_pid = rt.state(f"{cid}-a")["pid"]
        hook_out = tmp_path / "out" / "hook.json"  # startContainer hooks run inside the container
        hook_out.parent.mkdir()
        hook = {"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/hostout/hook.json"]}

        def edit(config: dict) -> None:
            _joined(a_pid, config["process"]["args"])(config)
            config["hooks"] = {"startContainer": [hook]}
            config["mounts"].append({"destination": "/tmp/hostout", "type": "bind", "source": str(hook_out.parent),
                                     "options": ["rbind"]})
            config["process"]["terminal"] = True

        script = "tty; cat /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'; sleep 1"
        recv = ConsoleReceiver(str(tmp_path / "console.sock"))
        try:
            bundle = make_bundle(["sh", "-c", script], edit=edit, name="b")
            rt("create", "--bundle", str(bundle), "--console-socket", recv.path, f"{cid}-b")
            b_pid = rt.state(f"{cid}-b")["pid"]
            assert os.stat(f"/proc/{b_pid}/ns/pid").st_ino == os.stat(f"/proc/{a_pid}/ns/pid").st_ino
            recv.wait()
            rt("start", f"{cid}-b")
            out = recv.read_until(b"\n", timeout=10)
            out += recv.read_until(b"\n", timeout=5)
            out += recv.read_until(b"\n", timeout=5)
            out = out.decode(errors="replace").replace("\r", "").split("\n")
        finally:
            rt("delete", "--force", f"{cid}-b")
            recv.close()
    finally:
        rt("delete", "--force", f"{cid}-a")
    assert out[0].startswith("/dev/pts/"), out
    assert out[1].replace("\x00", " ").strip() == "sleep 30", out  # pid 1 is A's init
    assert int(out[2]) < 10, out  # A's and B's processes only, not the host's
    import json

    assert json.loads(hook_out.read_text())["pid"] == b_pid


def test_sealed_exec_keeps_fds_pid_file_and_exit_code(rt, make_bundle, cid, tmp_path):
    """`exec` into a container with CAP_SYS_PTRACE re-executes the runtime from read-only mounts: the
    re-executed runtime still passes --preserve-fds, LISTEN_FDS, stdio, writes the pid file, returns
    the exit code, and stays in a mount namespace of its own (the host's mounts are unchanged)."""
    def caps(config: dict) -> None:
        for k in ("bounding", "effective", "permitted"):
            config["process"]["capabilities"][k].append("CAP_SYS_PTRACE")

    data = tmp_path / "data"
    data.write_text("from the caller")

    def preexec() -> None:
        fd = os.open(data, os.O_RDONLY)
        os.dup2(fd, 3)
        os.close(fd)

    before = Path("/proc/self/mountinfo").read_text()
    rt("run", "--detach", "--bundle", str(make_bundle(["sleep", "30"], edit=caps)), cid)
    try:
        proc = rt("exec", "--preserve-fds", "1", cid, "sh", "-c", "cat <&3; echo; ls /proc/self/fd; exit 5", check=False,
                  preexec_fn=preexec, close_fds=False, input=None)
        assert proc.returncode == 5, proc.stderr
        assert proc.stdout.splitlines()[0] == "from the caller"
        fds = set(proc.stdout.splitlines()[1:])
        assert {"0", "1", "2", "3"} <= fds <= {"0", "1", "2", "3", "4"}, proc.stdout  # 4: ls's own directory
        pid_file = tmp_path / "exec.pid"
        rt("exec", "--detach", "--pid-file", str(pid_file), cid, "sleep", "5")
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 5  # the stub execs the program right after the runtime returns
        while Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] != b"sleep" and time.monotonic() < deadline:
            time.sleep(0.02)
        # the process the container sees is the program itself (no runtime code mapped any more)
        assert os.readlink(f"/proc/{pid}/exe").endswith("busybox")
    finally:
        rt("delete", "--force", cid)
    assert Path("/proc/self/mountinfo").read_text() == before

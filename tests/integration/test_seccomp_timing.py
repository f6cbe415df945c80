"""When linux.seccomp is loaded (issue 14): as the last step before the program's execve, so a profile
need only allow what the program needs; before the user change without no_new_privs (as runc), with
each later failure naming its step; startContainer hooks run under it; SCMP_ACT_NOTIFY's listener
fd still reaches listenerPath.
"""

from __future__ import annotations

import array
import errno
import json
import os
import select
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from pyruntime._native import ffi, lib
from pyruntime_tests_conftest import bind_mount

PODMAN_FIXTURE = Path(__file__).resolve().parent.parent / "data" / "podman-config.json"


def with_seccomp(profile: dict[str, Any], **process: Any):  # noqa: ANN201
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["seccomp"] = profile
        c["process"].update(process)
    return edit


def allowlist(*missing: str) -> dict[str, Any]:
    """An allowlist (defaultAction ERRNO/ENOSYS) of podman's syscalls plus what busybox uses, minus `missing`."""
    profile = json.loads(PODMAN_FIXTURE.read_text())["linux"]["seccomp"]
    names = {n for r in profile["syscalls"] for n in r["names"]} | {"rseq", "clone3", "faccessat2"}
    names -= set(missing)
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS,
            "syscalls": [{"names": sorted(names), "action": "SCMP_ACT_ALLOW"}]}


RUNTIME_ONLY = ("accept", "accept4", "execveat", "close_range", "poll", "ppoll", "sendmsg", "socket")


def test_an_allowlist_without_the_runtimes_syscalls_runs_with_no_new_privs(rt, make_bundle, cid):
    """accept4 (the stub waiting for start), execveat (the exec of the stub), close_range... are the
    runtime's, not the program's: a profile that lacks them must not stop the container."""
    bundle = make_bundle(["sh", "-c", "grep Seccomp: /proc/self/status; echo done"],
                         edit=with_seccomp(allowlist(*RUNTIME_ONLY)))
    rt("create", "--bundle", str(bundle), cid)
    start = rt("start", cid, check=False)
    assert start.returncode == 0, start.stderr
    pid = rt.state(cid)["pid"]
    while os.path.exists(f"/proc/{pid}"):  # bounded by the program, which just echoes
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            select.select([], [], [], 0.05)
    rt("delete", "--force", cid)


def test_run_of_an_allowlist_without_accept(rt, make_bundle, cid):
    bundle = make_bundle(["sh", "-c", "grep Seccomp: /proc/self/status; echo done"],
                         edit=with_seccomp(allowlist(*RUNTIME_ONLY)))
    proc = rt("run", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Seccomp:\t2" in proc.stdout and "done" in proc.stdout


def test_the_filter_is_loaded_by_the_stub_after_start(rt, make_bundle, cid):
    """Between create and start the waiting init is not filtered yet (with no_new_privs)."""
    bundle = make_bundle(["true"], edit=with_seccomp(allowlist("mkdir")))
    rt("create", "--bundle", str(bundle), cid)
    try:
        with open(f"/proc/{rt.state(cid)['pid']}/status") as f:
            assert "Seccomp:\t0" in f.read()
    finally:
        rt("delete", "--force", cid)


def test_start_container_hooks_run_under_the_filter(rt, make_bundle, cid):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}

    def edit(c: dict[str, Any]) -> None:
        with_seccomp(profile)(c)
        c["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/hook"]}]}
    proc = rt("run", "--bundle", str(make_bundle(["true"], edit=edit)), cid, check=False)
    assert proc.returncode != 0
    assert "startContainer hook #0 (/bin/sh): error running hook" in proc.stderr and "bad system call" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("syscall,step", [("getcwd", "getcwd"), ("prctl", "switching to process.user")])
def test_early_filter_failure_names_the_step(rt, make_bundle, cid, syscall, step):
    """Without no_new_privs (and no CAP_SYS_ADMIN for the user) the filter is loaded before the user
    change, as runc does; a profile refusing getcwd (or prctl) then fails create with the step named."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": [syscall], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}]}
    edit = with_seccomp(profile, noNewPrivileges=False, user={"uid": 1000, "gid": 1000},
                        capabilities={"bounding": ["CAP_KILL"]})
    proc = rt("create", "--bundle", str(make_bundle(["true"], edit=edit)), cid, check=False)
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1, err
    assert step in err and "operation not permitted" in err and "linux.seccomp" in err
    assert "noNewPrivileges" in err
    assert rt.ids() == []


@pytest.mark.parametrize("program,answer", [("no-such-program", "executable file not found in $PATH"),
                                             ("/etc/passwd", "/etc/passwd: permission denied")])
def test_early_filter_hint_only_for_what_a_filter_answers(rt, make_bundle, cid, program, answer):
    """A missing or non-executable program is the file's answer, not the filter's: with the filter
    loaded early (podman's default: no no_new_privs), its error names no seccomp (runc's words only)."""
    edit = with_seccomp(allowlist(), noNewPrivileges=False, capabilities={"bounding": ["CAP_KILL"]})
    proc = rt("create", "--bundle", str(make_bundle([program], edit=edit)), cid, check=False)
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1, err
    assert err.endswith(answer) and "seccomp" not in err, err
    assert rt.ids() == []


def _listener(sock_path: str, seen: dict[str, Any]) -> socket.socket:
    """A seccomp agent: takes one fd, lets every notified call go on, counts them."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    server.settimeout(30)
    seen["calls"] = 0

    def listen() -> None:
        conn, _ = server.accept()
        with conn:
            data, anc, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4))
            fds = array.array("i")
            fds.frombytes(anc[0][2][: fds.itemsize])
            seen["state"] = json.loads(data)
        fd = fds[0]
        try:
            while select.select([fd], [], [], 20)[0]:
                id_, pid, nr, arch = ffi.new("uint64_t*"), ffi.new("uint32_t*"), ffi.new("int*"), ffi.new("uint32_t*")
                if lib.pr_seccomp_notif_recv(fd, id_, pid, nr, arch, ffi.new("uint64_t[6]")) < 0:
                    return
                seen["calls"] += 1
                lib.pr_seccomp_notif_respond(fd, id_[0], 0, 0, lib.SECCOMP_USER_NOTIF_FLAG_CONTINUE)
        finally:
            os.close(fd)

    seen["thread"] = threading.Thread(target=listen, daemon=True)
    seen["thread"].start()
    return server


@pytest.mark.parametrize("nnp", [True, False])
def test_notify_on_the_syscalls_around_the_exec(rt, make_bundle, cid, tmp_path, nnp):
    """runc's "SCMP_ACT_NOTIFY important syscalls": execve, openat, read, close notified."""
    seen: dict[str, Any] = {}
    server = _listener(str(tmp_path / "agent.sock"), seen)
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "agent.sock"),
               "syscalls": [{"names": ["execve", "openat", "open", "read", "close"], "action": "SCMP_ACT_NOTIFY"}]}
    proc = rt("run", "--bundle", str(make_bundle(["/bin/true"], edit=with_seccomp(profile, noNewPrivileges=nnp))),
              cid, check=False, timeout=60)
    seen["thread"].join(30)
    server.close()
    assert proc.returncode == 0, proc.stderr
    assert seen["calls"] >= 1 and seen["state"]["state"]["id"] == cid


def test_notify_agent_gone_fails_start_and_stops_the_container(rt, make_bundle, cid, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "nobody.sock"),
               "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_NOTIFY"}]}
    rt("create", "--bundle", str(make_bundle(["true"], edit=with_seccomp(profile))), cid)
    proc = rt("start", cid, check=False, timeout=60)
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1, err
    assert "failed to connect with seccomp agent" in err and "nobody.sock" in err
    assert rt.state(cid)["status"] == "stopped"
    rt("delete", cid)


ENOSYS_PROBE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void)
{
    long a = syscall(1000, 0, 0, 0);        /* newer than anything the profile names */
    int ea = errno;
    long b = syscall(SYS_setns, -1, 0);     /* known to the profile's kernel, not listed */
    int eb = errno;
    printf("future=%ld:%d listed-default=%ld:%d\n", a, ea, b, eb);
    return 0;
}
"""


def test_syscalls_newer_than_the_profile_get_enosys(rt, make_bundle, cid, tmp_path):
    """runc's -ENOSYS stub: an allowlist gives its default errno to known syscalls it does not list,
    ENOSYS to syscalls newer than all it names (libc then falls back, as for clone3)."""
    if not shutil.which("gcc"):
        pytest.skip("needs gcc")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "probe.c").write_text(ENOSYS_PROBE)
    if subprocess.run(["gcc", "-static", "-o", str(bindir / "probe"), str(tmp_path / "probe.c")]).returncode:
        pytest.skip("no static libc")
    profile = allowlist("setns")
    profile["defaultErrnoRet"] = errno.EPERM
    profile["architectures"] = ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64",
                                "SCMP_ARCH_ARM"]

    def edit(c: dict[str, Any]) -> None:
        with_seccomp(profile)(c)
        c["mounts"].append(bind_mount(bindir, "/tmp/bin", "rbind", "ro"))
    proc = rt("run", "--bundle", str(make_bundle(["/tmp/bin/probe"], edit=edit)), cid, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"future=-1:{errno.ENOSYS} listed-default=-1:{errno.EPERM}"


# podman's own profile (ENOSYS by default, EPERM for a few rules) loaded early, as podman runs a
# container as root without CAP_SYS_ADMIN and without no_new_privs
EARLY = {"noNewPrivileges": False, "user": {"uid": 1000, "gid": 1000}, "capabilities": {"bounding": ["CAP_KILL"]}}


def test_a_missing_program_under_an_early_filter_is_not_blamed_on_it(rt, make_bundle, cid):
    """A missing program's ENOENT is not an errno the profile returns (ENOSYS, EPERM): the reason
    podman and docker show ("stat /nonexistent: no such file or directory") gets no seccomp hint
    (seen in make soak's failure checks: every "command not found" said seccomp was loaded)."""
    proc = rt("create", "--bundle", str(make_bundle(["/nonexistent"], edit=with_seccomp(allowlist(), **EARLY))), cid,
              check=False)
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1, err
    assert 'exec: "/nonexistent": stat /nonexistent: no such file or directory' in err
    assert "linux.seccomp" not in err
    proc = rt("create", "--bundle", str(make_bundle(["nonexistent"], edit=with_seccomp(allowlist(), **EARLY))), cid,
              check=False)
    assert 'exec: "nonexistent": executable file not found in $PATH' in proc.stderr
    assert "linux.seccomp" not in proc.stderr
    assert rt.ids() == []


def test_exec_of_a_missing_program_under_an_early_filter_is_not_blamed_on_it(rt, make_bundle, cid):
    rt("run", "-d", "--bundle", str(make_bundle(["sleep", "60"], edit=with_seccomp(allowlist(), **EARLY))), cid)
    try:
        proc = rt("exec", cid, "/nonexistent", check=False)
        assert proc.returncode != 0
        assert 'exec: "/nonexistent": stat /nonexistent: no such file or directory' in proc.stderr
        assert "linux.seccomp" not in proc.stderr
    finally:
        rt("delete", "--force", cid)


def test_a_failure_with_an_errno_the_early_filter_returns_keeps_the_hint(rt, make_bundle, cid):
    """The profile's own errno (EPERM here, for getcwd) still names the filter."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}]}
    proc = rt("create", "--bundle", str(make_bundle(["/nonexistent"], edit=with_seccomp(profile, **EARLY))), cid,
              check=False)
    assert "operation not permitted" in proc.stderr and "linux.seccomp is already loaded" in proc.stderr
    assert rt.ids() == []

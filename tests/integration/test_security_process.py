"""Process security and scheduling (issue 3), read back from inside real containers.

Capabilities, no_new_privs, seccomp (errno, argument filters, flags, SCMP_ACT_NOTIFY with a listener),
sysctl, oom_score_adj, rlimits, personality, scheduler, I/O priority, CPU affinity (exec), memory
policy, keyring, LSM handling, podman's own config.json beside runc, and bad values refused with one
line and nothing left behind.
"""

from __future__ import annotations

import array
import errno
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from pyruntime._native import ffi, lib

from pyruntime.security.caps import CAPS

REPO = Path(__file__).resolve().parent.parent.parent
ROOTFS = REPO / "bundles" / "busybox" / "rootfs"  # (not imported from conftest: another tier has one too)
PODMAN_FIXTURE = REPO / "tests" / "data" / "podman-config.json"
STATUS_KEYS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters")


def status_of(text: str) -> dict[str, str]:
    """The security lines of a /proc/self/status dump."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_KEYS:
            out[key] = value.strip()
    return out


def mask(*names: str) -> str:
    return f"{sum(1 << CAPS[n] for n in names):016x}"


def caps(**sets: list[str]) -> dict[str, list[str]]:
    return {k: list(v) for k, v in sets.items()}


def set_process(**fields: Any):  # noqa: ANN201 - an edit function for make_bundle
    def edit(c: dict[str, Any]) -> None:
        c["process"].update(fields)
    return edit


def set_linux(**fields: Any):  # noqa: ANN201
    def edit(c: dict[str, Any]) -> None:
        c["linux"].update(fields)
    return edit


def run_out(rt, make_bundle, cid, args, edit=None, *flags: str) -> str:
    bundle = make_bundle(args, edit=edit)
    proc = rt("run", *flags, "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr.strip()}\n{proc.stdout}"
    return proc.stdout


def refused(rt, make_bundle, cid, edit, *words: str) -> str:
    """create must fail with one line naming words, exit 1, no traceback, and leave no container
    (rt's fixture) and no cgroup (cgroup_parent's fixture) behind."""
    bundle = make_bundle(["true"], edit=edit)
    proc = rt("create", "--bundle", str(bundle), cid, check=False)
    err = proc.stderr.strip()
    assert proc.returncode == 1, (proc.returncode, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    assert rt.ids() == []
    return err


# -- capabilities and no_new_privs --------------------------------------------------------------------

def test_capability_sets_of_root(rt, make_bundle, cid):
    want = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHECKPOINT_RESTORE"]
    edit = set_process(capabilities=caps(bounding=want, effective=want[:2], permitted=want[:3],
                                         inheritable=want[1:2], ambient=[]))
    got = status_of(run_out(rt, make_bundle, cid, ["cat", "/proc/self/status"], edit))
    # uid 0 across execve gets effective = permitted; with no_new_privs permitted cannot grow beyond
    # what was set (the same lines as under runc, checked by hand)
    assert got["CapBnd"] == mask(*want)
    assert got["CapPrm"] == got["CapEff"] == mask(*want[:3])
    assert got["CapInh"] == mask("CAP_KILL")
    assert got["CapAmb"] == mask()
    assert got["NoNewPrivs"] == "1"
    # without no_new_privs, root's execve grants bounding | inheritable (the kernel's rule, as in runc)
    edit2 = set_process(noNewPrivileges=False, capabilities=caps(bounding=want, effective=want[:2],
                                                                permitted=want[:3]))
    got = status_of(run_out(rt, make_bundle, cid + "b", ["cat", "/proc/self/status"], edit2))
    assert got["CapPrm"] == got["CapEff"] == got["CapBnd"] == mask(*want)
    assert got["NoNewPrivs"] == "0" and got["CapInh"] == mask()


def test_capabilities_of_a_non_root_user_are_the_ambient_set(rt, make_bundle, cid):
    nbs = ["CAP_NET_BIND_SERVICE"]
    edit = set_process(user={"uid": 1000, "gid": 1000, "additionalGids": [5]}, noNewPrivileges=False,
                       capabilities=caps(bounding=nbs + ["CAP_KILL"], effective=nbs, permitted=nbs,
                                         inheritable=nbs, ambient=nbs))
    out = run_out(rt, make_bundle, cid, ["sh", "-c", "id; cat /proc/self/status"], edit)
    got = status_of(out)
    assert re.search(r"uid=1000\b.*gid=1000\b.*groups=5\b", out), out
    assert got["CapBnd"] == mask("CAP_NET_BIND_SERVICE", "CAP_KILL")
    assert got["CapAmb"] == got["CapEff"] == got["CapPrm"] == got["CapInh"] == mask(*nbs)
    assert got["NoNewPrivs"] == "0"


def test_no_capabilities_for_a_user_without_ambient(rt, make_bundle, cid):
    edit = set_process(user={"uid": 1000, "gid": 1000},
                       capabilities=caps(bounding=["CAP_KILL"], effective=["CAP_KILL"], permitted=["CAP_KILL"]))
    got = status_of(run_out(rt, make_bundle, cid, ["cat", "/proc/self/status"], edit))
    assert got["CapEff"] == got["CapPrm"] == got["CapAmb"] == mask()
    assert got["CapBnd"] == mask("CAP_KILL")


def test_ambient_capabilities_the_kernel_cannot_raise_are_skipped_with_a_warning(rt, make_bundle, cid):
    """Issue 15: Buildah lists ambient capabilities missing from inheritable; runc and crun run such a
    config (the kernel cannot raise them): skipped with a warning, the raisable ones still raised."""
    both = ["CAP_CHOWN", "CAP_KILL"]
    edit = set_process(user={"uid": 1000, "gid": 1000},
                       capabilities=caps(bounding=both, effective=both, permitted=both, inheritable=["CAP_KILL"],
                                         ambient=["CAP_CHOWN", "CAP_KILL"]))
    bundle = make_bundle(["cat", "/proc/self/status"], edit=edit)
    proc = rt("run", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 0, proc.stderr
    got = status_of(proc.stdout)
    assert got["CapAmb"] == mask("CAP_KILL") and got["CapEff"] == mask("CAP_KILL")
    assert "ambient[0]" in proc.stderr and "CAP_CHOWN" in proc.stderr and "skipped" in proc.stderr


@pytest.mark.parametrize("capabilities,words", [
    (caps(bounding=["CAP_KILL", "CAP_BOGUS"]), ["process.capabilities.bounding[1]", "unknown capability"]),
    (caps(bounding=["CAP_SYS_RESOURCE"], effective=["CAP_SYS_RESOURCE"], permitted=["CAP_SYS_RESOURCE"]),
     ["process.capabilities.effective[0]", "CAP_SYS_RESOURCE", "bounding set"]),
    (caps(bounding=["CAP_KILL"], effective=["CAP_KILL"]), ["effective[0]", "CAP_KILL", "permitted"]),
])
def test_bad_capabilities_are_refused(rt, make_bundle, cid, capabilities, words):
    if "CAP_SYS_RESOURCE" in words:
        with open("/proc/self/status") as f:
            bnd = int(status_of(f.read())["CapBnd"], 16)
        if bnd & (1 << CAPS["CAP_SYS_RESOURCE"]):
            pytest.skip("this host's bounding set has CAP_SYS_RESOURCE")
    refused(rt, make_bundle, cid, set_process(capabilities=capabilities), *words)




# -- seccomp --------------------------------------------------------------------------------------------

def with_seccomp(profile: dict[str, Any], **process: Any):  # noqa: ANN201
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["seccomp"] = profile
        c["process"].update(process)
    return edit


DENY_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                                                                   "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
              "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
              "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_syscall_is_skipped"],
                            "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS}]}


def test_seccomp_denied_syscall_returns_the_configured_errno(rt, make_bundle, cid):
    out = run_out(rt, make_bundle, cid, ["sh", "-c", "grep Seccomp /proc/self/status; mkdir /tmp/x 2>&1; "
                                         "echo rc=$?; touch /tmp/y && echo touched"], with_seccomp(DENY_MKDIR))
    got = status_of(out)
    assert got["Seccomp"] == "2" and got["Seccomp_filters"] == "1"
    assert os.strerror(errno.EROFS) in out and "rc=1" in out and "touched" in out


def test_seccomp_without_no_new_privs_for_a_non_root_user_is_loaded_before_the_user_change(rt, make_bundle, cid):
    edit = with_seccomp(DENY_MKDIR, noNewPrivileges=False, user={"uid": 1000, "gid": 1000},
                        capabilities=caps(bounding=["CAP_KILL"]))
    out = run_out(rt, make_bundle, cid, ["sh", "-c", "grep -E 'Seccomp|NoNew|CapEff' /proc/self/status; "
                                         "mkdir /tmp/x 2>&1; true"], edit)
    got = status_of(out)
    assert got["NoNewPrivs"] == "0" and got["Seccomp_filters"] == "1" and got["CapEff"] == mask()
    assert os.strerror(errno.EROFS) in out


def test_seccomp_default_errno_and_an_argument_filter(rt, make_bundle, cid):
    # kill(2) is allowed for SIGUSR2 only; every other signal gets EACCES; every other syscall is
    # allowed by the listed rule, so defaultAction ERRNO/defaultErrnoRet only hits unlisted ones.
    usr2 = int(signal.SIGUSR2)
    everything = sorted(n for n in _syscall_names() if n not in ("kill", "getppid"))
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS,
               "syscalls": [{"names": everything, "action": "SCMP_ACT_ALLOW"},
                            {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
                             "args": [{"index": 1, "value": usr2, "op": "SCMP_CMP_EQ"}]},
                            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
                             "args": [{"index": 1, "value": usr2, "op": "SCMP_CMP_NE"}]}]}
    script = ("trap '' USR1 USR2; kill -USR2 $$ && echo usr2-allowed; kill -USR1 $$ 2>&1; echo usr1-rc=$?; "
              "kill -0 $$ 2>&1; echo zero-rc=$?")
    out = run_out(rt, make_bundle, cid, ["sh", "-c", script], with_seccomp(profile))
    assert "usr2-allowed" in out
    assert "usr1-rc=1" in out and "zero-rc=1" in out
    assert os.strerror(errno.EACCES) in out


def test_seccomp_every_action(rt, make_bundle, cid):
    # Each busybox applet runs in a child of the shell, so a killed child shows as 128+SIGSYS.
    rules = [(["symlink", "symlinkat"], "SCMP_ACT_KILL_PROCESS"), (["chmod", "fchmodat", "fchmodat2"], "SCMP_ACT_KILL"),
             (["mknod", "mknodat"], "SCMP_ACT_TRAP"), (["mkdir", "mkdirat"], "SCMP_ACT_TRACE"),
             (["link", "linkat"], "SCMP_ACT_LOG"), (["truncate", "ftruncate"], "SCMP_ACT_KILL_THREAD")]
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": n, "action": a} for n, a in rules]}
    script = ("cd /tmp; touch f; ln -s f s; echo symlink=$?; mkfifo p; echo mknod=$?; mkdir d 2>&1; echo mkdir=$?; "
              "link f l; echo link=$?; truncate -s 0 f; echo truncate=$?; chmod 600 f; echo chmod=$?")
    out = run_out(rt, make_bundle, cid, ["sh", "-c", script], with_seccomp(profile))
    sigsys = 128 + int(signal.SIGSYS)
    for name in ("symlink", "mknod", "truncate", "chmod"):
        assert f"{name}={sigsys}" in out, out
    assert "mkdir=1" in out and os.strerror(errno.ENOSYS) in out  # TRACE without a tracer: ENOSYS
    assert "link=0" in out  # LOG allows


def _syscall_names() -> list[str]:
    """Names for an allow-everything rule: podman's profile plus the syscalls the busybox shell uses."""
    profile = json.loads(PODMAN_FIXTURE.read_text())["linux"]["seccomp"]
    names = {n for r in profile["syscalls"] for n in r["names"]}
    return sorted(names | {"execveat", "rseq", "clone3", "faccessat2"})


def notification_ready(fd: int, timeout: float = 20) -> bool:
    """A notification waits on the listener fd. False on timeout, and on POLLHUP (no task uses the
    filter any more): before Linux 6.6, SECCOMP_IOCTL_NOTIF_RECV then blocks for ever instead of
    failing with ENOENT (as the arm64 tier's 6.1 guest kernel showed)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    events = poller.poll(timeout * 1000)
    return bool(events) and bool(events[0][1] & select.POLLIN)


@pytest.mark.parametrize("early", [False, True], ids=["late", "early-load"])
def test_seccomp_notify_listener_gets_the_fd_and_answers(rt, make_bundle, cid, tmp_path, early):
    sock_path = str(tmp_path / "listener.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    server.settimeout(30)
    seen: dict[str, Any] = {"calls": []}
    nrs = {lib.pr_scmp_resolve_syscall(b"mkdir"), lib.pr_scmp_resolve_syscall(b"mkdirat")}

    def listen() -> None:
        conn, _ = server.accept()
        with conn:
            data, anc, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4))
            fds = array.array("i")
            fds.frombytes(anc[0][2][: fds.itemsize])
            fd = fds[0]
            seen["state"] = json.loads(data)
        try:
            while notification_ready(fd):
                id_, pid, nr, arch = ffi.new("uint64_t*"), ffi.new("uint32_t*"), ffi.new("int*"), ffi.new("uint32_t*")
                args = ffi.new("uint64_t[6]")
                if lib.pr_seccomp_notif_recv(fd, id_, pid, nr, arch, args) < 0:
                    return  # ENOENT: every process under the filter is gone
                seen["calls"].append(nr[0])
                first = len(seen["calls"]) == 1
                if first:  # let the first mkdir happen, fail the second one with ENOSPC
                    lib.pr_seccomp_notif_respond(fd, id_[0], 0, 0, lib.SECCOMP_USER_NOTIF_FLAG_CONTINUE)
                else:
                    lib.pr_seccomp_notif_respond(fd, id_[0], 0, -errno.ENOSPC, 0)
        finally:
            os.close(fd)

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock_path, "listenerMetadata": "hello=1",
               "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    script = "mkdir /tmp/a && echo made-a; mkdir /tmp/b 2>&1; ls /tmp"
    # early-load: no no_new_privs and a user without CAP_SYS_ADMIN, so the init loads the filter
    # before it changes user, and the fd is handed over while the init still has work to do
    process = {"noNewPrivileges": False, "user": {"uid": 1000, "gid": 1000}} if early else {}
    out = run_out(rt, make_bundle, cid, ["sh", "-c", script], with_seccomp(profile, **process))
    t.join(30)
    server.close()
    state = seen["state"]
    assert state["fds"] == ["seccompFd"] and state["metadata"] == "hello=1" and state["pid"] > 0
    # late: the stub loads the filter after `start`, which hands the fd over; early: create does
    assert state["state"]["id"] == cid and state["state"]["status"] == ("creating" if early else "created")
    assert len(seen["calls"]) == 2 and set(seen["calls"]) <= nrs
    assert "made-a" in out and os.strerror(errno.ENOSPC) in out
    assert out.split()[-1] == "a"  # only /tmp/a exists


def test_seccomp_notify_listener_gets_the_exec_process_state(rt, make_bundle, cid, tmp_path):
    """exec's process runs under the container's filter: its own notify fd reaches the listener with the
    container's state (status and the init's pid, as the spec asks) and the process's own pid."""
    sock_path = str(tmp_path / "listener.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(4)
    server.settimeout(30)
    states: list[dict[str, Any]] = []

    def answer(fd: int) -> None:  # let every notified call go on
        try:
            while notification_ready(fd):
                id_, pid, nr, arch = ffi.new("uint64_t*"), ffi.new("uint32_t*"), ffi.new("int*"), ffi.new("uint32_t*")
                if lib.pr_seccomp_notif_recv(fd, id_, pid, nr, arch, ffi.new("uint64_t[6]")) < 0:
                    return
                lib.pr_seccomp_notif_respond(fd, id_[0], 0, 0, lib.SECCOMP_USER_NOTIF_FLAG_CONTINUE)
        finally:
            os.close(fd)

    def listen() -> None:
        for _ in range(2):  # the init's filter at create, then exec's
            conn, _ = server.accept()
            with conn:
                data, anc, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4))
                fds = array.array("i")
                fds.frombytes(anc[0][2][: fds.itemsize])
                states.append(json.loads(data))
            threading.Thread(target=answer, args=(fds[0],), daemon=True).start()

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock_path,
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    rt("run", "-d", "--bundle", str(make_bundle(["sleep", "60"], edit=with_seccomp(profile))), cid)
    init_pid = rt.state(cid)["pid"]
    out = rt("exec", cid, "sh", "-c", "mkdir /tmp/x && echo made").stdout
    t.join(30)
    server.close()
    rt("delete", "--force", cid)
    assert out == "made\n"
    assert len(states) == 2
    exec_state = states[1]
    assert exec_state["state"]["status"] == "running" and exec_state["state"]["pid"] == init_pid
    assert exec_state["state"]["id"] == cid and exec_state["pid"] not in (0, init_pid)


def test_seccomp_notify_listener_unreachable_fails_create_cleanly(rt, make_bundle, cid, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "nobody.sock"),
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    # Without no_new_privs a non-root user's filter is loaded (and its fd handed over) during create.
    bundle = make_bundle(["true"], edit=with_seccomp(profile, noNewPrivileges=False, user={"uid": 1000, "gid": 1000}))
    proc = rt("create", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 1 and "listenerPath" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "failed to connect with seccomp agent" in proc.stderr
    assert rt.ids() == []


@pytest.mark.parametrize("profile,words", [
    ({"defaultAction": "SCMP_ACT_BOGUS"}, ["linux.seccomp.defaultAction", "unknown seccomp action"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]},
     ["linux.seccomp.architectures[0]", "SCMP_ARCH_VAX"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}, ["linux.seccomp.flags[0]"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, ["defaultAction", "errno"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL",
                                                       "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]},
     ["linux.seccomp.syscalls[0].args[0].op"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     ["listenerPath", "required"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
      "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}, ["syscalls[0].names", "write"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                       "errnoRet": 70000}]}, ["errnoRet"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     ["args[0].index"]),
])
def test_bad_seccomp_profiles_are_refused(rt, make_bundle, cid, profile, words):
    refused(rt, make_bundle, cid, with_seccomp(profile), *words)


# -- sysctl, oom_score_adj, rlimits, personality -------------------------------------------------------

def test_namespaced_sysctls_are_set(rt, make_bundle, cid):
    edit = set_linux(sysctl={"kernel.shmmax": "123456789", "fs.mqueue.msg_max": "20",
                             "net.ipv4.ip_forward": "1", "net/ipv4/conf/lo/forwarding": "1",
                             "kernel.domainname": "example.test"})
    out = run_out(rt, make_bundle, cid, ["sh", "-c", "cd /proc/sys; cat kernel/shmmax fs/mqueue/msg_max "
                                         "net/ipv4/ip_forward net/ipv4/conf/lo/forwarding kernel/domainname"], edit)
    assert out.split() == ["123456789", "20", "1", "1", "example.test"]
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read().strip() != "123456789"  # the host's is untouched


def test_sysctls_without_a_mount_namespace(rt, make_bundle, cid):
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"] = [{"type": "ipc"}, {"type": "uts"}]
        c["linux"]["sysctl"] = {"kernel.shmmni": "1234"}
        c["linux"].pop("maskedPaths")
        c["linux"].pop("readonlyPaths")
        c["mounts"] = []
    out = run_out(rt, make_bundle, cid, ["cat", "/proc/sys/kernel/shmmni"], edit)
    assert out.strip() == "1234"
    with open("/proc/sys/kernel/shmmni") as f:
        assert f.read().strip() != "1234"


@pytest.mark.parametrize("key,value,words", [
    ("kernel.pid_max", "4000", ["linux.sysctl.kernel.pid_max", "not namespaced"]),
    ("vm.swappiness", "1", ["not namespaced"]),
    ("kernel.hostname", "x", ["hostname"]),
    ("net.ipv4.ip_forward", "1", ["network namespace"]),
    ("kernel/../../etc/x", "1", ["not a valid sysctl name"]),
])
def test_bad_sysctls_are_refused_before_anything_exists(rt, make_bundle, cid, key, value, words):
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["sysctl"] = {key: value}
        if key.startswith("net."):
            c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
    refused(rt, make_bundle, cid, edit, *words)


def test_oom_score_adj(rt, make_bundle, cid):
    out = run_out(rt, make_bundle, cid, ["cat", "/proc/self/oom_score_adj"], set_process(oomScoreAdj=567))
    assert out.strip() == "567"


def test_oom_score_adj_below_the_runtimes_needs_cap_sys_resource(rt, make_bundle, cid):
    with open("/proc/self/status") as f:
        if int(status_of(f.read())["CapBnd"], 16) & (1 << CAPS["CAP_SYS_RESOURCE"]):
            pytest.skip("this host has CAP_SYS_RESOURCE")
    bundle = make_bundle(["true"], edit=set_process(oomScoreAdj=-999))
    proc = rt("create", "--bundle", str(bundle), cid, check=False)
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1, err
    assert "oomScoreAdj" in err and "CAP_SYS_RESOURCE" in err
    assert rt.ids() == []


def test_rlimits(rt, make_bundle, cid):
    edit = set_process(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                                {"type": "RLIMIT_NPROC", "soft": 1000, "hard": 2000}])
    out = run_out(rt, make_bundle, cid, ["cat", "/proc/self/limits"], edit)
    rows = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(r"^Max (\w+(?: \w+)*?)\s{2,}(\S+)\s+(\S+)", out, re.M)}
    assert rows["open files"] == ("123", "456")
    assert rows["core file size"] == ("0", "0")
    assert rows["processes"] == ("1000", "2000")


def test_rlimit_above_the_hard_limit_needs_cap_sys_resource(rt, make_bundle, cid):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no finite hard RLIMIT_NOFILE to exceed")
    with open("/proc/self/status") as f:
        if int(status_of(f.read())["CapBnd"], 16) & (1 << CAPS["CAP_SYS_RESOURCE"]):
            pytest.skip("this host can raise hard limits")
    edit = set_process(rlimits=[{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}])
    bundle = make_bundle(["true"], edit=edit)
    proc = rt("create", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 1 and "CAP_SYS_RESOURCE" in proc.stderr and "RLIMIT_NOFILE" in proc.stderr
    assert rt.ids() == []


def test_personality_linux32(rt, make_bundle, cid):
    bundle = make_bundle(["sh", "-c", "cat /proc/self/personality; uname -m"],
                         edit=set_linux(personality={"domain": "LINUX32"}))
    proc = rt("run", "--bundle", str(bundle), cid, check=False)
    if proc.returncode == 1 and "personality" in proc.stderr and os.uname().machine == "aarch64":
        pytest.skip("this arm64 CPU has no AArch32")  # the kernel refuses PER_LINUX32 there
    assert proc.returncode == 0, proc.stderr
    persona, machine = proc.stdout.split()
    assert int(persona, 16) == lib.PER_LINUX32
    if os.uname().machine == "x86_64":
        assert machine == "i686"


# -- scheduling: policy, I/O priority, CPU affinity, memory policy ---------------------------------------

def stat_fields(text: str) -> list[str]:
    """/proc/<pid>/stat split after the command name (field 3 is index 0)."""
    return text[text.rindex(")") + 2:].split()


def test_scheduler_batch_with_nice(rt, make_bundle, cid):
    out = run_out(rt, make_bundle, cid, ["cat", "/proc/self/stat"],
                  set_process(scheduler={"policy": "SCHED_BATCH", "nice": 7}))
    f = stat_fields(out)
    assert int(f[19 - 3]) == 7 and int(f[41 - 3]) == lib.SCHED_BATCH


def test_scheduler_deadline(rt, make_bundle, cid):
    sched = {"policy": "SCHED_DEADLINE", "runtime": 2_000_000, "deadline": 20_000_000, "period": 20_000_000,
             "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
    out = run_out(rt, make_bundle, cid, ["cat", "/proc/self/sched"], set_process(scheduler=sched))
    assert re.search(rf"^policy\s+:\s+{lib.PR_SCHED_DEADLINE}$", out, re.M), out
    assert re.search(r"^dl\.deadline\s+:\s+\d+$", out, re.M), out  # shown for deadline tasks only


def test_scheduler_fifo_in_a_cgroup_with_realtime_runtime(rt, make_bundle, cid, cgroup_parent):
    # cgroup v1 RT group scheduling: a new cgroup has no RT runtime; give the parent and the
    # container's cgroup some before create (the runtime joins an existing cgroup as runc does).
    cpu = Path("/sys/fs/cgroup/cpu")
    if not (cpu / "cpu.rt_runtime_us").exists():
        pytest.skip("no cgroup v1 RT group scheduling here")
    parent = cpu / cgroup_parent.lstrip("/")
    child = parent / "b0"
    child.mkdir(parents=True)
    (parent / "cpu.rt_runtime_us").write_text("20000")
    (child / "cpu.rt_runtime_us").write_text("10000")
    out = run_out(rt, make_bundle, cid, ["cat", "/proc/self/stat"],
                  set_process(scheduler={"policy": "SCHED_FIFO", "priority": 10}))
    f = stat_fields(out)
    assert int(f[40 - 3]) == 10 and int(f[41 - 3]) == lib.SCHED_FIFO


def test_io_priority(rt, make_bundle, cid):
    out = run_out(rt, make_bundle, cid, ["ionice"], set_process(ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 6}))
    assert out.strip() == "best-effort: prio 6"
    out = run_out(rt, make_bundle, cid + "i", ["ionice"], set_process(ioPriority={"class": "IOPRIO_CLASS_IDLE"}))
    assert out.strip() == "idle"


def test_memory_policy(rt, make_bundle, cid):
    for mode, word, n in (("MPOL_BIND", "bind:0", 0), ("MPOL_INTERLEAVE", "interleave:0", 1),
                          ("MPOL_PREFERRED", "prefer:0", 2)):
        out = run_out(rt, make_bundle, f"{cid}-{n}", ["cat", "/proc/self/numa_maps"],
                      set_linux(memoryPolicy={"mode": mode, "nodes": "0"}))
        policies = {line.split()[1] for line in out.splitlines()}
        assert policies == {word}, (mode, policies)


def test_memory_policy_on_a_missing_node_fails_cleanly(rt, make_bundle, cid):
    bundle = make_bundle(["true"], edit=set_linux(memoryPolicy={"mode": "MPOL_BIND", "nodes": "63"}))
    proc = rt("create", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 1 and "linux.memoryPolicy" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert rt.ids() == []


def test_exec_cpu_affinity_initial_then_final(rt, make_bundle, cid, tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    bundle = make_bundle(["sleep", "100"])
    rt("run", "--detach", "--bundle", str(bundle), cid)
    try:
        process = json.loads((bundle / "config.json").read_text())["process"]
        process.update(args=["grep", "Cpus_allowed_list", "/proc/self/status"],
                       execCPUAffinity={"initial": str(cpus[0]), "final": str(cpus[-1])})
        (tmp_path / "p.json").write_text(json.dumps(process))
        out = rt("exec", "--process", str(tmp_path / "p.json"), cid).stdout
        assert out.split() == ["Cpus_allowed_list:", str(cpus[-1])]
        # the container's init is not affected (the spec: not applicable to the init)
        with open(f"/proc/{rt.state(cid)['pid']}/status") as f:
            assert re.search(r"Cpus_allowed_list:\s+(\S+)", f.read()).group(1) != str(cpus[-1]) or len(cpus) == 1
    finally:
        rt("kill", cid, "KILL", check=False)
        wait_gone(rt, cid)


def wait_gone(rt, cid) -> None:
    import time

    deadline = time.monotonic() + 10
    while rt.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, "container did not stop"
        time.sleep(0.02)
    rt("delete", cid)


# -- keyring and LSMs ------------------------------------------------------------------------------

def _possessor_only_session_keyring(name: str) -> None:
    """preexec_fn for the runtime: join a new session keyring called name and make it visible to its
    possessors only (keyrings(7): the possessor byte is the top byte of the permission mask), so it
    shows in a process's /proc/keys only while that process holds it as (part of) its session."""
    serial = lib.pr_join_session_keyring(name.encode())
    assert serial > 0
    for line in Path("/proc/keys").read_text().splitlines():
        fields = line.split()
        if int(fields[0], 16) == serial:
            assert lib.pr_keyctl_setperm(serial, int(fields[4], 16) & 0xFF000000) == 0
            return
    raise AssertionError("joined keyring not found in /proc/keys")


def test_new_session_keyring_unless_no_new_keyring(rt, make_bundle, cid):
    def unmask(c: dict[str, Any]) -> None:
        c["linux"]["maskedPaths"] = [p for p in c["linux"]["maskedPaths"] if p != "/proc/keys"]

    name = f"pyrt-test-{cid}"
    outs = {}
    for flags in ((), ("--no-new-keyring",)):
        bundle = make_bundle(["cat", "/proc/keys"], edit=unmask)
        proc = rt("run", *flags, "--bundle", str(bundle), f"{cid}{len(flags)}",
                  preexec_fn=lambda: _possessor_only_session_keyring(name))
        outs[flags] = proc.stdout
    assert f"keyring   {name}:" not in outs[()]  # the container has a session keyring of its own
    assert f"keyring   {name}:" in outs[("--no-new-keyring",)]  # it kept the caller's


def test_apparmor_profile_is_ignored_when_apparmor_is_off(rt, make_bundle, cid):
    from pyruntime.security import lsm

    if lsm.apparmor_enabled():
        pytest.skip("AppArmor is enabled on this host")
    out = run_out(rt, make_bundle, cid, ["echo", "ok"], set_process(apparmorProfile="docker-default"))
    assert out.strip() == "ok"


@pytest.mark.parametrize("where", ["process.selinuxLabel", "linux.mountLabel"])
def test_selinux_labels_are_refused_without_selinux(rt, make_bundle, cid, where):
    from pyruntime.security import lsm

    if lsm.selinux_enabled():
        pytest.skip("SELinux is enabled on this host")
    section, key = where.split(".")

    def edit(c: dict[str, Any]) -> None:
        c[section][key] = "system_u:system_r:container_t:s0:c1,c2"
    refused(rt, make_bundle, cid, edit, where, "SELinux is not enabled")


# -- bad values of the other fields ----------------------------------------------------------------------

@pytest.mark.parametrize("edit,words", [
    (set_process(scheduler={"policy": "SCHED_BOGUS"}), ["process.scheduler.policy", "SCHED_BOGUS"]),
    (set_process(scheduler={"policy": "SCHED_OTHER", "priority": 5}), ["process.scheduler.priority"]),
    (set_process(scheduler={"policy": "SCHED_FIFO", "priority": 0}), ["process.scheduler.priority", "1..99"]),
    (set_process(scheduler={"policy": "SCHED_ISO"}), ["SCHED_ISO", "not implemented"]),
    (set_process(scheduler={"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 5}), ["runtime <= deadline"]),
    (set_process(scheduler={"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_X"]}), ["process.scheduler.flags[0]"]),
    (set_process(scheduler={"policy": "SCHED_OTHER", "nice": 40}), ["process.scheduler.nice"]),
    (set_process(ioPriority={"class": "IOPRIO_CLASS_X", "priority": 1}), ["process.ioPriority.class"]),
    (set_process(ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 9}), ["process.ioPriority.priority"]),
    (set_process(execCPUAffinity={"initial": "0-x"}), ["process.execCPUAffinity.initial", "CPU list"]),
    (set_process(oomScoreAdj=5000), ["process.oomScoreAdj"]),
    (set_linux(personality={"domain": "LINUX64"}), ["linux.personality.domain"]),
    (set_linux(personality={"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}), ["linux.personality.flags"]),
    (set_linux(memoryPolicy={"mode": "MPOL_SOMETIMES"}), ["linux.memoryPolicy.mode"]),
    (set_linux(memoryPolicy={"mode": "MPOL_BIND"}), ["linux.memoryPolicy.nodes", "needs"]),
    (set_linux(memoryPolicy={"mode": "MPOL_LOCAL", "nodes": "0"}), ["linux.memoryPolicy.nodes", "empty"]),
    (set_linux(memoryPolicy={"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_X"]}), ["flags[0]"]),
])
def test_bad_values_are_refused_with_one_line(rt, make_bundle, cid, edit, words):
    refused(rt, make_bundle, cid, edit, *words)


# -- podman's config.json: same /proc/self/status under pyruntime as under runc --------------------------

def podman_config(tmp: Path) -> dict[str, Any]:
    """podman's own config.json for a busybox container: from a real `podman create`/`init` (with runc,
    in a private podman environment removed afterwards) when podman is here, else the saved fixture."""
    if not shutil.which("podman") or not shutil.which("runc"):
        return json.loads(PODMAN_FIXTURE.read_text())
    env_dir = tmp / "podman"
    # a bridge name of our own (never created: --network none), so teardown cannot touch another tier's
    setup_env = dict(os.environ, PYRT_PODMAN_BRIDGE=f"pyrtsp{os.getpid() % 100000}")
    setup = subprocess.run(["sh", str(REPO / "tests/podman/setup.sh"), str(env_dir)], capture_output=True,
                           text=True, timeout=120, env=setup_env)
    try:
        assert setup.returncode == 0, setup.stderr
        env = dict(os.environ)
        for line in (env_dir / "env").read_text().splitlines():
            k, _, v = line.removeprefix("export ").partition("=")
            env[k] = v
        podman = ["podman", "--runtime", "runc"]
        cid = subprocess.run([*podman, "create", "--network", "none", "localhost/pyrt-busybox", "true"],
                             capture_output=True, text=True, env=env, timeout=60, check=True).stdout.strip()
        subprocess.run([*podman, "init", cid], capture_output=True, env=env, timeout=60, check=True)
        found = list((env_dir / "storage").glob(f"overlay-containers/{cid}/userdata/config.json"))
        assert found, "podman wrote no config.json"
        return json.loads(found[0].read_text())
    finally:
        subprocess.run(["sh", str(REPO / "tests/podman/teardown.sh"), str(env_dir)], capture_output=True, timeout=120)


def adapt_podman_config(config: dict[str, Any], cgroups_path: str, args: list[str]) -> dict[str, Any]:
    """Keep podman's security settings as they are; only point it at our rootfs and drop podman's own
    per-container bind mounts (their sources live in podman's storage)."""
    config["root"] = {"path": str(ROOTFS), "readonly": True}
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "bind"]
    config["process"].update(args=args, terminal=False)
    config["linux"]["cgroupsPath"] = cgroups_path
    config["linux"]["namespaces"] = [{"type": n["type"]} for n in config["linux"]["namespaces"]]
    return config


def test_podman_default_config_gives_the_same_status_as_runc(rt, cid, tmp_path, cgroup_parent):
    runc = shutil.which("runc")
    if not runc:
        pytest.skip("runc is not installed")
    original = podman_config(tmp_path)
    profile = original["linux"]["seccomp"]
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and len(profile["syscalls"]) >= 15
    results = {}
    for name, runtime in (("pyruntime", rt), ("runc", None)):
        bundle = tmp_path / name
        bundle.mkdir()
        config = adapt_podman_config(json.loads(json.dumps(original)), f"{cgroup_parent}/{name}",
                                     ["sh", "-c", "cat /proc/self/status; mount -t tmpfs t /mnt 2>&1; "
                                      "swapoff /x 2>&1; unshare -U true && echo unshare-ok; true"])
        (bundle / "config.json").write_text(json.dumps(config))
        if runtime is None:
            root = tempfile.mkdtemp(prefix="prt-runc-", dir="/run")
            runtime = type(rt)(runc, root)
        try:
            proc = runtime("run", "--bundle", str(bundle), f"{cid}-{name}", check=False)
        finally:
            if runtime is not rt:
                runtime("delete", "--force", f"{cid}-{name}", check=False)
                shutil.rmtree(runtime.root, ignore_errors=True)
        assert proc.returncode == 0, (name, proc.stderr)
        results[name] = (status_of(proc.stdout), proc.stdout.splitlines()[-3:])
    assert results["pyruntime"] == results["runc"]  # the status lines and what the profile allows
    got, tail = results["pyruntime"]
    assert os.strerror(errno.EPERM) in tail[1] and tail[2] == "unshare-ok", tail  # swapoff: errnoRet 1
    assert got["Seccomp"] == "2" and got["Seccomp_filters"] == "1" and got["NoNewPrivs"] == "0"
    assert got["CapBnd"] == mask(*original["process"]["capabilities"]["bounding"])

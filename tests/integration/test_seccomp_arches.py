"""seccomp profiles written for another architecture (issue 18): a profile lists the architectures of
every machine it is meant for and names syscalls that only some of them have (x86's open, stat,
fork, arch_prctl, iopl...; arm64 has none of these, 32-bit ARM has its own). As with runc, such a
profile loads on every machine: a name this machine lacks adds nothing for it (and still adds the
rule for the listed compat architectures that have it), and the rules it does have are enforced.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

# x86-only (x86_64 and/or i386), 32-bit-ARM-only and legacy syscalls that arm64 does not have
FOREIGN = ["open", "stat", "lstat", "fork", "vfork", "arch_prctl", "iopl", "ioperm", "modify_ldt", "vm86",
           "vm86old", "uselib", "set_thread_area", "cacheflush", "arm_fadvise64_64", "breakpoint", "set_tls",
           "epoll_wait_old", "time", "alarm", "pause", "getdents", "dup2", "pipe", "poll", "select"]
PODMAN_FIXTURE = Path(__file__).resolve().parents[1] / "data" / "podman-config.json"  # podman's default profile
ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


def _profile() -> dict:
    return {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ARCHES,
        "syscalls": [
            # LOG allows (the shell may use some of these on x86_64) but is a rule of its own
            {"names": FOREIGN, "action": "SCMP_ACT_LOG"},
            # a condition on an argument of a syscall this machine may not have
            {"names": ["iopl", "ioperm"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM,
             "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]},
            # mkdir (x86) and mkdirat (everywhere): busybox's mkdir uses one or the other
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS},
        ],
    }


def test_seccomp_profile_naming_other_architectures_syscalls_loads(sh) -> None:
    def edit(c: dict) -> None:
        c["linux"]["seccomp"] = _profile()

    out = sh("grep Seccomp /proc/self/status; mkdir /tmp/x 2>&1; echo mkdir=$?; touch /tmp/y && echo touched",
             edit=edit).stdout
    assert "Seccomp:\t2" in out and "Seccomp_filters:\t1" in out, out
    assert os.strerror(errno.EROFS) in out and "mkdir=1" in out and "touched" in out, out


def test_seccomp_allowlist_of_another_architectures_names_still_runs_a_shell(sh) -> None:
    """default ERRNO with an allowlist that names both x86's and arm64's syscalls (as profiles shipped
    for several machines do): whatever this machine lacks is skipped, the rest lets the shell run."""
    profile = json.loads(PODMAN_FIXTURE.read_text())["linux"]["seccomp"]
    names = {n for r in profile["syscalls"] for n in r["names"]} | set(FOREIGN)
    names |= {"execveat", "rseq", "clone3", "faccessat2"}  # newer than podman's profile
    names -= {"mkdir", "mkdirat"}

    def edit(c: dict) -> None:
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS,
                                 "architectures": ARCHES,
                                 "syscalls": [{"names": sorted(names), "action": "SCMP_ACT_ALLOW"}]}

    out = sh("mkdir /tmp/x 2>&1; echo mkdir=$?; echo ok", edit=edit).stdout
    assert os.strerror(errno.ENOSYS) in out and "mkdir=1" in out and "ok" in out, out


def test_seccomp_profile_for_other_architectures_only_still_filters_this_one(sh) -> None:
    """A profile that lists only x86's architectures (podman's amd64 default does) still filters the
    machine it runs on, as runc's does: libseccomp's filter always holds the native architecture."""
    def edit(c: dict) -> None:
        c["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS}]}

    out = sh("mkdir /tmp/x 2>&1; echo mkdir=$?", edit=edit).stdout
    assert os.strerror(errno.EROFS) in out and "mkdir=1" in out, out

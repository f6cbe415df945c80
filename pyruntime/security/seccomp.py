"""linux.seccomp (runtime-spec 1.3): compiled to BPF in the runtime, loaded by the init with seccomp(2).

compile() runs in the runtime before it forks: it validates the profile (errors name the JSON path),
builds the filter with libseccomp and exports it as classic BPF. load() runs in the init as late as it
can: a single seccomp(2) call on those bytes, so nothing of libseccomp runs inside the container and
every spec flag reaches the kernel even if this libseccomp predates it. With SCMP_ACT_NOTIFY the
kernel returns a listener fd, which the init sends to the runtime (SCM_RIGHTS) and the runtime sends
on to listenerPath with the container process state, as runc does.
"""

from __future__ import annotations

import errno
import os

from .._native import ffi, lib
from ..errors import ConfigError, RuntimeFailure
from ..record import dataclass  # dataclasses without its start-up cost (see record.py)
from .caps import CAPS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ACTIONS = {
    "SCMP_ACT_KILL": lib.SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": lib.SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": lib.SCMP_ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": lib.SCMP_ACT_TRAP,
    "SCMP_ACT_ERRNO": None,  # takes errnoRet
    "SCMP_ACT_TRACE": None,  # takes errnoRet (the tracer's message)
    "SCMP_ACT_ALLOW": lib.SCMP_ACT_ALLOW,
    "SCMP_ACT_LOG": lib.SCMP_ACT_LOG,
    "SCMP_ACT_NOTIFY": lib.SCMP_ACT_NOTIFY,
}
OPERATORS = {
    "SCMP_CMP_NE": lib.SCMP_CMP_NE, "SCMP_CMP_LT": lib.SCMP_CMP_LT, "SCMP_CMP_LE": lib.SCMP_CMP_LE,
    "SCMP_CMP_EQ": lib.SCMP_CMP_EQ, "SCMP_CMP_GE": lib.SCMP_CMP_GE, "SCMP_CMP_GT": lib.SCMP_CMP_GT,
    "SCMP_CMP_MASKED_EQ": lib.SCMP_CMP_MASKED_EQ,
}
# 0: the kernel headers this was built against do not know the flag.
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": lib.PR_SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": lib.PR_SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": lib.PR_SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": lib.PR_SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}
ARCHES = ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
          "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
          "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
          "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
          "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_SHEB", "SCMP_ARCH_SH")
EPERM = errno.EPERM
# The init's own syscalls between loading the filter and the user's program: notifying one of them
# would wait for a listener that has not been given the fd yet (runc refuses `write` for the same reason).
NOT_NOTIFIABLE = ("write", "sendmsg")


@dataclass
class Program:
    """What the init needs: the BPF bytes, the seccomp(2) flags, and where a listener fd goes."""

    bpf: bytes
    flags: int
    notify: bool
    listener_path: str | None = None
    listener_metadata: str | None = None
    # the errnos the filter can fail a syscall with (None: any, a notify agent answers), so that a
    # failure under a filter loaded early is blamed on it only when it may be its doing
    errnos: frozenset[int] | None = frozenset()


def _action(name: str, errno_ret: int | None, file: str, path: str) -> int:
    if name not in ACTIONS:
        raise ConfigError(file, path, f"unknown seccomp action {name!r}")
    if name == "SCMP_ACT_ERRNO":
        return lib.pr_scmp_act_errno(EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_TRACE":
        return lib.pr_scmp_act_trace(EPERM if errno_ret is None else errno_ret)
    if errno_ret is not None:
        raise ConfigError(file, path, f"{name} does not take an errno return code (errnoRet)")
    return ACTIONS[name]


def _arch(name: str, file: str, path: str) -> int:
    arch = 0
    if name.startswith("SCMP_ARCH_") and name in ARCHES:
        arch = lib.pr_scmp_arch_resolve(name[len("SCMP_ARCH_"):].lower().encode())
    if not arch:
        raise ConfigError(file, path, f"unknown seccomp architecture {name!r}")
    return arch


def _check_errno(value: int | None, file: str, path: str) -> None:
    if value is not None and value > 0xFFFF:
        raise ConfigError(file, path, f"errno {value} does not fit the 16 bits seccomp returns")


def compile(cfg: dict[str, Any], file: str, path: str = "linux.seccomp", cache_root: str | None = None) -> Program:  # noqa: A001
    """Validate and build the filter. Unknown syscall names are skipped (as runc does: a profile
    names syscalls of many kernels); unknown actions, operators, architectures and flags are errors.
    With cache_root (a state root), a filter built before from the same inputs is read back."""
    _check_errno(cfg.get("defaultErrnoRet"), file, f"{path}.defaultErrnoRet")
    if cfg["defaultAction"] == "SCMP_ACT_NOTIFY":
        raise ConfigError(file, f"{path}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    default = _action(cfg["defaultAction"], cfg.get("defaultErrnoRet"), file, f"{path}.defaultAction")
    flags = 0
    for i, name in enumerate(cfg.get("flags") or []):
        if name not in FLAGS:
            raise ConfigError(file, f"{path}.flags[{i}]", f"unknown seccomp flag {name!r}")
        if not FLAGS[name]:
            raise ConfigError(file, f"{path}.flags[{i}]", f"{name} is not supported by this build")
        flags |= FLAGS[name]
    arches = [_arch(a, file, f"{path}.architectures[{i}]") for i, a in enumerate(cfg.get("architectures") or [])]

    rules: list[tuple[int, str, int, list[tuple[int, int, int, int]]]] = []
    notify = False
    for i, rule in enumerate(cfg.get("syscalls") or []):
        rpath = f"{path}.syscalls[{i}]"
        if not rule["names"]:
            raise ConfigError(file, f"{rpath}.names", "must contain at least one syscall name")
        _check_errno(rule.get("errnoRet"), file, f"{rpath}.errnoRet")
        action = _action(rule["action"], rule.get("errnoRet"), file, f"{rpath}.action")
        if rule["action"] == "SCMP_ACT_NOTIFY":
            notify = True
            for name in rule["names"]:
                if name in NOT_NOTIFIABLE:
                    raise ConfigError(file, f"{rpath}.names", f"SCMP_ACT_NOTIFY cannot be used for the {name} "
                                      "syscall: the runtime needs it to hand the listener fd over")
        conds = []
        for j, arg in enumerate(rule.get("args") or []):
            if arg["op"] not in OPERATORS:
                raise ConfigError(file, f"{rpath}.args[{j}].op", f"unknown seccomp operator {arg['op']!r}")
            conds.append((OPERATORS[arg["op"]], arg["index"], arg["value"], arg.get("valueTwo", 0)))
        for name in rule["names"]:
            rules.append((action, name, i, conds))
    if notify:
        if not cfg.get("listenerPath"):
            raise ConfigError(file, f"{path}.listenerPath", "is required when SCMP_ACT_NOTIFY is used")
        if lib.pr_scmp_api_level() < 5:
            raise ConfigError(file, path, "SCMP_ACT_NOTIFY is not supported by this kernel or libseccomp")
        flags |= lib.PR_SECCOMP_FILTER_FLAG_NEW_LISTENER
        if flags & lib.PR_SECCOMP_FILTER_FLAG_TSYNC:  # the kernel refuses TSYNC + NEW_LISTENER without it
            flags |= lib.PR_SECCOMP_FILTER_FLAG_TSYNC_ESRCH
    else:  # meaningless without a listener, and refused by the kernel (EINVAL) without NEW_LISTENER
        flags &= ~lib.PR_SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    if cfg.get("listenerMetadata") and not cfg.get("listenerPath"):
        raise ConfigError(file, f"{path}.listenerMetadata", "must not be set without listenerPath")
    if cache_root is None:
        bpf = _build(default, arches, rules, file, path)
    else:
        bpf = _build_cached(cache_root, default, arches, rules, file, path)
    if cfg["defaultAction"] not in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"):
        bpf = _enosys_stub(arches, [n for _, n, _, _ in rules]) + bpf
    return Program(bpf=bpf, flags=flags, notify=notify, listener_path=cfg.get("listenerPath"),
                   listener_metadata=cfg.get("listenerMetadata"), errnos=None if notify else _errnos(cfg))


def _errnos(cfg: dict[str, Any]) -> frozenset[int]:
    """What ERRNO and TRACE actions return (EPERM unless errnoRet says), plus ENOSYS: the stub's
    answer for syscalls the profile does not know, and TRACE's without a tracer."""
    found = {errno.ENOSYS}
    for action, ret in [(cfg["defaultAction"], cfg.get("defaultErrnoRet")),
                        *((r["action"], r.get("errnoRet")) for r in cfg.get("syscalls") or [])]:
        if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
            found.add(EPERM if ret is None else ret)
    return frozenset(found)


def _enosys_stub(arches: list[int], names: list[str]) -> bytes:
    """runc's -ENOSYS handling (csrc/seccomp.c): a syscall newer than every one the profile names
    gets ENOSYS, not the default action, on each architecture of the profile."""
    found: list[tuple[int, int]] = []
    for arch in dict.fromkeys(arches):
        nrs = [lib.pr_scmp_resolve_syscall_arch(arch, n.encode()) for n in set(names)]
        top = max((nr for nr in nrs if nr >= 0), default=0)
        if top:
            found.append((arch, top))
    if not found:
        return b""
    out = ffi.new("char[]", 4096)
    size = lib.pr_scmp_enosys_stub([a for a, _ in found], [m for _, m in found], len(found), out, 4096)
    if size < 0:
        raise RuntimeFailure(f"seccomp: cannot build the -ENOSYS stub: {os.strerror(ffi.errno).lower()}")
    return bytes(ffi.buffer(out, size))


def _build_cached(root: str, default: int, arches: list[int],
                  rules: list[tuple[int, str, int, list[tuple[int, int, int, int]]]], file: str, path: str) -> bytes:
    """_build's program, from seccomp_cache when the very same inputs were built before."""
    from . import seccomp_cache

    key = repr((1, lib.pr_scmp_version(), lib.pr_scmp_api_level(), os.uname().machine, default, arches,
                rules)).encode()
    bpf = seccomp_cache.lookup(root, key)
    if bpf is None:
        bpf = _build(default, arches, rules, file, path)
        seccomp_cache.store(root, key, bpf)
    return bpf


def _build(default: int, arches: list[int], rules: list[tuple[int, str, int, list[tuple[int, int, int, int]]]],
           file: str, path: str) -> bytes:
    ctx = lib.pr_scmp_new(default)
    if ctx == ffi.NULL:
        raise ConfigError(file, f"{path}.defaultAction", "libseccomp refused the default action")
    try:
        for i, arch in enumerate(arches):
            if lib.pr_scmp_arch_add(ctx, arch) < 0:
                raise ConfigError(file, f"{path}.architectures[{i}]",
                                  f"cannot add architecture: {os.strerror(ffi.errno).lower()}")
        for action, name, i, conds in rules:
            if action == default:
                continue  # libseccomp refuses a rule that repeats the default action; it changes nothing
            nr = lib.pr_scmp_resolve_syscall(name.encode())
            if nr == -1:  # __NR_SCMP_ERROR: not a syscall this libseccomp knows, skipped as runc does
                continue
            # Two conditions on the same argument cannot be ANDed by libseccomp: as runc does, each
            # becomes a rule of its own (OR).
            indexes = [c[1] for c in conds]
            groups = [[c] for c in conds] if len(set(indexes)) != len(indexes) else [conds]
            for group in groups:
                n = len(group)
                ops = ffi.new("int[]", [c[0] for c in group] or [0])
                idx = ffi.new("unsigned int[]", [c[1] for c in group] or [0])
                val = ffi.new("uint64_t[]", [c[2] for c in group] or [0])
                val2 = ffi.new("uint64_t[]", [c[3] for c in group] or [0])
                if lib.pr_scmp_rule_add(ctx, action, nr, n, ops, idx, val, val2) < 0:
                    raise ConfigError(file, f"{path}.syscalls[{i}]",
                                      f"cannot add a rule for {name!r}: {os.strerror(ffi.errno).lower()}")
        fd = os.memfd_create("pyruntime-seccomp", os.MFD_CLOEXEC)
        try:
            if lib.pr_scmp_export_bpf(ctx, fd) < 0:
                raise RuntimeFailure(f"seccomp: cannot export the filter: {os.strerror(ffi.errno).lower()}")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.pr_scmp_release(ctx)


def can_load_late(process: dict[str, Any], cap_sets: dict[str, set[int]] | None) -> bool:
    """Whether the init stub can load the filter, right before the program's execve (the best place:
    nothing of the runtime's runs under it). Loading needs no_new_privs or CAP_SYS_ADMIN, and the
    stub holds only what survives its own execve: root keeps its bounding set, any other user only
    its ambient set. Otherwise the filter is loaded before the user change, as runc does."""
    if process.get("noNewPrivileges"):
        return True
    admin = CAPS["CAP_SYS_ADMIN"]
    if (process.get("user") or {}).get("uid", 0) == 0:
        return cap_sets is None or admin in cap_sets["bounding"]
    return cap_sets is not None and admin in cap_sets.get("ambient", set())


def load(prog: Program, chan: Any = None) -> None:
    """In the init (or an exec'd process): install the filter. With SCMP_ACT_NOTIFY, the listener fd
    goes at once to the runtime over chan (one sendmsg), which passes it on to listenerPath; it is not
    kept here (it is close-on-exec anyway)."""
    buf = ffi.from_buffer(prog.bpf)
    rc = lib.pr_seccomp_load_bpf(buf, len(prog.bpf), prog.flags)
    if rc < 0:
        err = ffi.errno
        hint = " (it needs no_new_privs or CAP_SYS_ADMIN)" if err == errno.EACCES else ""
        raise RuntimeFailure(f"cannot load the seccomp filter: {os.strerror(err).lower()}{hint}")
    if prog.notify:
        fd = int(rc)
        try:
            if chan is None or not hasattr(chan, "send_fds"):
                raise RuntimeFailure("seccomp: SCMP_ACT_NOTIFY is not supported here (no channel to the runtime)")
            chan.send_fds([fd], seccomp_fd=True)
        finally:
            os.close(fd)


def forward(prog: Program | None, msg: dict[str, Any], pid: int, state: dict[str, Any]) -> None:
    """In the runtime, for a {"seccomp_fd": true} message: hand the fd to the listener with the
    container's state (pid: the process under the filter), close ours."""
    fds = msg.get("fds") or []
    try:
        if prog is None or not prog.notify or len(fds) != 1:
            raise RuntimeFailure("unexpected seccomp fd from the container")
        send_to_listener(prog, fds[0], pid, state)
    finally:
        for fd in fds:
            os.close(fd)


def send_to_listener(prog: Program, notify_fd: int, pid: int, state: dict[str, Any]) -> None:
    """In the runtime: one connection, one message: the container process state with the fd (spec)."""
    payload: dict[str, Any] = {"ociVersion": "1.3.0", "fds": ["seccompFd"], "pid": pid, "state": state}
    if prog.listener_metadata:
        payload["metadata"] = prog.listener_metadata
    import _socket as socket  # the C module, imported here: most profiles have no listener
    import _struct

    from .. import fastjson

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(10)
        try:
            sock.connect(prog.listener_path)
        except OSError as e:
            raise RuntimeFailure(f"linux.seccomp.listenerPath: failed to connect with seccomp agent "
                                 f"{prog.listener_path}: {(e.strerror or str(e)).lower()}") from None
        try:
            sock.sendmsg([fastjson.dumps(payload).encode()],
                         [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _struct.pack("i", notify_fd))])
        except OSError as e:
            raise RuntimeFailure(f"linux.seccomp.listenerPath: cannot send the seccomp fd to the agent "
                                 f"{prog.listener_path}: {(e.strerror or str(e)).lower()}") from None
    finally:
        sock.close()


def features() -> dict[str, Any]:
    """The `seccomp` part of `pyruntime features`."""
    return {
        "enabled": True,
        "actions": sorted(ACTIONS),
        "operators": sorted(OPERATORS),
        "archs": [a for a in ARCHES if lib.pr_scmp_arch_resolve(a[len("SCMP_ARCH_"):].lower().encode())],
        "knownFlags": sorted(FLAGS),
        "supportedFlags": sorted(k for k, v in FLAGS.items() if v),
    }

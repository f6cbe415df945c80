"""The children of `exec`: join a running container and become one more process in it.

runtime (exec) --fork--> joiner: joins the container's cgroup, closes every fd it does not need,
blocks imports, then enters all the init's namespaces at once (setns on a pidfd) --fork--> child
(inside the pid namespace): session, pty, rlimits, user and capabilities, cwd, no_new_privs, fds,
seccomp, then execs the init stub from the sealed memfd (LISTEN_FD -1), which execs the program.

The joiner exits as soon as it has forked, so the child is reparented to the runtime (a subreaper
in the foreground) or to conmon. Both run host Python inside the container's namespaces: they are
not dumpable and import nothing once they have left the host's mount namespace.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py costs ~2 ms to import (enums, selectors)
import os

import _prctl  # the C module: prctl.py costs ~0.7 ms to import (it generates its wrappers)

from .. import cgroups, log, native
from .._native import lib
from ..errors import RuntimeFailure
from ..record import dataclass, field  # dataclasses without its start-up cost (see record.py)
from ..security import identity
from . import stub
from .channel import Channel
from .init import (
    EARLY_FILTER_HINT,
    _arrange_fds,
    _chdir,
    _environment,
    _move_high,
    block_imports,
    check_cwd_inside,
    describe,
    filter_may_explain,
    find_executable,
    preload,
)
from .spawn import CLONE_FLAGS, JOIN_ORDER, PROC_NS_NAMES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass
class ExecPlan:
    """Everything the exec children need, computed by the runtime before it forks."""

    container_id: str
    process: dict[str, Any]
    args: list[str]
    init_pid: int
    pidfd: int  # of the container's init, checked against its start time
    ns_flags: int  # CLONE_NEW* of the namespaces where the init differs from us
    cgroup_paths: dict[str, str]
    cap_sets: dict[str, set[int]] | None
    setgroups_allowed: bool
    stub_fd: int
    console_fd: int = -1
    preserve_fds: int = 0
    no_new_privs: bool = False
    no_new_keyring: bool = False
    seccomp: Any = None
    listen_fd: int = -1  # the stub execs at once (shared with init._arrange_fds)
    lock_fd: int = -1  # the state dir's flock: closed first thing, so only the runtime holds it
    proc_fd: int = -1  # the host's /proc, opened by the joiner for the LSM attr files
    extra_env: dict[str, str] = field(default_factory=dict)
    born_in: str | None = None  # the cgroup2 directory the joiner was forked into (cgroups.fork_into)


def preload_for(plan: ExecPlan) -> None:
    """In the runtime, before it forks: the optional modules the children use for this process
    (init.preload; of the container's linux section they use only the filter)."""
    preload(plan.process, {"seccomp": plan.seccomp})


def join(plan: ExecPlan, chan: Channel) -> None:  # pragma: no cover - runs in the forked joiner
    """The joiner: enter the container, fork the child, report its pid, exit."""
    try:
        if plan.lock_fd >= 0:  # joining may block (a frozen cgroup): never with the container locked
            os.close(plan.lock_fd)
            plan.lock_fd = -1
        _prctl.prctl(_prctl.PR_SET_DUMPABLE, 0)
        if "oomScoreAdj" in plan.process:  # through the host's /proc, inherited by the child
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(plan.process["oomScoreAdj"]))
        affinity = plan.process.get("execCPUAffinity") or {}
        if affinity:
            from ..security import sched  # preloaded, as every import in this module's functions

            sched.apply_cpu_affinity(affinity.get("initial"))  # before the cgroup (whose cpuset may reset it)
        if plan.cgroup_paths:
            cgroups.join_forked(plan.cgroup_paths, plan.born_in)
        if affinity:
            sched.apply_cpu_affinity(affinity.get("final"))  # inherited by the child
        high = 4 + plan.preserve_fds
        chan = Channel(socket.socket(fileno=_move_high(chan.sock.detach(), high)))
        plan.stub_fd = _move_high(plan.stub_fd, high)
        plan.pidfd = _move_high(plan.pidfd, high)
        if plan.console_fd >= 0:
            plan.console_fd = _move_high(plan.console_fd, high)
        if plan.process.get("apparmorProfile") or plan.process.get("selinuxLabel"):
            plan.proc_fd = _move_high(os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), high)
        # Of 3..3+n-1 only the caller's fds (inheritable: they came through an exec); a close-on-exec
        # one there is the runtime's own (--log file, state dir) and would be a way out of the container.
        preserved = {fd for fd in range(3, 3 + plan.preserve_fds) if _inheritable(fd)}
        _close_other_fds({0, 1, 2, *preserved, chan.fileno(), plan.stub_fd, plan.pidfd, plan.console_fd,
                          plan.proc_fd})
        block_imports()  # nothing below may read a file by path: the next step enters the container
        _enter_namespaces(plan)
        os.close(plan.pidfd)
        # Everything privileged happens here, where no process of the container can see us; the
        # child forked into its pid namespace holds no more than the container's privileges (a
        # process there with CAP_SYS_PTRACE that hijacked it would gain nothing).
        path, env, seccomp_late = _setup(plan, chan)
        if log.debugging():  # the runtime logs it (runc's words)
            chan.send(debug="child process in init(): joined the container, forking the process")
        pid = os.fork()
        if pid == 0:
            _child(plan, chan, path, env, seccomp_late)  # never returns
        chan.send(pid=pid)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - one message to the runtime
        try:
            chan.send(error=_with_step(e))
        finally:
            os._exit(1)


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:
        return False


def _close_other_fds(keep: set[int]) -> None:
    """Close (not just mark close-on-exec) every other fd: the child chdir()s to a path the container
    chooses before it execs, and /proc/self/fd/N of a host fd would be a way out (CVE-2024-21626)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own fd


def _enter_namespaces(plan: ExecPlan) -> None:
    """All at once through the init's pidfd (Linux >= 5.8); one by one through /proc/<pid>/ns before."""
    if not plan.ns_flags:
        return
    try:
        native.setns(plan.pidfd, plan.ns_flags)
        return
    except OSError as e:
        if e.errno != 22:  # EINVAL: this kernel cannot setns on a pidfd
            raise RuntimeFailure(f"cannot join the namespaces of container {plan.container_id}: "
                                 f"{os.strerror(e.errno).lower()}") from None
    fds = {}
    try:
        for ns_type in JOIN_ORDER:  # open all first: after the mount namespace, /proc is the container's
            if plan.ns_flags & CLONE_FLAGS[ns_type]:
                fds[ns_type] = os.open(f"/proc/{plan.init_pid}/ns/{PROC_NS_NAMES[ns_type]}", os.O_RDONLY | os.O_CLOEXEC)
        for ns_type, fd in fds.items():
            try:
                native.setns(fd, CLONE_FLAGS[ns_type])
            except OSError as e:
                raise RuntimeFailure(f"cannot join the {ns_type} namespace of container {plan.container_id}: "
                                     f"{os.strerror(e.errno).lower()}") from None
    finally:
        for fd in fds.values():
            os.close(fd)


def _child(plan: ExecPlan, chan: Channel, path: str, env: dict[str, str],
           seccomp_late: bool) -> None:  # pragma: no cover - runs in the container
    """A session of its own, the terminal, the filter (unless loaded before the user change), then
    the stub."""
    try:
        _prctl.prctl(_prctl.PR_SET_DUMPABLE, 0)
        os.setsid()
        if plan.console_fd >= 0:
            from .. import console

            root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # the container's root
            try:
                console.attach_pty(root, plan.console_fd, plan.process)
            finally:
                os.close(root)
        fds_arg = "-1"
        if log.debugging():
            chan.send(debug=f"setns_init: about to exec {plan.args[0]!r}")
        if plan.seccomp is not None and seccomp_late:
            # Loaded by the stub right before the program's execve; with SCMP_ACT_NOTIFY it sends the
            # listener fd over the channel (inherited by the stub only: close-on-exec there).
            seccomp_fd = _move_high(stub.filter_memfd(plan.seccomp.bpf), 5 + plan.preserve_fds)
            os.set_inheritable(seccomp_fd, True)
            os.set_inheritable(chan.fileno(), True)
            fds_arg = stub.stub_fds_arg(-1, -1, seccomp_fd, plan.seccomp.flags, chan.fileno())
        chan.send(ready=True)
        os.execve(plan.stub_fd, ["pyruntime-exec", fds_arg, path, *plan.args], env)
    except BaseException as e:  # noqa: BLE001
        try:
            chan.send(error=_with_step(e))
        finally:
            os._exit(1)


_STEP = ["", ""]  # the step under way and a hint once the filter is loaded early (as in init.py)
_FILTER_ERRNOS: list[frozenset[int] | None] = [None]


def _with_step(e: BaseException) -> str:
    msg = describe(e)
    if isinstance(e, OSError) and _STEP[0]:
        msg = f"{_STEP[0]}: {msg}"
    return f"{msg} ({_STEP[1]})" if _STEP[1] and filter_may_explain(e, _FILTER_ERRNOS[0]) else msg


def _apply_labels(plan: ExecPlan) -> None:
    """AppArmor/SELinux exec labels through the host's /proc: the container's /proc is its own to
    remount or bind over (a write to a fake attr file would leave the process unconfined, the
    CVE-2019-16884 class). LSM availability was decided in the runtime, on the host."""
    if plan.proc_fd < 0:
        return
    from ..security import lsm

    process = plan.process
    try:
        profile = process.get("apparmorProfile")
        if profile and lsm.apparmor_enabled():
            _write_attr(plan.proc_fd, ("apparmor/exec", "exec"), f"exec {profile}", "apparmorProfile")
        if process.get("selinuxLabel"):
            _write_attr(plan.proc_fd, ("exec",), process["selinuxLabel"], "selinuxLabel")
    finally:
        os.close(plan.proc_fd)
        plan.proc_fd = -1


def _write_attr(proc_fd: int, names: tuple[str, ...], value: str, what: str) -> None:
    resolve = lib.RESOLVE_BENEATH | lib.RESOLVE_NO_MAGICLINKS | lib.RESOLVE_NO_XDEV
    why = "no attr file"
    for name in names:
        try:
            fd = native.openat2(proc_fd, f"thread-self/attr/{name}", os.O_WRONLY, resolve)
        except FileNotFoundError:
            continue
        except OSError as e:
            why = os.strerror(e.errno).lower()
            break
        try:
            os.write(fd, value.encode())
            return
        except OSError as e:
            why = os.strerror(e.errno).lower()
            break
        finally:
            os.close(fd)
    raise RuntimeFailure(f"cannot apply {what} {value!r}: {why}")


def _setup(plan: ExecPlan, chan: Channel) -> tuple[str, dict[str, str], bool]:
    """In the joiner: the privileged steps, then the user change. Returns the program's path, its
    environment and whether the filter is still to be loaded."""
    process = plan.process
    if not plan.no_new_keyring:
        try:
            native.join_session_keyring(None)
        except OSError:
            pass
    if process.get("scheduler") is not None or process.get("ioPriority") is not None:
        from ..security import sched

        sched.apply_scheduler(process.get("scheduler"))  # while root: CAP_SYS_NICE
        sched.apply_io_priority(process.get("ioPriority"))
    if process.get("rlimits"):
        from ..security import rlimits

        rlimits.apply(process["rlimits"])
    _apply_labels(plan)
    env = _environment(process, plan)
    user = process.get("user") or {}
    cwd = process["cwd"]
    _arrange_fds(plan)  # before any filter: close_range is a syscall old profiles lack
    seccomp_late = True
    if plan.seccomp is not None:
        from ..security import seccomp

        seccomp_late = seccomp.can_load_late(dict(process, noNewPrivileges=plan.no_new_privs), plan.cap_sets)
        if not seccomp_late:  # no no_new_privs and the user keeps no CAP_SYS_ADMIN: load it while we can
            _STEP[0] = "loading linux.seccomp"
            seccomp.load(plan.seccomp, chan)
            _STEP[1], _FILTER_ERRNOS[0] = EARLY_FILTER_HINT, plan.seccomp.errnos
    _STEP[0] = "chdir to the cwd"
    _chdir(cwd)
    _STEP[0] = "switching to the user"
    identity.switch_user(user, plan.cap_sets, plan.setgroups_allowed)
    _STEP[0] = "chdir to the cwd as the user"
    _chdir(cwd)
    _STEP[0] = "checking the cwd (getcwd)"
    check_cwd_inside(cwd)  # CVE-2024-21626
    _STEP[0] = "looking up the program"
    path = find_executable(plan.args[0], env)
    if plan.no_new_privs:
        _STEP[0] = "setting no_new_privs (prctl)"
        _prctl.prctl(_prctl.PR_SET_NO_NEW_PRIVS, 1)
    os.umask(user.get("umask", 0o022))
    return path, env, seccomp_late

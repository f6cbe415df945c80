"""Parent side of create: fork the intermediate that makes the namespaces, which forks the init.

runtime (create) --fork--> intermediate: joins the cgroup, joins/unshares namespaces --fork--> init
The intermediate exits at once, so the init (PID 1 of a new pid namespace) is reparented to the
nearest subreaper (conmon, or `run` itself) or to the host's init: never left a child of a
`create` that has exited. Everything both children run is imported before the first fork.
"""

from __future__ import annotations

import os

import _prctl  # the C module: prctl.py costs ~0.7 ms to import (it generates its wrappers)

from .. import cgroups, hooks, log, native, trace
from .._native import lib
from ..errors import RuntimeFailure
from ..faults import checkpoint
from ..record import dataclass, field  # dataclasses without its start-up cost (see record.py)
from . import init as init_mod
from .channel import Channel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CLONE_FLAGS = {"pid": lib.CLONE_NEWPID, "network": lib.CLONE_NEWNET, "mount": lib.CLONE_NEWNS,
               "ipc": lib.CLONE_NEWIPC, "uts": lib.CLONE_NEWUTS, "user": lib.CLONE_NEWUSER,
               "cgroup": lib.CLONE_NEWCGROUP, "time": lib.CLONE_NEWTIME}
PROC_NS_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
                 "cgroup": "cgroup", "time": "time"}
# setns order: user first (it grants rights in the others), mount last (it changes path lookup).
JOIN_ORDER = ("user", "pid", "network", "ipc", "uts", "cgroup", "time", "mount")


@dataclass
class InitPlan:
    """Everything the init needs, computed by the runtime before it forks."""

    container_id: str
    config: dict[str, Any]
    config_file: str
    bundle: str
    rootfs: str
    namespaces: dict[str, str | None]
    cgroup_paths: dict[str, str]
    cap_sets: dict[str, set[int]] | None
    stub_fd: int
    listen_fd: int  # -1: exec at once (the init waited itself)
    preserve_fds: int = 0
    no_pivot: bool = False
    no_new_keyring: bool = False
    console_fd: int = -1
    seccomp: Any = None
    extra_env: dict[str, str] = field(default_factory=dict)
    idmap_trees: dict[int, int] = field(default_factory=dict)  # mount index -> detached idmapped tree fd
    lock_fd: int = -1  # the state dir's flock: closed in the children, so only the runtime holds it
    cgroup_lock_fd: int = -1  # cgroups.claim()'s flock on the cgroup: the same
    late_pid_fd: int = -1  # a joined pid namespace, entered by the init only after pivot_root
    host_root: bool = True  # False in a user namespace already (rootless podman): no mknod
    cgroup_view: dict[str, str] = field(default_factory=dict)  # cgroups.own_view: the cgroup mount's other binds


def spawn(plan: InitPlan, state_for_hooks: dict[str, Any]) -> int:
    """Start the container's init and wait until it is set up and waiting; return its pid."""
    init_mod.preload(plan.config["process"], plan.config.get("linux") or {})  # the init cannot import
    try:
        parent, child = Channel.pair()
    except OSError as e:  # e.g. out of fds (RLIMIT_NOFILE)
        raise RuntimeFailure(f"cannot create the sync channel: {(e.strerror or str(e)).lower()}") from None
    log.debug(f"nsexec container setup: forking the init of {plan.container_id}")
    trace.mark("fork")
    pid1, born_in = cgroups.fork_into(plan.cgroup_paths) if plan.cgroup_paths else (os.fork(), None)
    if pid1 == 0:  # pragma: no cover - runs in the child
        parent.close()
        _intermediate(plan, child, born_in)
    child.close()
    checkpoint("spawn:forked")
    init_pid = 0
    ready = False  # EOF without "ready" is an init that died (killed, OOM) during its setup
    # Pids are reported by the intermediate and, when the pid namespace is joined late, by the setup
    # process: never by the init itself, which a process of a shared pid namespace could hijack.
    late = late_pid_join(plan)
    trusted_pids = 2 if late else 1
    stuck = False  # the intermediate may be frozen (cgroups.recv_unless_frozen)
    try:
        while True:
            msg = cgroups.recv_unless_frozen(parent, plan.cgroup_paths)
            if msg is None:
                trace.mark("stub")  # EOF: the init has executed the stub (the channel is close-on-exec)
                break
            if "error" in msg:
                raise RuntimeFailure(msg["error"])
            if "pid" in msg:
                if trusted_pids == 0:
                    raise RuntimeFailure("container init sent an unexpected message")
                trusted_pids -= 1
                init_pid = msg["pid"]
                for phase, at in msg.get("trace") or []:
                    trace.mark(phase, at)
                checkpoint("spawn:init-pid")
            elif trusted_pids == 0 and late and ("hooks" in msg or "userns" in msg):
                raise RuntimeFailure("container init sent an unexpected message")
            elif "userns" in msg:
                from ..namespaces import write_id_maps

                write_id_maps(msg["userns"], plan.config)
                parent.send(ok=True)
            elif "hooks" in msg:
                state = dict(state_for_hooks, pid=init_pid, status="creating")
                hooks_cfg = plan.config.get("hooks") or {}
                checkpoint("spawn:hooks")
                hooks.run_all("prestart", hooks_cfg.get("prestart"), state)
                hooks.run_all("createRuntime", hooks_cfg.get("createRuntime"), state)
                checkpoint("spawn:hooks-done")
                parent.send(ok=True)
            elif "seccomp_fd" in msg:  # SCMP_ACT_NOTIFY: the listener gets it with the state
                from ..security import seccomp

                seccomp.forward(plan.seccomp, msg, init_pid, dict(state_for_hooks, pid=init_pid, status="creating"))
            elif "ready" in msg:
                for phase, at in msg.get("trace") or []:  # the init's own marks (PYRUNTIME_TRACE)
                    trace.mark(phase, at)
                ready = True
                checkpoint("spawn:ready")
            elif "debug" in msg:
                log.debug(str(msg["debug"]))
        if not init_pid or not ready:
            raise RuntimeFailure("container init exited before it was set up")
        return init_pid
    except BaseException as e:
        stuck = isinstance(e, cgroups.FrozenWhileWaiting)
        if init_pid:
            _kill(init_pid)
        raise
    finally:
        cgroups.reap_or_leave(pid1, stuck)
        parent.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def late_pid_join(plan: InitPlan) -> bool:
    """A joined pid namespace holds another container's processes: the init enters it only after
    pivot_root (process/init.py), so they never see a process whose root and cwd are the host's.
    Not possible from a new user namespace (no rights over the joined one are left)."""
    ns = plan.namespaces
    return bool(ns.get("pid")) and ("user" not in ns or bool(ns["user"])) and "mount" in ns and not ns["mount"]


def _intermediate(plan: InitPlan, chan: Channel, born_in: str | None) -> None:  # pragma: no cover - runs in the child
    step = "joining the container's cgroup (linux.cgroupsPath)"  # named in a bare syscall failure
    try:
        # Not dumpable from here on (inherited by the init across fork): a process of the container
        # that can see the init (a shared pid namespace) must not reach its memory, exe or map_files.
        _prctl.prctl(_prctl.PR_SET_DUMPABLE, 0)
        if plan.lock_fd >= 0:  # a container whose runtime died must not stay locked by its init
            os.close(plan.lock_fd)
        if plan.cgroup_lock_fd >= 0:
            os.close(plan.cgroup_lock_fd)
        trace.mark("init:forked")
        if plan.cgroup_paths:
            cgroups.join_forked(plan.cgroup_paths, born_in)
        checkpoint("intermediate:joined")
        trace.mark("init:joined")
        step = "joining linux.namespaces given by path"
        joined = {t: p for t, p in plan.namespaces.items() if p}
        new = [t for t, p in plan.namespaces.items() if not p]
        late_pid = late_pid_join(plan)
        for ns_type in JOIN_ORDER:
            if ns_type in joined:
                if ns_type == "pid" and late_pid:
                    try:
                        plan.late_pid_fd = os.open(joined["pid"], os.O_RDONLY | os.O_CLOEXEC)
                    except OSError as e:
                        raise RuntimeFailure(f"cannot open pid namespace {joined['pid']}: "
                                             f"{e.strerror.lower()}") from None
                    continue
                _join(ns_type, joined[ns_type])
        if "user" in joined:  # become the joined namespace's root (the host's root is unmapped there)
            step = "becoming root in the joined user namespace (setresuid/setresgid 0)"
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        if "user" in new:
            step = "creating the user namespace (linux.namespaces)"
            native.unshare(lib.CLONE_NEWUSER)
            _prctl.prctl(_prctl.PR_SET_DUMPABLE, 1)  # newuidmap/newgidmap check who owns /proc/<pid> (as runc does)
            chan.send(userns=os.getpid())
            if not (chan.recv() or {}).get("ok"):
                os._exit(1)
            _prctl.prctl(_prctl.PR_SET_DUMPABLE, 0)
            step = "becoming root in the new user namespace (linux.uidMappings/gidMappings must map 0)"
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        flags = 0
        for ns_type in new:
            if ns_type != "user":
                flags |= CLONE_FLAGS[ns_type]
        if flags:
            step = "creating the namespaces of linux.namespaces"
            native.unshare(flags)
        if "time" in new:
            step = "writing linux.timeOffsets"
            _write_time_offsets(plan.config)
        if "network" in new:
            step = "bringing up lo in the new network namespace"
            native.loopback_up()
        trace.mark("init:unshared")
        step = "forking the container's init"
        pid = os.fork()
        if pid == 0:
            init_mod.run(plan, chan)  # never returns
        if trace.FILE is not None:  # the intermediate's marks (PYRUNTIME_TRACE)
            chan.send(pid=pid, trace=[m for m in trace.MARKS if m[0].startswith("init:")])
        else:
            chan.send(pid=pid)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - everything becomes one message to the runtime
        try:
            msg = init_mod.describe(e)
            chan.send(error=f"{step}: {msg}" if isinstance(e, OSError) else msg)
        finally:
            os._exit(1)


def _join(ns_type: str, path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure(f"cannot open {ns_type} namespace {path}: {e.strerror.lower()}") from None
    try:
        native.setns(fd, CLONE_FLAGS[ns_type])
    except OSError as e:
        raise RuntimeFailure(f"cannot join {ns_type} namespace {path}: {e.strerror.lower()}") from None
    finally:
        os.close(fd)


def _write_time_offsets(config: dict[str, Any]) -> None:
    offsets = (config.get("linux") or {}).get("timeOffsets") or {}
    lines = [f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}" for clock, o in offsets.items()]
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write("\n".join(lines) + "\n")

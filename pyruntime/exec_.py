"""`exec`: run one more process in a running container (runc's flags, or a --process JSON file).

The process is described in full here, in the runtime (validated, capabilities resolved, seccomp
compiled), then process/setns_init.py joins the container and applies it. In the foreground the
runtime is a subreaper, waits for the process and returns its exit code; detached, it writes the
pid file and returns as soon as the process runs (conmon reaps it).
"""

from __future__ import annotations

import os
from _signal import SIGKILL  # the C module: signal.py imports enum (~4 ms)

from . import fastjson, forwarding, log, spec, state
from .errors import ConfigError, RuntimeFailure
from .record import dataclass, field  # dataclasses without its start-up cost (see record.py)
from .state import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_MAX_ID = 2**32 - 2  # (uid_t)-1 means "unchanged" to the kernel


@dataclass
class ExecOptions:
    """The command-line options of exec."""

    process_file: str | None = None
    process: dict[str, Any] | None = None  # a runtime-spec process given as an object (the Python API)
    args: list[str] = field(default_factory=list)
    tty: bool | None = None
    detach: bool = False
    pid_file: str | None = None
    console_socket: str | None = None
    pidfd_socket: str | None = None
    cwd: str | None = None
    env: list[str] = field(default_factory=list)
    user: str | None = None
    additional_gids: list[str] = field(default_factory=list)
    caps: list[str] = field(default_factory=list)
    no_new_privs: bool = False
    preserve_fds: int = 0
    cgroup: list[str] = field(default_factory=list)
    process_label: str | None = None
    apparmor: str | None = None
    ignore_paused: bool = False


def parse_user(value: str) -> tuple[int, int | None]:
    """uid[:gid], numbers only: "0x10", "1000abc", " 1", "root", "1:" are refused (crun CVE-2026-30892
    came from a lenient parse that turned garbage into uid 0)."""
    uid, colon, gid = value.partition(":")
    if not _decimal_id(uid) or (colon and not _decimal_id(gid)):
        raise RuntimeFailure(f"--user {value!r}: expected uid[:gid] with numeric ids (0..{_MAX_ID})")
    return int(uid), int(gid) if colon else None


def _decimal_id(text: str) -> bool:
    """1-10 ASCII digits, at most _MAX_ID (no sign, space, underscore or other digits int() takes)."""
    return 0 < len(text) <= 10 and text.isascii() and text.isdigit() and int(text) <= _MAX_ID


def _parse_gids(values: list[str]) -> list[int]:
    gids = []
    for v in values:
        for part in v.split(","):
            if not _decimal_id(part):
                raise RuntimeFailure(f"--additional-gids {v!r}: expected numeric gids (0..{_MAX_ID})")
            gids.append(int(part))
    return gids


def build_process(c: Container, opts: ExecOptions) -> tuple[dict[str, Any], str]:
    """The runtime-spec process to run, and the file name errors should mention."""
    base = c.config.get("process") or {}
    if opts.process_file or opts.process is not None:
        if opts.args:
            raise RuntimeFailure("exec: give either --process FILE or a command, not both")
        if opts.process is not None:
            file, process = "process", fastjson.copy(opts.process)
        else:
            file = os.path.abspath(opts.process_file)
            process = spec.load_json(file, "process.json", pipe_ok=True)
        if not isinstance(process, dict):
            raise ConfigError(file, "", "expected a JSON object (a runtime-spec process)")
        # Unset fields take the container's values, as runc does (never fewer restrictions).
        for key in ("capabilities", "rlimits", "apparmorProfile", "selinuxLabel"):
            if process.get(key) is None and base.get(key) is not None:
                process[key] = fastjson.copy(base[key])
    else:
        if not opts.args:
            raise RuntimeFailure("exec: a command to run (or --process FILE) is required")
        file = "exec arguments"
        process = fastjson.copy(base)
        process.pop("consoleSize", None)
        process["args"] = list(opts.args)
        process.pop("commandLine", None)
        process["terminal"] = bool(opts.tty)
        process["env"] = list(process.get("env") or []) + list(opts.env)
        process["cwd"] = opts.cwd or process.get("cwd") or "/"
        user = dict(process.get("user") or {"uid": 0, "gid": 0})
        if opts.user is not None:
            uid, gid = parse_user(opts.user)
            user["uid"] = uid
            if gid is not None:
                user["gid"] = gid
        if opts.additional_gids:
            user["additionalGids"] = list(user.get("additionalGids") or []) + _parse_gids(opts.additional_gids)
        process["user"] = user
        if opts.caps:
            caps = {k: list(v) for k, v in (process.get("capabilities") or {}).items()}
            for name in opts.caps:
                for kind in ("bounding", "effective", "permitted"):
                    caps.setdefault(kind, []).append(name)
                if caps.get("inheritable"):  # ambient needs inheritable: only if the config has some
                    caps.setdefault("ambient", []).append(name)
            process["capabilities"] = caps
        if opts.no_new_privs:
            process["noNewPrivileges"] = True
    if opts.tty is not None and (opts.process_file or opts.process is not None):
        process["terminal"] = opts.tty
    if opts.apparmor:
        process["apparmorProfile"] = opts.apparmor
    if opts.process_label:
        process["selinuxLabel"] = opts.process_label
    _check(process, file)
    return process, file


def _check(process: dict[str, Any], file: str) -> None:
    from . import schema

    try:
        schema.validate(process, schema.PROCESS, file)
        spec.check_process(process, file, "")
        from .security import validate

        validate.check_process(process, file, "")
    except ConfigError as e:
        raise ConfigError(file, e.path.lstrip("."), e.cause) from None
    if not process.get("args"):
        raise ConfigError(file, "args", "must contain at least the program to run")
    if spec.is_proc_fd_path(os.path.normpath(process["cwd"]), ("fd",)):
        raise ConfigError(file, "cwd", f"{process['cwd']!r} is a file descriptor path: refused")


def exec_(root: str, container_id: str, opts: ExecOptions) -> int:
    """Run the process; return its exit code (foreground) or 0 once it runs (detached). A failure
    to start it exits 255, as runc's does, so that a caller can tell it from the process's own code."""
    pid, proxy = start_process(root, container_id, opts)
    if opts.detach:
        return 0
    return _wait(pid, proxy)


def start_process(root: str, container_id: str, opts: ExecOptions) -> tuple[int, Any]:
    """Set the process up and start it: (its pid, the foreground terminal proxy or None). Failures
    carry exit code 255."""
    try:
        return _start(root, container_id, opts)
    except RuntimeFailure as e:
        e.exit_code = 255
        raise
    except OSError as e:
        from .errors import os_failure

        failure = os_failure("exec", e)
        failure.exit_code = 255
        raise failure from None


def _start(root: str, container_id: str, opts: ExecOptions) -> tuple[int, Any]:
    """Set the process up and start it: (its pid, the foreground terminal proxy or None)."""
    import _prctl  # the C module: prctl.py costs ~0.7 ms to import

    from .process import setns_init
    from .process.stub import sealed_memfd
    from .security import caps

    c = state.load(root, container_id, shared=True)
    fds: list[int] = []
    proxy = None
    try:
        status = c.status()
        if status == "stopped":
            raise RuntimeFailure(f"cannot exec in a stopped container {container_id!r}")
        if status == "paused" and not opts.ignore_paused:
            raise RuntimeFailure(f"cannot exec in a paused container {container_id!r} "
                                 "(use --ignore-paused to override)")
        process, file = build_process(c, opts)
        _seal_if_exposed(c, process)
        if process.get("terminal") and not opts.console_socket and opts.detach:
            raise RuntimeFailure("exec --tty --detach needs a --console-socket to send the terminal to")
        if opts.pid_file:
            _check_pid_file_dir(opts.pid_file)
        cap_sets = caps.resolve_sets(process.get("capabilities"), file, "capabilities")
        _check_labels(process, file)
        seccomp_prog = _compile_seccomp(c)
        cgroup_paths = _cgroup_paths(c.cgroup_paths, opts.cgroup)

        pidfd = os.pidfd_open(c.pid)
        fds.append(pidfd)
        if not c.init_alive():  # the pid was reused before we held the pidfd
            raise RuntimeFailure(f"cannot exec in a stopped container {container_id!r}")
        ns_flags = _namespaces_to_join(c.pid)
        stub_fd = sealed_memfd()
        fds.append(stub_fd)
        console_fd = -1
        if process.get("terminal"):
            from . import console

            if not opts.console_socket:
                proxy = console.ForegroundTerminal()
                size = proxy.caller_size()
                if size:  # set before the program starts (it may ask at once), not after
                    process["consoleSize"] = {"height": size[0], "width": size[1]}
            console_fd = console.connect(opts.console_socket or proxy.socket_path)
            fds.append(console_fd)
            if proxy:
                proxy.unlink_path()
        plan = setns_init.ExecPlan(
            container_id=container_id, process=process, args=process["args"], init_pid=c.pid, pidfd=pidfd,
            ns_flags=ns_flags, cgroup_paths=cgroup_paths, cap_sets=cap_sets,
            setgroups_allowed=_setgroups_allowed(c.pid), stub_fd=stub_fd, console_fd=console_fd,
            preserve_fds=opts.preserve_fds, no_new_privs=bool(process.get("noNewPrivileges")) or bool(
                (c.config.get("process") or {}).get("noNewPrivileges")),
            seccomp=seccomp_prog, lock_fd=c.dir_fd)
        if status == "paused":
            # --ignore-paused: the process joins the frozen cgroup and its setup waits there until
            # `resume`, which needs the state lock: do not hold it meanwhile (runc waits the same way)
            import fcntl

            fcntl.flock(c.dir_fd, fcntl.LOCK_UN)
        if not opts.detach:
            _prctl.prctl(_prctl.PR_SET_CHILD_SUBREAPER, 1)  # the process is reparented to us when the joiner exits
        # Born in the cgroup (no RCU grace period, see cgroups.join_forked) unless the joiner must
        # set its initial CPU affinity before joining, or the container is paused (a joiner born
        # frozen would still hold the state lock it closes first).
        born = status == "running" and not process.get("execCPUAffinity")
        pid = _spawn(plan, {"ociVersion": "1.3.0", "id": c.id, "status": "running", "pid": c.pid,
                            "bundle": c.bundle, "annotations": c.annotations}, born,
                     {} if status == "paused" else cgroup_paths)  # --ignore-paused: wait for the thaw
        for fd in fds:
            os.close(fd)
        fds.clear()
        if opts.pid_file:
            from .proc import write_pid_file

            try:
                write_pid_file(opts.pid_file, pid)
            except OSError as e:
                forwarding.send(pid, SIGKILL)
                raise RuntimeFailure(f"cannot write --pid-file {opts.pid_file}: {e.strerror.lower()}") from None
        if opts.pidfd_socket:
            from . import pidfd_socket

            try:
                pidfd_socket.send(opts.pidfd_socket, pid)
            except RuntimeFailure:
                forwarding.send(pid, SIGKILL)
                raise
    except BaseException:
        if proxy:
            proxy.close()
        raise
    finally:
        for fd in fds:
            os.close(fd)
        c.close()  # the lock is not held while the process runs
    return pid, proxy


def _seal_if_exposed(c: Container, process: dict[str, Any]) -> None:
    """A container whose processes could reach ours through /proc (CAP_SYS_PTRACE, no user
    namespace) gets a runtime re-executed from read-only mounts (security/sealed.py)."""
    from .security import sealed

    linux = c.config.get("linux") or {}
    userns = any(ns.get("type") == "user" for ns in linux.get("namespaces") or [])
    sets = [((p or {}).get("capabilities") or {}).get("bounding") or [] for p in (c.config.get("process"), process)]
    sealed.ensure(sealed.exposed(sets, userns))


def _spawn(plan: Any, state_for_listener: dict[str, Any], born_in_cgroup: bool, watched: dict[str, str]) -> int:
    """Fork the joiner and wait for the process's pid; give up if the `watched` cgroups get frozen."""
    from . import cgroups
    from .process import setns_init
    from .process.channel import Channel

    setns_init.preload_for(plan)  # the children cannot import in the container
    parent, child = Channel.pair()
    log.debug(f"nsexec container setup: joining container {plan.container_id}")
    if born_in_cgroup and plan.cgroup_paths:
        joiner, plan.born_in = cgroups.fork_into(plan.cgroup_paths)
    else:
        joiner = os.fork()
    if joiner == 0:  # pragma: no cover - runs in the child
        parent.close()
        setns_init.join(plan, child)
    child.close()
    pid = 0
    stuck = False
    try:
        while True:
            msg = cgroups.recv_unless_frozen(parent, watched)
            if msg is None:
                break
            if "error" in msg:
                raise RuntimeFailure(msg["error"])
            if "pid" in msg:
                if pid:  # only the joiner reports it; a second one would come from a hijacked child
                    raise RuntimeFailure("exec: unexpected message from the process")
                pid = msg["pid"]
            elif "debug" in msg:
                log.debug(str(msg["debug"]))
            elif "seccomp_fd" in msg:  # SCMP_ACT_NOTIFY: the listener fd goes on to listenerPath
                from .security import seccomp

                seccomp.forward(plan.seccomp, msg, pid, state_for_listener)
        if not pid:
            raise RuntimeFailure("exec: the process exited before it was set up")
        return pid
    except cgroups.FrozenWhileWaiting:
        stuck = True
        raise
    finally:
        cgroups.reap_or_leave(joiner, stuck)
        parent.close()


def _wait(pid: int, proxy: Any) -> int:
    from .proc import wait_exit

    forwarding.forward_to(pid)
    if proxy is None:
        return wait_exit(pid)
    try:
        proxy.receive_master()
        return proxy.proxy_until_exit(pid)
    finally:
        proxy.close()


def _namespaces_to_join(pid: int) -> int:
    """CLONE_NEW* of each namespace in which the init differs from us (joining one's own user
    namespace is an error; joining the host's others would be a no-op)."""
    from .process.spawn import CLONE_FLAGS, PROC_NS_NAMES

    flags = 0
    for ns_type, name in PROC_NS_NAMES.items():
        try:
            theirs = os.stat(f"/proc/{pid}/ns/{name}")
            ours = os.stat(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            continue  # a namespace type this kernel lacks
        except ProcessLookupError:
            raise RuntimeFailure("cannot exec: the container's init exited") from None
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
            flags |= CLONE_FLAGS[ns_type]
    return flags


def _setgroups_allowed(pid: int) -> bool:
    """Read from the host's /proc now: inside the container /proc is the container's to fake."""
    try:
        with open(f"/proc/{pid}/setgroups") as f:
            return f.read().strip() == "allow"
    except OSError:
        return True


def _compile_seccomp(c: Container) -> Any:
    profile = (c.config.get("linux") or {}).get("seccomp")
    if not profile:
        return None
    from .security import seccomp

    return seccomp.compile(profile, os.path.join(c.bundle, "config.json"), cache_root=c.root)


def _cgroup_paths(paths: dict[str, str], requests: list[str]) -> dict[str, str]:
    """runc's --cgroup: "sub" (one, for every hierarchy) or "ctrl[,ctrl]:sub" (repeatable), a
    sub-cgroup of the container's; "/" is the container's own. A missing sub-cgroup fails at the join."""
    if not requests:
        return dict(paths)
    subs: dict[str | None, str] = {}  # None: every hierarchy
    for req in requests:
        parts = req.split(":")
        if len(parts) > 2:
            raise RuntimeFailure(f"invalid --cgroup argument: {req}")
        if len(parts) == 1:
            if len(requests) != 1:
                raise RuntimeFailure(f"invalid --cgroup argument: {req} (missing <controller>: prefix)")
            subs[None] = req
        else:
            for ctrl in parts[0].split(","):
                subs[ctrl] = parts[1]
    from . import cgroups

    known = {mp: key for key, mp in cgroups.hierarchies().items()}
    names: dict[str, set[str]] = {}
    for mp in paths:
        key = known.get(mp, os.path.basename(mp))  # e.g. "cpu,cpuacct", "name=systemd", "unified"
        n = set(key.split(","))
        if key == cgroups.UNIFIED:
            n.add("")  # runc's name for the v2 hierarchy
        names[mp] = n | {x.partition("=")[2] for x in n if x.startswith("name=")}
    out = dict(paths)
    for ctrl, sub in subs.items():
        targets = [mp for mp in paths if ctrl is None or ctrl in names.get(mp, ())]
        if not targets:
            raise RuntimeFailure(f"--cgroup {ctrl}:{sub}: unknown controller {ctrl} (not in this container's cgroups)")
        for mp in targets:
            base = paths[mp]
            target = os.path.normpath(os.path.join(base, sub.lstrip("/")))
            if target != base and not target.startswith(base + "/"):
                raise RuntimeFailure(f"--cgroup: {sub} is not a sub cgroup path")
            out[mp] = target
    return out


def _check_labels(process: dict[str, Any], file: str) -> None:
    """Decide here, on the host's /sys and /proc, whether the LSMs are on (the result is cached and
    inherited): inside the container those paths are the container's to fake."""
    if not (process.get("apparmorProfile") or process.get("selinuxLabel")):
        return
    try:
        from .security import lsm
    except ImportError:  # pragma: no cover - the process-security area's module
        return
    try:
        lsm.check_process(process, file, "")
    except ConfigError as e:
        raise ConfigError(file, e.path.lstrip("."), e.cause) from None


def _check_pid_file_dir(path: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise RuntimeFailure(f"--pid-file {path}: directory {d} does not exist")

"""Lifecycle orchestration: create, start, kill, delete (runtime-spec "Operations"); `run` is runner.py."""

from __future__ import annotations

import _signal  # the C module: signal.py imports enum (~4 ms)
import os
import sys

# spec (with schema), cgroups and hooks are imported where used: start, kill and delete need few of them
from . import log, state, trace
from .errors import ConfigError, RuntimeFailure
from .faults import checkpoint as _checkpoint  # test-only fault injection (issue 8)
from .record import dataclass  # dataclasses without its start-up cost (see record.py)
from .state import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass
class CreateOptions:
    """The command-line options of create and run."""

    bundle: str
    pid_file: str | None = None
    console_socket: str | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    systemd_cgroup: bool = False
    pidfd_socket: str | None = None


def create(root: str, container_id: str, opts: CreateOptions) -> Container:
    """Set the container up with its init waiting for `start`; leave nothing behind on failure."""
    from . import cgroups, spec
    from .process import spawn as spawn_mod
    from .process.stub import sealed_memfd
    from .rootfs import idmap
    from .security import caps

    trace.mark("imports")
    state.check_id(container_id)
    bundle, file, config, rootfs = spec.load_bundle(opts.bundle)
    process = config["process"]
    if process.get("terminal") and not opts.console_socket:
        raise RuntimeFailure("process.terminal is true: a --console-socket is required "
                             "(or run in the foreground with `pyruntime run`)")
    cap_sets = caps.resolve_sets(process.get("capabilities"), file, "process.capabilities")
    seccomp_prog = None
    if (config.get("linux") or {}).get("seccomp"):
        from .security import seccomp

        seccomp_prog = seccomp.compile(config["linux"]["seccomp"], file, cache_root=root)
    net_devices = (config.get("linux") or {}).get("netDevices")
    if net_devices:
        from . import network

        network.check(config, file)
    namespaces = spec.namespaces(config)
    if namespaces.get("pid") and os.geteuid() == 0:  # joining a pid namespace we know nothing of
        from .security import sealed  # (rootless: nothing there has privileges over the host's files)

        sealed.ensure(sealed.exposed([None], False))
    from .security import validate

    validate.check_config(config, namespaces, file)  # scheduler, sysctl, personality, LSM...: before anything exists
    cgroup_paths = cgroups.plan(config, container_id, opts.systemd_cgroup, file)
    host_root = state.host_root()
    if not host_root:  # an unprivileged user, or uid 0 in a user namespace (rootless podman), as runc
        if os.geteuid() != 0 and "user" not in namespaces:
            raise ConfigError(file, "linux.namespaces", "a rootless container needs a user namespace "
                              "(try `pyruntime spec --rootless`)")
        limits = any(v for k, v in ((config.get("linux") or {}).get("resources") or {}).items() if k != "devices")
        cgroup_paths = cgroups.delegated(cgroup_paths, limits)  # rootless: only cgroups the user may write
    extra_env: dict[str, str] = {}
    preserve = opts.preserve_fds
    if os.environ.get("LISTEN_FDS", "").isdigit():  # socket activation is passed through as runc does
        preserve += int(os.environ["LISTEN_FDS"])
        extra_env = {"LISTEN_FDS": os.environ["LISTEN_FDS"], "LISTEN_PID": "1"}

    trace.mark("config")
    c = state.create(root, container_id)  # first: a taken ID is "already exists", whatever else is wrong
    try:
        if cgroup_paths and (frozen := cgroups.frozen(cgroup_paths)):  # its init would stop there for good
            raise ConfigError(file, "linux.cgroupsPath", f"container's cgroup unexpectedly frozen ({frozen}): "
                              "thaw it, or use another cgroup")
        # held until the init has joined: creates sharing the cgroup take turns (closed with fds)
        cgroup_lock, existed = cgroups.claim(cgroup_paths) if cgroup_paths else (-1, False)
    except BaseException:
        c.remove()
        raise
    if existed and (owner := state.stopped_owner(root, container_id, cgroup_paths)):
        os.close(cgroup_lock)  # the cgroup stays: it is the other container's (delete removes it)
        c.remove()
        rel = next(p[len(m):] for m, p in cgroup_paths.items())
        raise RuntimeFailure(f"cannot use cgroup {rel} (linux.cgroupsPath): it belongs to container "
                             f"{owner}, which is stopped but not deleted (delete it first)")
    in_use = cgroups.pids(cgroup_paths) if cgroup_paths else []
    if in_use:  # runc 1.1 allows it with a warning; deleting either container must spare the other's processes
        log.warning(f"container's cgroup is not empty: {len(in_use)} process(es) found "
                    f"({next(iter(cgroup_paths.values()))}); they are not this container's and delete leaves them")
        try:
            state.mark_shared(root, container_id, c.dir_fd, cgroup_paths)
        except BaseException:
            os.close(cgroup_lock)
            c.remove()
            raise
    c.bundle, c.annotations, c.config = bundle, config.get("annotations") or {}, _kept_config(config)
    c.cgroup_paths = cgroup_paths
    fds: list[int] = [cgroup_lock] if cgroup_lock >= 0 else []
    try:
        c.save()  # a create killed from here on is cleaned by `delete --force`
        trace.mark("state")
        _checkpoint("create:saved")
        cgroups.create(cgroup_paths)
        c.cgroup_inodes = cgroups.inodes(cgroup_paths)  # saved with the pid
        if cgroup_paths:  # none: rootless without delegation, which delegated() has said
            cgroups.manager(cgroup_paths).apply((config.get("linux") or {}).get("resources") or {}, file,
                                                devices=(config.get("linux") or {}).get("devices"))
        _checkpoint("create:cgroup")
        trace.mark("cgroups")
        listener = _listen(c)
        fds.append(listener)
        stub_fd = sealed_memfd()
        fds.append(stub_fd)
        console_fd = -1
        if process.get("terminal"):
            from . import console

            console_fd = console.connect(opts.console_socket)
            fds.append(console_fd)
        idmap_trees = idmap.prepare_trees(config, bundle, file)
        fds.extend(idmap_trees.values())
        plan = spawn_mod.InitPlan(
            container_id=container_id, config=config, config_file=file, bundle=bundle, rootfs=rootfs,
            namespaces=namespaces, cgroup_paths=cgroup_paths, cap_sets=cap_sets, stub_fd=stub_fd,
            listen_fd=listener, preserve_fds=preserve, no_pivot=opts.no_pivot,
            no_new_keyring=opts.no_new_keyring, console_fd=console_fd, seccomp=seccomp_prog,
            extra_env=extra_env, lock_fd=c.dir_fd, cgroup_lock_fd=cgroup_lock, idmap_trees=idmap_trees,
            host_root=host_root, cgroup_view={} if host_root else cgroups.own_view(cgroup_paths))
        pid = spawn_mod.spawn(plan, _hook_base_state(c))
        c.pid = pid
        stat = state.proc_stat(pid)
        c.start_time = stat[1] if stat else 0
        _checkpoint("create:spawned")
        if net_devices:
            c.save()  # the pid first: a crash after this leaves something `delete --force` can find
            network.move_in(config, pid)
        c.save()
        _checkpoint("create:done")
        if opts.pid_file:
            from .proc import write_pid_file

            try:
                write_pid_file(opts.pid_file, pid)
            except OSError as e:
                raise RuntimeFailure(f"cannot write --pid-file {opts.pid_file}: "
                                     f"{(e.strerror or str(e)).lower()}") from None
        if opts.pidfd_socket:
            from . import pidfd_socket

            pidfd_socket.send(opts.pidfd_socket, pid)
        return c
    except BaseException:
        if net_devices and c.init_alive():  # virtual devices would die with the namespace
            try:
                network.move_out(config, c.pid)
            except RuntimeFailure:
                pass
        try:
            _destroy(c, claimed=cgroup_lock >= 0)
        except RuntimeFailure as cleanup:  # report why create failed; `delete --force` retries this
            log.warning(f"cleaning up after the failed create: {cleanup}")
        raise
    finally:
        for fd in fds:
            os.close(fd)


def _kept_config(config: dict[str, Any]) -> dict[str, Any]:
    """What later commands need from config.json (hooks, process for exec defaults, linux bits)."""
    linux = config.get("linux") or {}
    return {"ociVersion": config.get("ociVersion"), "hooks": config.get("hooks") or {}, "process": config.get("process"),
            "linux": {k: linux[k] for k in ("namespaces", "seccomp", "resources", "cgroupsPath", "netDevices")
                      if k in linux},
            "root": config.get("root")}


def _hook_base_state(c: Container) -> dict[str, Any]:
    st: dict[str, Any] = {"ociVersion": "1.3.0", "id": c.id, "bundle": c.bundle}
    if c.annotations:
        st["annotations"] = c.annotations
    return st


def _listen(c: Container) -> int:
    """The socket `start` connects to; the waiting init accepts on it (no /proc needed in the rootfs)."""
    import _socket as socket  # the C module: socket.py costs ~2.5 ms to import (enums, selectors)

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(f"/proc/self/fd/{c.dir_fd}/{state.START_SOCKET}")
        sock.listen(1)
    except BaseException:
        sock.close()
        raise
    return sock.detach()


def start(c: Container) -> None:
    trace.mark("start")
    status = c.status()
    if status != "created":
        raise RuntimeFailure(f"cannot start a container that is {status} (it must be created)")
    import _socket as socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _checkpoint("start:before-connect")
        sock.connect(f"/proc/self/fd/{c.dir_fd}/{state.START_SOCKET}")
        _checkpoint("start:connected")
        # Once connected, the stub goes on even if we die: the socket must go at once (a container
        # whose start.sock outlives the stub's exec would otherwise read "created").
        try:
            os.unlink(state.START_SOCKET, dir_fd=c.dir_fd)
        except FileNotFoundError:
            pass
        # startContainer hooks run in the stub before it answers, bounded by their own timeouts.
        sock.settimeout(None if (c.config.get("hooks") or {}).get("startContainer") else 30)
        # "s" (then EOF at the program's execve), "s" + "e" + why (the seccomp filter failed to
        # load), or "e" + why. With SCMP_ACT_NOTIFY the listener fd comes with the "s".
        acked = _read_answer(c, sock)
    except OSError as e:
        raise RuntimeFailure(f"cannot start container {c.id}: {e.strerror or e}") from None
    finally:
        sock.close()
    _checkpoint("start:acked")
    if acked.startswith(b"s") and acked[1:2] == b"e":
        acked = acked[1:]
    if acked.startswith(b"e"):
        raise RuntimeFailure(acked[1:].decode(errors="replace"))
    if acked != b"s":
        raise RuntimeFailure(f"container {c.id} init exited before it could start")
    trace.mark("started")
    _run_hooks("poststart", c, dict(_hook_base_state(c), pid=c.pid, status="running"))


def start_by_id(root: str, container_id: str) -> None:
    c = state.load(root, container_id)
    try:
        start(c)
    finally:
        c.close()


def _run_hooks(kind: str, c: Container, st: dict[str, Any]) -> None:
    """poststart/poststop hooks: a failure is a warning (the container already started/is gone)."""
    configured = (c.config.get("hooks") or {}).get(kind)
    if not configured:
        return
    from . import hooks

    try:
        hooks.run_all(kind, configured, st)
    except RuntimeFailure as e:
        log.warning(str(e))


def _read_answer(c: Container, sock: Any) -> bytes:
    """The stub's answer, until EOF. A seccomp listener fd (SCMP_ACT_NOTIFY, filter loaded by the
    stub right before its execve) goes on to listenerPath at once: the program's syscalls may be
    waiting for it. If it cannot, the container cannot run as configured: its init is killed."""
    import _socket as socket

    acked = b""
    while len(acked) < 4096:
        chunk, anc, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(4), socket.MSG_CMSG_CLOEXEC)
        fds = [int.from_bytes(data[i:i + 4], sys.byteorder, signed=True)
               for level, kind, data in anc if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
               for i in range(0, len(data) - len(data) % 4, 4)]
        if fds:
            _forward_listener(c, fds)
        if not chunk:
            break
        acked += chunk
    return acked


def _forward_listener(c: Container, fds: list[int]) -> None:
    from .security import seccomp

    try:
        profile = (c.config.get("linux") or {}).get("seccomp") or {}
        if len(fds) != 1 or not profile.get("listenerPath"):
            raise RuntimeFailure("unexpected seccomp fd from the container")
        prog = seccomp.Program(bpf=b"", flags=0, notify=True, listener_path=profile["listenerPath"],
                               listener_metadata=profile.get("listenerMetadata"))
        seccomp.send_to_listener(prog, fds[0], c.pid, dict(_hook_base_state(c), pid=c.pid, status="created"))
    except BaseException:
        try:
            send_signal(c, _signal.SIGKILL)
        except RuntimeFailure:
            pass
        raise
    finally:
        for fd in fds:
            os.close(fd)


def signal_number(sig: str) -> int:
    """A name (with or without SIG, any case) or a number; 0 checks that the process exists (runc
    and kill(1) accept it: `kill -a ID 0` is how runc's tests probe a container)."""
    s = sig.upper()
    if s.isascii() and s.isdigit():
        n = int(s)
        if not 0 <= n < _signal.NSIG:
            raise RuntimeFailure(f"invalid signal {sig!r}")
        return n
    name = s if s.startswith("SIG") else "SIG" + s
    # signal.Signals' members: the module's SIG* names (SIG_DFL, SIG_BLOCK... are not signals)
    number = getattr(_signal, name, None) if name.isidentifier() and not name.startswith("SIG_") else None
    if not isinstance(number, int):
        raise RuntimeFailure(f"invalid signal {sig!r}")
    return number


def kill(c: Container, sig: int, all_processes: bool = False) -> None:
    status = c.status()
    if status == "stopped" and not all_processes:
        raise RuntimeFailure(f"container {c.id} is not running")
    if all_processes:
        from . import cgroups

        cgroups.kill_all(c.cgroup_paths, sig)
        return
    send_signal(c, sig)


def kill_by_id(root: str, container_id: str, sig: int, all_processes: bool = False) -> None:
    c = state.load(root, container_id, shared=True)
    try:
        kill(c, sig, all_processes)
    finally:
        c.close()


def send_signal(c: Container, sig: int) -> None:
    """Signal the init through a pidfd checked against the recorded start time (no pid-reuse race)."""
    try:
        pidfd = os.pidfd_open(c.pid)
    except ProcessLookupError:
        raise RuntimeFailure(f"container {c.id} is not running") from None
    try:
        if not c.init_alive():
            raise RuntimeFailure(f"container {c.id} is not running")
        _signal.pidfd_send_signal(pidfd, sig)
    finally:
        os.close(pidfd)


def delete(c: Container, force: bool = False) -> None:
    status = c.status() if c.complete else "stopped"
    if status in ("running", "paused") and not force:
        raise RuntimeFailure(f"cannot delete container {c.id} that is not stopped: {status}")
    _checkpoint("delete:loaded")
    if (c.config.get("linux") or {}).get("netDevices") and c.init_alive():
        from . import network

        network.move_out(c.config, c.pid)
    _destroy(c)
    _run_hooks("poststop", c, dict(_hook_base_state(c), pid=0, status="stopped"))


def delete_by_id(root: str, container_id: str, force: bool = False) -> None:
    """`delete [--force] ID`; with force, a container that is already gone is not an error (runc)."""
    from .errors import NotFound

    try:
        c = state.load(root, container_id)
    except NotFound:
        if force:
            return
        raise
    try:
        delete(c, force)
    finally:
        c.close()  # a refused delete leaves it locked no longer


def _destroy(c: Container, claimed: bool = False) -> None:
    """Kill whatever is left of the container, remove its cgroup and its state dir, holding the
    cgroup's claim as create does (cgroups.lock; claimed: the caller, a failing create, holds it):
    a create with the same cgroupsPath never joins a cgroup being emptied, nor gets killed by it."""
    from . import cgroups

    # As they are now: renamed ones found by their recorded inode, others' new ones at our paths not ours
    paths = cgroups.resolve(c.cgroup_paths, c.cgroup_inodes)
    lock = cgroups.lock(paths) if paths and not claimed else -1
    try:
        # The claimed directory is removed last: if it is gone, so is the rest (or it is not ours
        # to touch any more: a new container may have made that path since). A state written
        # before inodes were recorded (and before that order) keeps its paths, as it always did.
        _kill_and_remove(c, paths if claimed or lock >= 0 or not c.cgroup_inodes else {})
        c.remove()  # still under the claim: a create marking this dir shared (state.mark_shared) waits
    finally:
        if lock >= 0:
            os.close(lock)


def _kill_and_remove(c: Container, paths: dict[str, str]) -> None:
    import select

    from . import cgroups

    pidfd = -1
    alive = c.init_alive()
    if alive:
        try:
            pidfd = os.pidfd_open(c.pid)
        except ProcessLookupError:
            alive = False
    own_ns = _own_pid_namespace(c)
    # A cgroup shared with another container (see state.mark_shared): with a pid namespace of its
    # own, killing the namespace kills exactly this container's processes; the cgroup stays if others remain.
    shared = bool(paths) and state.is_shared(c.dir_fd) and own_ns
    mine = {} if shared else paths
    # Processes frozen in someone else's freezer cgroup get SIGKILL only once back in ours (see
    # cgroups/reclaim.py). Cheap first: the init and what the cgroup holds; the whole pid namespace
    # (a /proc scan) only when sharing the cgroup, or when the init outlives the cgroup below.
    victims: set[int] = set()
    if shared and alive:
        victims = _release(c, {}, paths, alive, own_ns)
    elif alive or mine:
        victims = set(cgroups.pids(mine)) if mine else set()
        if alive:
            victims.add(c.pid)
        if victims:
            _release_frozen(c, paths, victims)
    if paths and victims and (held := _frozen_ancestor(paths)):
        if pidfd >= 0:
            os.close(pidfd)
        raise RuntimeFailure(f"cannot kill the processes of container {c.id}: its freezer cgroup is held "
                             f"frozen by {held} (an ancestor, not its own); thaw that and delete again")
    if mine:
        cgroups.kill_all(mine, _signal.SIGKILL)
    _kill_pids(victims)
    try:
        if pidfd >= 0:
            try:
                if c.init_alive():
                    _signal.pidfd_send_signal(pidfd, _signal.SIGKILL)
                # With a cgroup, its emptiness is what counts (cgroups.remove waits for it): an init that
                # is PID 1 of its namespace stays unexited until every process of the namespace is
                # reaped, which for an orphaned `exec` child is up to the host's init (seconds here).
                if not paths or shared:
                    select.select([pidfd], [], [], 10)
            except ProcessLookupError:
                pass
        _checkpoint("delete:killed")
        if shared:
            try:
                cgroups.remove(paths, timeout=1.0)
            except RuntimeFailure:
                log.warning(f"the cgroup of {c.id} still holds other processes (a shared cgroup): left in place")
        elif paths:
            # The claimed directory stays until the very end: a create waiting for it never
            # makes a new one while this delete may still make one of ours again (below).
            try:
                cgroups.remove(paths, timeout=2.0, keep_claimed=True)
            except RuntimeFailure:
                # Something entered after the kill (an orphan of a killed create forking), or a process
                # left some of the hierarchies (moved, maybe frozen elsewhere): every hierarchy this time.
                _kill_pids(_release(c, paths, paths, c.init_alive(), own_ns))
                cgroups.kill_all(paths, _signal.SIGKILL)
                cgroups.remove(paths, keep_claimed=True)
        if pidfd >= 0 and own_ns and not shared and not select.select([pidfd], [], [], 0)[0]:
            # The init is still exiting: it waits for every process of its namespace, one of which
            # may have left all our cgroups and be frozen elsewhere (it would never die). Taking it
            # back may make our freezer cgroup again: removed below with the rest.
            _kill_pids(_release(c, {}, paths, True, own_ns))
        if paths and not shared:
            cgroups.remove(paths)
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    _checkpoint("delete:cgroup-removed")


def _frozen_ancestor(paths: dict[str, str]) -> str | None:
    from .cgroups import reclaim

    return reclaim.frozen_ancestor(paths)


def _release_frozen(c: Container, own: dict[str, str], pids: set[int]) -> None:
    from .cgroups import reclaim

    held = reclaim.release_frozen(own, pids)
    if held:
        log.debug(f"delete {c.id}: moved processes out of frozen cgroups {sorted(set(held))}")


def _release(c: Container, members: dict[str, str], own: dict[str, str], alive: bool, own_ns: bool) -> set[int]:
    """The container's processes (in the cgroups `members`, every hierarchy, and its pid namespace),
    with those frozen in someone else's v1 freezer cgroup moved back into its own (in `own`) so
    that SIGKILL reaches them."""
    from .cgroups import reclaim

    victims = reclaim.members(members, c.pid if alive else 0, own_ns)
    _release_frozen(c, own, victims)
    return victims


def _kill_pids(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, _signal.SIGKILL)
        except ProcessLookupError:
            pass


def _own_pid_namespace(c: Container) -> bool:
    """Whether the container made its own pid namespace (its processes die with its init)."""
    for ns in (c.config.get("linux") or {}).get("namespaces") or []:
        if ns.get("type") == "pid":
            return not ns.get("path")
    return False


"""cgroup placement behind one interface, on unified (v2), hybrid and legacy (v1) hosts.

A container's cgroup is recorded as {hierarchy mount point: absolute cgroup dir} in its state, so
later commands (kill --all, delete, pause, ps) need no detection. Resource limits are written by
the drivers in v1.py and v2.py.
"""

from __future__ import annotations

import errno
import os
import select
import time

from .. import freezer
from ..errors import ConfigError, RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .base import Manager  # imported by v1/v2 when a manager is made: delete never needs it

UNIFIED = "unified"
DEFAULT_PARENT = "/pyruntime"


_HIERARCHIES: dict[str, str] | None = None  # read once per process: create asks twice


def hierarchies() -> dict[str, str]:
    """{controller key: mount point} of the host: 'unified' for cgroup2, else each v1 hierarchy's
    options (e.g. 'memory', 'cpu,cpuacct', 'name=systemd')."""
    global _HIERARCHIES
    if _HIERARCHIES is None:
        _HIERARCHIES = _read_hierarchies()
    return dict(_HIERARCHIES)


def _read_hierarchies() -> dict[str, str]:
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            left, _, right = line.decode().partition(" - ")
            fstype, _source, opts = (right.split() + ["", "", ""])[:3]
            mount_point = left.split()[4]
            if fstype == "cgroup2":
                found.setdefault(UNIFIED, mount_point)
            elif fstype == "cgroup":
                keys = [o for o in opts.split(",") if o not in ("rw", "ro") and not o.startswith(
                    ("nosuid", "nodev", "noexec", "relatime", "clone_children", "xattr", "release_agent"))]
                found.setdefault(",".join(keys), mount_point)
    return found


def mode() -> str:
    """'unified', 'hybrid' or 'legacy'."""
    h = hierarchies()
    if list(h) == [UNIFIED]:
        return "unified"
    return "hybrid" if UNIFIED in h else "legacy"


def cgroup_path(config: dict[str, Any], container_id: str, systemd: bool, file: str) -> str:
    raw = (config.get("linux") or {}).get("cgroupsPath") or ""
    if systemd or (raw.count(":") == 2 and not raw.startswith("/")):
        raise RuntimeFailure("the systemd cgroup driver is not supported (no systemd on this host); "
                             "use a cgroupfs path such as /mygroup/" + container_id)
    if not raw:
        return f"{DEFAULT_PARENT}/{container_id}"
    # A relative path is taken from the hierarchy root, never from the caller's own cgroup: on this
    # kind of host the caller's v1 memory cgroup belongs to the machine's management.
    parts = [p for p in raw.split("/") if p]
    if any(p in (".", "..") for p in parts) or not parts:
        raise ConfigError(file, "linux.cgroupsPath", f"invalid cgroup path {raw!r}")
    return "/" + "/".join(parts)


def plan(config: dict[str, Any], container_id: str, systemd: bool, file: str) -> dict[str, str]:
    """{mount point: cgroup dir} for every hierarchy the container joins."""
    path = cgroup_path(config, container_id, systemd, file)
    return {mp: mp + path for mp in hierarchies().values()}


def delegated(paths: dict[str, str], limits: bool = True) -> dict[str, str]:
    """For a rootless caller: the hierarchies where it may create the cgroup (a delegated subtree).
    The others are skipped, with a warning only when the config asks for limits (runc is silent
    otherwise)."""
    from .. import log

    usable = {}
    for mount_point, path in paths.items():
        existing = path
        while not os.path.isdir(existing) and existing != mount_point:
            existing = os.path.dirname(existing)
        if os.access(existing, os.W_OK) and existing != mount_point:
            usable[mount_point] = path
    if limits and len(usable) < len(paths):
        log.warning("rootless: cgroups not delegated to this user are skipped: "
                    + ", ".join(sorted(set(paths) - set(usable))))
    return usable


def own_view(paths: dict[str, str]) -> dict[str, str]:
    """For the `cgroup` mount of a rootless container on a v1/hybrid host: each v1 hierarchy where it
    has no cgroup of its own (not delegated) shows the caller's cgroup, which the init stays in, as
    runc binds it (read-only by the mount's options; nothing is created)."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, keys, path = line.rstrip("\n").split(":", 2)
            own[keys] = path
    return {mp: mp + own[key].rstrip("/") for key, mp in hierarchies().items()
            if key != UNIFIED and mp not in paths and key in own}


def create(paths: dict[str, str]) -> None:
    unified_host = list(paths) == [m for m in paths if os.path.exists(f"{m}/cgroup.controllers")]
    for mount_point, path in paths.items():
        _mkdir_p(mount_point, path, unified_host)


CLAIM_WAIT = 60.0  # seconds a create or delete waits for another one holding a cgroup's claim


def claim(paths: dict[str, str], timeout: float = CLAIM_WAIT) -> tuple[int, bool]:
    """Make the cgroup in one fixed hierarchy and flock it exclusively; returns the fd and whether
    the directory was there already (someone else's, or a container's not yet deleted). Creates that
    share a cgroupsPath hold it from their in-use check until their init has joined, so two of them
    can never both find it empty; delete holds it too (lock()), so a create never interleaves with it."""
    path = _tracking_order(paths)[0]
    mount_point = next(m for m, p in paths.items() if p == path)
    unified_host = list(paths) == [m for m in paths if os.path.exists(f"{m}/cgroup.controllers")]
    for _attempt in range(20):
        existed = os.path.isdir(path)
        _mkdir_p(mount_point, path, unified_host)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as e:  # e.g. out of fds
            raise RuntimeFailure(f"cannot open cgroup {path}: {e.strerror.lower()}") from None
        if _locked_and_current(fd, path, timeout):
            return fd, existed
    raise RuntimeFailure(f"cannot create cgroup {path}: it keeps disappearing")


def lock(paths: dict[str, str], timeout: float = CLAIM_WAIT) -> int:
    """delete's side of claim(): flock the container's cgroup in claim's hierarchy, without making
    it; -1 if it is gone (remove() takes that one last, so then there is nothing left to remove)."""
    path = _tracking_order(paths)[0]
    for _attempt in range(20):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return -1
        except OSError as e:
            raise RuntimeFailure(f"cannot open cgroup {path}: {e.strerror.lower()}") from None
        if _locked_and_current(fd, path, timeout):
            return fd
    return -1


def _locked_and_current(fd: int, path: str, timeout: float) -> bool:
    """flock fd (bounded); True if path still is that directory (else fd is closed: it was removed
    and maybe made again while we waited)."""
    try:
        _flock_bounded(fd, timeout, path)
        st, mine = os.stat(path), os.fstat(fd)
        if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            return True
    except FileNotFoundError:
        pass
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return False


class _Expired(Exception):
    pass


def _expire(_signum: int, _frame: Any) -> None:
    raise _Expired


def _flock_bounded(fd: int, timeout: float, path: str) -> None:
    """flock(LOCK_EX), given up after timeout seconds. From the command line: a blocking flock
    interrupted by a timer (the waiter is woken at once when the holder lets go, and shows in
    /proc/locks). Where SIGALRM is not ours to use (the Python API in a thread, or a program with
    its own timer): LOCK_NB retried."""
    import _signal
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    busy = RuntimeFailure(f"cgroup {path} is held by another create or delete of a container "
                          f"with this cgroupsPath (waited {timeout:g}s)")
    old = None
    if _signal.getsignal(_signal.SIGALRM) == _signal.SIG_DFL and _signal.getitimer(_signal.ITIMER_REAL) == (0.0, 0.0):
        try:
            old = _signal.signal(_signal.SIGALRM, _expire)
        except ValueError:  # not the main thread
            old = None
    if old is None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise busy from None
                time.sleep(0.01)
    _signal.setitimer(_signal.ITIMER_REAL, timeout)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except _Expired:
        raise busy from None
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        _signal.signal(_signal.SIGALRM, old)


def frozen(paths: dict[str, str]) -> str | None:
    """The cgroup (or the nearest existing ancestor of one not made yet) whose freezer holds it
    frozen: a process joining it would stop at once, so create must refuse it (as runc does)."""
    for mount_point, path in paths.items():
        d = path
        while not os.path.isdir(d) and d != mount_point:
            d = os.path.dirname(d)
        if d == mount_point:
            continue  # a hierarchy's root cannot be frozen
        try:
            if os.path.exists(f"{d}/freezer.state"):
                with open(f"{d}/freezer.state") as f:
                    if f.read().strip() in ("FROZEN", "FREEZING"):
                        return d
            elif os.path.exists(f"{d}/cgroup.events"):
                with open(f"{d}/cgroup.events") as f:
                    if "frozen 1" in f.read().splitlines():
                        return d
                with open(f"{d}/cgroup.freeze") as f:
                    if f.read().strip() == "1":
                        return d
        except FileNotFoundError:
            continue
    return None


class FrozenWhileWaiting(RuntimeFailure):
    """The cgroup got frozen while a process being set up in it was awaited."""


def recv_unless_frozen(chan: Any, paths: dict[str, str]) -> Any:
    """chan.recv() from a process setting up in the cgroup, giving up if the cgroup gets frozen
    meanwhile (by a freezer write of someone else's): it would wait there for good, and so would we."""
    p = select.poll()
    p.register(chan.fileno(), select.POLLIN)
    while not p.poll(1000):
        if paths and (where := frozen(paths)):
            raise FrozenWhileWaiting(f"container's cgroup unexpectedly frozen ({where}) during the setup")
    return chan.recv()


def reap_or_leave(pid: int, frozen_child: bool) -> None:
    """waitpid, except for a child stuck in a frozen v1 cgroup (SIGKILL waits for the thaw there):
    it is killed and left to be reaped by whoever inherits it."""
    if not frozen_child:
        os.waitpid(pid, 0)
        return
    try:
        os.kill(pid, 9)
        os.waitpid(pid, os.WNOHANG)
    except (ProcessLookupError, ChildProcessError):
        pass


def manager(paths: dict[str, str]) -> Manager:
    """The resource driver for a container's recorded cgroup paths: v2 when only cgroup2 is there."""
    if paths and all(os.path.exists(f"{m}/cgroup.controllers") for m in paths):
        from .v2 import V2Manager

        return V2Manager(paths, next(iter(paths.values())))
    from .v1 import V1Manager

    controllers: dict[str, str] = {}
    for key, mount_point in hierarchies().items():
        if mount_point in paths and key != UNIFIED:
            for name in key.split(","):
                controllers.setdefault(name, paths[mount_point])
    return V1Manager(paths, controllers)


def _mkdir_p(mount_point: str, path: str, unified_host: bool = False) -> None:
    for _attempt in range(5):
        try:
            return _mkdir_chain(mount_point, path, unified_host)
        except FileNotFoundError:
            continue  # a parent was removed meanwhile (the last container under /pyruntime left): again
    raise RuntimeFailure(f"cannot create cgroup {path}: its parent keeps disappearing")


def _mkdir_chain(mount_point: str, path: str, unified_host: bool) -> None:
    rel = path[len(mount_point):].strip("/").split("/")
    cur = mount_point
    # v1 cpuset: a group starts with empty cpus/mems and cannot be joined until they are set
    v1_cpuset = os.path.exists(f"{mount_point}/cpuset.cpus") and not os.path.exists(f"{mount_point}/cgroup.controllers")
    for part in rel:
        parent, cur = cur, f"{cur}/{part}"
        if unified_host:
            _enable_controllers(parent)
        try:
            os.mkdir(cur, 0o755)
        except FileExistsError:
            pass
        except FileNotFoundError:
            raise
        except OSError as e:
            raise RuntimeFailure(f"cannot create cgroup {cur}: {e.strerror.lower()}") from None
        if v1_cpuset:  # ours or not (e.g. a pod cgroup made by someone else): fill what is empty, as runc
            _inherit_cpuset(parent, cur)


def _inherit_cpuset(parent: str, cur: str) -> None:
    for name in ("cpuset.cpus", "cpuset.mems"):
        with open(f"{cur}/{name}") as f:
            if f.read().strip():
                continue
        with open(f"{parent}/{name}") as src:
            value = src.read().strip()
        try:
            with open(f"{cur}/{name}", "w") as dst:
                dst.write(value)
        except OSError as e:
            raise RuntimeFailure(f"cannot initialise {cur}/{name} from its parent ({value!r}): "
                                 f"{(e.strerror or str(e)).lower()}") from None


def _enable_controllers(parent: str) -> None:
    """cgroup v2: a child only gets the controllers its parent delegates (cgroup.subtree_control)."""
    try:
        with open(f"{parent}/cgroup.controllers") as f:
            available = f.read().split()
        with open(f"{parent}/cgroup.subtree_control") as f:
            enabled = set(f.read().split())
    except OSError:
        return
    missing = [c for c in available if c not in enabled]
    if not missing:
        return
    try:
        with open(f"{parent}/cgroup.subtree_control", "w") as f:
            f.write(" ".join("+" + c for c in missing))
    except OSError:
        # one by one, so a controller the kernel refuses here (e.g. busy) does not block the rest
        for c in missing:
            try:
                with open(f"{parent}/cgroup.subtree_control", "w") as f:
                    f.write("+" + c)
            except OSError:
                pass


def inodes(paths: dict[str, str]) -> dict[str, int]:
    """{mount point: inode} of the container's cgroups, recorded so that delete knows them again
    after a rename (v1 allows one within the parent) and never takes a new cgroup made at the same
    path for its own."""
    found = {}
    for mount_point, path in paths.items():
        try:
            found[mount_point] = os.stat(path).st_ino
        except OSError:
            continue
    return found


def resolve(paths: dict[str, str], recorded: dict[str, int]) -> dict[str, str]:
    """The container's cgroups as they are now: a recorded inode found at its path, or renamed
    beside it; a hierarchy whose cgroup is gone (or replaced by another) is left out. Without
    recorded inodes (an older state), the paths as recorded."""
    if not recorded:
        return paths
    found = {}
    for mount_point, path in paths.items():
        ino = recorded.get(mount_point)
        if ino is None:
            found[mount_point] = path
            continue
        try:
            if os.stat(path).st_ino == ino:
                found[mount_point] = path
                continue
        except OSError:
            pass
        parent = os.path.dirname(path)
        try:
            with os.scandir(parent) as entries:
                for e in entries:
                    if e.is_dir(follow_symlinks=False) and e.inode() == ino:
                        found[mount_point] = e.path
                        break
        except OSError:
            continue
    return found


def join(paths: dict[str, str], pid: int = 0) -> None:
    """Move pid (0: the caller) into every hierarchy's cgroup."""
    data = str(pid).encode()
    for path in paths.values():
        try:
            fd = os.open(f"{path}/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as e:
            raise RuntimeFailure(f"cannot join cgroup {path}: adding pid {pid or os.getpid()} to "
                                 f"{path}/cgroup.procs: {(e.strerror or str(e)).lower()}") from None


def v2_path(paths: dict[str, str]) -> str | None:
    """The container's cgroup in the cgroup2 hierarchy (the unified one of a hybrid host), if any."""
    return next((p for m, p in paths.items() if os.path.exists(f"{m}/cgroup.controllers")), None)


def fork_into(paths: dict[str, str]) -> tuple[int, str | None]:
    """os.fork(), with the child born in the container's cgroup2 directory where the kernel allows
    it (clone3 CLONE_INTO_CGROUP): (pid, that directory or None). See join_forked for why."""
    target = v2_path(paths)
    if target is not None:
        from .. import native

        try:
            fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                return native.fork_into_cgroup(fd), target
            except OSError:
                pass  # e.g. an old kernel, or a cgroup that delegates controllers (EBUSY)
            finally:
                os.close(fd)  # in the parent and in the child
    return os.fork(), None


def join_forked(paths: dict[str, str], born_in: str | None = None) -> None:
    """join() for a process just forked (so with one thread), skipping the cgroup it was born in.

    Writing a pid to cgroup.procs takes cgroup_threadgroup_rwsem for writing, and the first writer
    waits for an RCU grace period (5-20 ms on this kind of host, on every create). Moving only the
    calling thread ("0" to a v1 `tasks` file) takes no such lock (measured here: 0.07 ms against
    5-15 ms; a kernel that still locks costs what cgroup.procs did), and for a single-threaded
    process moves the whole process. cgroup2 has no equivalent
    (cgroup.threads cannot leave a domain): there, fork_into's clone3 places the child instead.
    """
    for mount_point, path in paths.items():
        if path == born_in:
            continue
        if not os.path.exists(f"{mount_point}/cgroup.controllers"):
            try:
                fd = os.open(f"{path}/tasks", os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, b"0")
                    continue
                finally:
                    os.close(fd)
            except OSError:
                pass  # (e.g. a delegation that left `tasks` to root): cgroup.procs says why
        join({mount_point: path})


def pids(paths: dict[str, str]) -> list[int]:
    """Every process in the container's cgroup and the sub-cgroups it made (read from one hierarchy
    that tracks all of them)."""
    for path in _tracking_order(paths):
        if not os.path.isdir(path):
            continue
        found: list[int] = []
        for d in _subtree(path):
            try:
                with open(f"{d}/cgroup.procs", "rb") as f:
                    found += [int(x) for x in f.read().split()]
            except FileNotFoundError:
                continue
        return found
    return []


def _subtree(path: str) -> list[str]:
    """path and every cgroup below it, deepest first (a container may make its own, e.g. systemd)."""
    return [d for d, _dirs, _files in os.walk(path, topdown=False)] or [path]


def _tracking_order(paths: dict[str, str]) -> list[str]:
    return sorted(paths.values(), key=lambda p: (0 if "/pids" in p or "/unified" in p else 1, p))


def kill_all(paths: dict[str, str], sig: int) -> None:
    """Signal every process in the cgroup; SIGKILL goes through cgroup.kill where the kernel has it.
    A frozen (paused) container is thawed after a SIGKILL: frozen tasks do not die until thawed."""
    from _signal import SIGKILL  # the C module: signal.py imports enum (~4 ms)

    frozen = freezer.is_paused(paths, freezing=True)  # FREEZING too: a task that resists the freeze keeps it so
    if not (sig == SIGKILL and _cgroup_kill(paths)):
        for pid in pids(paths):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    if frozen and sig == SIGKILL:
        set_frozen(paths, False)


def _cgroup_kill(paths: dict[str, str]) -> bool:
    for path in paths.values():
        try:
            with open(f"{path}/cgroup.kill", "w") as f:
                f.write("1")
            return True
        except (FileNotFoundError, PermissionError):
            continue
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
    return False


def remove(paths: dict[str, str], timeout: float = 5.0, keep_claimed: bool = False) -> None:
    """rmdir every hierarchy's cgroup, waiting briefly for exiting processes to leave. The one
    create's claim and delete's lock() are taken on goes last (keep_claimed: not yet)."""
    deadline = time.monotonic() + timeout
    claimed = _tracking_order(paths)[0]
    tops = [p for p in paths.values() if p != claimed] + ([] if keep_claimed else [claimed])
    for path in [d for top in tops for d in _subtree(top)]:
        while True:
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise RuntimeFailure(f"cannot remove cgroup {path}: {e.strerror.lower()}") from None
                _wait_empty(path)
    for mount_point, top in paths.items():  # the default parent is ours: gone with its last container
        parent = os.path.dirname(top)
        if parent == mount_point + DEFAULT_PARENT:
            try:
                os.rmdir(parent)
            except OSError:
                pass  # other containers still live there


def _wait_empty(path: str) -> None:
    """Wait (with poll, not a sleep loop, where cgroup.events exists) until the cgroup is empty."""
    try:
        fd = os.open(f"{path}/cgroup.events", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        _wait_pids_exit(path)
        return
    try:
        if b"populated 1" in os.pread(fd, 4096, 0):
            p = select.poll()
            p.register(fd, select.POLLPRI)
            p.poll(100)
    finally:
        os.close(fd)


def _wait_pids_exit(path: str, timeout: float = 0.1) -> None:
    """v1 (no cgroup.events): poll the pidfds of the cgroup's processes until they have all exited."""
    try:
        with open(f"{path}/cgroup.procs", "rb") as f:
            pids = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return
    fds = set()
    for pid in pids:
        try:
            fds.add(os.pidfd_open(pid))
        except OSError:
            continue  # already gone
    if not fds:  # exited but not yet detached from the cgroup: the kernel needs a moment
        time.sleep(0.001)
        return
    p = select.poll()
    for fd in fds:
        p.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    try:
        while fds and time.monotonic() < deadline:
            for fd, _ in p.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                p.unregister(fd)
                fds.discard(fd)
                os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)


def set_frozen(paths: dict[str, str], frozen: bool, timeout: float = 10.0) -> None:
    fz = freezer.locate(paths)
    if fz is None:
        raise RuntimeFailure("no freezer available for this container's cgroup")
    kind, path = fz
    deadline = time.monotonic() + timeout
    if kind == "v1":
        want = "FROZEN" if frozen else "THAWED"
        while True:
            with open(f"{path}/freezer.state", "w") as f:
                f.write(want)
            with open(f"{path}/freezer.state") as f:
                if f.read().strip() == want:
                    return
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"timed out waiting for {path} to become {want}")
            time.sleep(0.001)
    with open(f"{path}/cgroup.freeze", "w") as f:
        f.write("1" if frozen else "0")
    fd = os.open(f"{path}/cgroup.events", os.O_RDONLY | os.O_CLOEXEC)
    try:
        p = select.poll()
        p.register(fd, select.POLLPRI)
        want_line = b"frozen 1" if frozen else b"frozen 0"
        while want_line not in os.pread(fd, 4096, 0):
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"timed out waiting for {path} to freeze")
            p.poll(100)
    finally:
        os.close(fd)

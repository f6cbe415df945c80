"""Per-container state under --root: <root>/<id>/state.json, a flock on the directory, atomic writes.

A container's status is derived, never stored: the init's pid plus its start time (so a recycled
pid is not mistaken for it), whether it still waits for `start` (start.sock exists), and the
freezer. A container without an init pid (state.json missing, unreadable, or pid 0) is half-made:
it reads "creating" while a `create` still holds its lock, and "stopped" once that runtime has gone
(killed, crashed); `delete` (with or without --force) then cleans it: the cgroup recorded before
anything was forked holds whatever the dead runtime left running.
"""

from __future__ import annotations

import fcntl
import os
import time

from . import SPEC_VERSION, fastjson
from .errors import AlreadyExists, NotFound, RuntimeFailure, os_failure
from .record import dataclass, field  # dataclasses without its start-up cost (see record.py)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+.-")
STATE_FILE = "state.json"
START_SOCKET = "start.sock"
# Compiled seccomp filters kept in the root (security/seccomp_cache.py): not a valid ID, so no
# command takes it for a container, and it goes with the root.
SECCOMP_CACHE = ".seccomp-cache~"
STUB_EXE = "/memfd:pyruntime-init"  # /proc/<pid>/exe of the init stub (process/stub.py names the memfd)


def valid_id(name: str) -> bool:
    """1-255 of A-Z a-z 0-9 _ + . - (a set test, not a regex: `re` costs ~4 ms to import)."""
    return 0 < len(name) <= 255 and _ID_CHARS.issuperset(name) and name not in (".", "..")


def check_id(container_id: str) -> None:
    if not valid_id(container_id):
        raise RuntimeFailure(f"invalid container ID {container_id!r}: use 1-255 of A-Z a-z 0-9 _ + . -")


def default_root() -> str:
    """/run/pyruntime for the host's root; $XDG_RUNTIME_DIR/pyruntime for anyone else, as runc
    chooses: an unprivileged user, or a uid 0 that is root only inside a user namespace (rootless
    podman runs the runtime so: /run is not its to write). A real root's $XDG_RUNTIME_DIR
    (/run/user/0) is ignored, and so is the one of a namespaced uid 0 whose $USER is root."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if os.geteuid() == 0 and (not xdg or not in_user_namespace() or os.environ.get("USER") == "root"):
        return "/run/pyruntime"
    if xdg:
        return os.path.join(xdg, "pyruntime")
    return f"/tmp/pyruntime-{os.geteuid()}"


def host_root() -> bool:
    """Whether we have the host's root: euid 0 in the initial user namespace. Anyone else (an
    unprivileged user, or the namespaced uid 0 rootless podman runs the runtime as) is rootless:
    cgroups it cannot write are skipped and device nodes are bind-mounted, as runc decides."""
    return os.geteuid() == 0 and not in_user_namespace()


def in_user_namespace() -> bool:
    """Whether we run in a user namespace other than the initial one: its uid_map is not the
    identity map of every uid ("0 0 4294967295"), as runc's userns.RunningInUserNS decides."""
    try:
        with open("/proc/self/uid_map", "rb") as f:
            fields = f.read().split()
    except OSError:
        return False
    return fields != [b"0", b"0", b"4294967295"]


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


@dataclass
class Container:
    """What is recorded about one container (state.json) plus the open, locked state directory."""

    id: str
    root: str
    bundle: str = ""
    pid: int = 0
    start_time: int = 0
    created: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    cgroup_paths: dict[str, str] = field(default_factory=dict)
    cgroup_inodes: dict[str, int] = field(default_factory=dict)  # {mount point: inode}: a renamed one is found
    config: dict[str, Any] = field(default_factory=dict)
    owner: str = "root"
    dir_fd: int = -1
    complete: bool = True  # False: state.json missing or unreadable (a create that was killed)
    locked: bool = False  # this process holds the state dir's lock

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.id)

    # -- status ---------------------------------------------------------------------------------
    def init_alive(self) -> bool:
        if self.pid <= 0:
            return False
        st = proc_stat(self.pid)
        return st is not None and st[1] == self.start_time and st[0] not in ("Z", "X")

    def status(self) -> str:
        if self.pid <= 0 and not self.locked and self.dir_fd >= 0 and _lock_busy(self.dir_fd):
            return "creating"  # a create (or a delete) is working on it right now
        if not self.init_alive():
            return "stopped"
        if os.path.exists(os.path.join(self.path, START_SOCKET)) and self._init_is_stub():
            return "created"
        from .freezer import is_paused  # cheap: reads one freezer file

        if self.cgroup_paths and is_paused(self.cgroup_paths):
            return "paused"
        return "running"

    def _init_is_stub(self) -> bool:
        """Whether the init still is the stub waiting for `start` (a `start` killed right after the
        stub accepted leaves start.sock behind while the user's program already runs)."""
        try:
            return os.readlink(f"/proc/{self.pid}/exe").startswith(STUB_EXE)
        except OSError:
            return True  # cannot tell (not permitted): start.sock is the answer

    def oci_state(self) -> dict[str, Any]:
        status = self.status()
        state: dict[str, Any] = {"ociVersion": SPEC_VERSION, "id": self.id, "status": status,
                                 "pid": self.pid if status != "stopped" else 0, "bundle": self.bundle}
        if self.annotations:
            state["annotations"] = self.annotations
        return state

    # -- persistence ----------------------------------------------------------------------------
    def save(self) -> None:
        data = {"id": self.id, "bundle": self.bundle, "pid": self.pid, "start_time": self.start_time,
                "created": self.created, "annotations": self.annotations, "owner": self.owner,
                "cgroup_paths": self.cgroup_paths, "cgroup_inodes": self.cgroup_inodes, "config": self.config}
        tmp = f".{STATE_FILE}.tmp"
        view = memoryview(fastjson.dumps(data, compact=True).encode())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600, dir_fd=self.dir_fd)
            try:
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.rename(tmp, STATE_FILE, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except OSError as e:  # e.g. ENOSPC: the old state.json (if any) stays whole
            raise RuntimeFailure(f"cannot save the state of {self.id!r}: {(e.strerror or str(e)).lower()}") from None

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def remove(self) -> None:
        """Remove the state directory (its lock goes with the last fd)."""
        for _attempt in range(3):  # a create sharing the cgroup may add its mark meanwhile (mark_shared)
            for name in os.listdir(self.dir_fd):
                try:
                    os.unlink(name, dir_fd=self.dir_fd)
                except (IsADirectoryError, FileNotFoundError):
                    pass
            try:
                os.rmdir(self.path)
            except FileNotFoundError:
                pass
            except OSError as e:
                import errno  # here: `state` and `list` keep to their import budget

                if e.errno == errno.ENOTEMPTY:
                    continue
                raise
            break
        self.close()


def _lock_busy(dir_fd: int) -> bool:
    """Whether another process holds the lock (a fresh open file description: flock is per OFD)."""
    try:
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _ensure_root(root: str) -> None:
    try:
        os.makedirs(root, mode=0o711, exist_ok=True)
    except OSError as e:
        raise os_failure("cannot create the state root", e) from None


def create(root: str, container_id: str) -> Container:
    """Make and lock the state dir of a new container; a taken ID fails with "already exists"."""
    check_id(container_id)
    _ensure_root(root)
    path = os.path.join(root, container_id)
    for _ in range(3):
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise AlreadyExists(container_id) from None
        except OSError as e:  # e.g. a root that is not ours to write (try --root)
            raise os_failure("cannot create the state directory", e) from None
        # Until the lock is ours, a `delete` of this ID may take the new, empty directory for one a
        # killed create left, and remove it: then the ID is free again, and this create starts over.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:
            break
        os.close(fd)
    else:
        raise RuntimeFailure(f"cannot create the state directory {path}: removed by concurrent deletes")
    owner = "root" if os.geteuid() == 0 else str(os.geteuid())
    created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"
    return Container(id=container_id, root=root, dir_fd=fd, created=created, owner=owner, locked=True)


def load(root: str, container_id: str, lock: bool = True, shared: bool = False) -> Container:
    """Open a container's state; lock it (exclusively unless shared) for the rest of the command."""
    check_id(container_id)
    path = os.path.join(root, container_id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(container_id) from None
    except OSError as e:
        raise os_failure(f"cannot open the state of {container_id!r}", e) from None
    if lock:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink == 0:  # deleted while we waited for the lock
            os.close(fd)
            raise NotFound(container_id)
    c = _read(root, container_id, fd, lock)
    if not c.complete and os.fstat(fd).st_nlink == 0:  # unlocked reader racing a delete: it is gone
        c.close()
        raise NotFound(container_id)
    return c


def _read(root: str, container_id: str, fd: int, locked: bool = False) -> Container:
    c = Container(id=container_id, root=root, dir_fd=fd, locked=locked)
    try:
        sfd = os.open(STATE_FILE, os.O_RDONLY | os.O_CLOEXEC, dir_fd=fd)
        with open(sfd, "rb") as f:
            data = fastjson.loads(f.read())
        c.bundle, c.pid, c.start_time = data["bundle"], data["pid"], data["start_time"]
        c.created, c.annotations = data["created"], data.get("annotations") or {}
        c.cgroup_paths, c.config = data.get("cgroup_paths") or {}, data.get("config") or {}
        c.cgroup_inodes = data.get("cgroup_inodes") or {}
        c.owner = data.get("owner", "root")
    except (OSError, ValueError, KeyError, TypeError):
        c.complete = False
    return c


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root) if valid_id(n))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise os_failure("cannot read the state root", e) from None


SHARED_MARK = "cgroup-shared"  # a file in the state dir of each container known to share its cgroup


def mark_shared(root: str, container_id: str, dir_fd: int, paths: dict[str, str]) -> None:
    """The container joins a cgroup that already holds processes (runc 1.1 allows this with a
    warning): mark it, and the containers of the same --root that use that cgroup, so that deleting
    one of them kills only its own processes and leaves the cgroup to the others."""
    os.close(os.open(SHARED_MARK, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=dir_fd))
    for other in list_ids(root):
        if other == container_id:
            continue
        try:
            with open(os.path.join(root, other, STATE_FILE), "rb") as f:
                if fastjson.loads(f.read()).get("cgroup_paths") != paths:
                    continue
            _mark_other(os.path.join(root, other))
        except (OSError, ValueError, AttributeError):
            continue  # gone meanwhile, or not a state we can read


def _mark_other(path: str) -> None:
    """Under a shared lock of its state dir where we can get it, never blocking: a delete of that
    container may hold its lock while it waits for the cgroup claim we hold (delete removes the
    state dir under the claim too, so it never finds a new file there)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        for _attempt in range(10):
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.01)  # a short command (update, pause) holds it, or a delete waiting for us
        if os.fstat(fd).st_nlink:
            os.close(os.open(SHARED_MARK, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=fd))
    finally:
        os.close(fd)


def stopped_owner(root: str, container_id: str, paths: dict[str, str]) -> str | None:
    """A container of this --root that records the same cgroup and is stopped but not deleted: its
    cgroup is not free (its delete would empty and remove it under a new container). Running ones
    may share it (runc 1.1 warns, see mark_shared)."""
    for other in list_ids(root):
        if other == container_id:
            continue
        try:
            c = load(root, other, lock=False)
        except (RuntimeFailure, OSError):
            continue  # gone meanwhile
        try:
            if c.cgroup_paths == paths and c.status() == "stopped":
                return other
        finally:
            c.close()
    return None


def is_shared(dir_fd: int) -> bool:
    try:
        os.stat(SHARED_MARK, dir_fd=dir_fd)
        return True
    except OSError:
        return False

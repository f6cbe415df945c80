"""pyruntime as a library: create, start, exec, signal, inspect and delete OCI containers from Python.

    from pyruntime import api

    rt = api.Runtime("/run/my-tests")                    # a state root (--root), created on demand
    config = api.Config(rootfs="/srv/busybox").args("sh", "-c", "echo hi; sleep 60")
    with rt.container("web", config, stdout=api.PIPE) as c:  # created now, force-deleted on the way out
        c.start()
        out, err = c.exec(["cat", "/etc/hostname"]).communicate(timeout=10)
        c.kill("TERM")
        assert c.wait(timeout=10) == 143

Every operation runs the code the command line runs (container.create/start/kill/delete, exec_,
cgroup_commands, listing): same validation, same state directory, same errors. A container made here
is visible to `pyruntime --root ROOT list` and the other way round.

Errors are the runtime's own exceptions (pyruntime.errors), never subprocess errors:
ConfigError (.file, .path: the JSON path, .cause), NotFound, AlreadyExists, and RuntimeFailure for the
rest (its message is the line the command line would print); WaitTimeout when a wait runs out.

Process model (read this before using it in a long-lived program):

- The container's init and exec'd processes are forked by the runtime's intermediate processes,
  which exit; the kernel then hands an orphan to the nearest child-subreaper ancestor. So that `wait`
  can collect their exit status (a process that is not the parent cannot), the caller is a child
  subreaper (prctl PR_SET_CHILD_SUBREAPER) while a create or an exec runs, and only then: from the
  helper's fork until it has exited (by then the intermediate has exited and the process is ours);
  then its previous setting is restored. So processes that other code of the caller starts (say,
  `pyruntime` command lines run by a test) are never reparented to it. Side effect: a descendant of
  the caller orphaned during those milliseconds would be too, and stay a zombie until reaped.
- create and exec run in a short-lived forked helper (os.fork of the caller, then the same core
  code as the command line, then os._exit): the container's stdio is set up on the helper's fds
  0-2 (the caller's own stdio is never touched), and anything the core does to its process
  (signal dispositions, sealing, fd juggling) stays in the helper. Fork from a program with threads
  is as safe as fork ever is there: the helper only runs single-threaded Python code and never
  returns into the caller's code, but a lock held by another thread at the fork stays held in the
  helper (logging's, an import lock): call create/exec from programs without threads, or from the
  main thread before starting any (pytest runs tests without threads).
- A container whose processes could reach the runtime's code (CAP_SYS_PTRACE in its bounding set,
  no user namespace: see pyruntime/security/sealed.py) needs the runtime re-executed from read-only
  mounts, which only the command line can do: the API refuses such a create/exec with a clear error.
- SIGINT, SIGTERM, SIGHUP and SIGQUIT are blocked while a create (and its bookkeeping) or the cleanup
  of a `with` block runs, so a Ctrl-C cannot leave a half-made container behind: it is delivered
  right after.
- An exit status is the code, or 128+N for a process killed by signal N (as `pyruntime run` exits).
  For a container this process did not create (Runtime.container(id) of an existing one) the exit
  status cannot be known (it is not our child): wait() returns None once the init is gone.
"""

from __future__ import annotations

import builtins
import os
import select
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any

from . import container as _container
from . import spec as _spec
from . import state as _state
from .errors import AlreadyExists, ConfigError, NotFound, RuntimeFailure

__all__ = ["PIPE", "DEVNULL", "Runtime", "Container", "Process", "Console", "Config", "Result",
           "RuntimeFailure", "ConfigError", "NotFound", "AlreadyExists", "WaitTimeout"]

PIPE = -1  # a pipe to or from the caller (as subprocess.PIPE)
DEVNULL = -3  # /dev/null (as subprocess.DEVNULL)
_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}

Stdio = int | str | os.PathLike | IO[Any] | None


class WaitTimeout(RuntimeFailure, TimeoutError):
    """A wait ran out of time: the process still runs (nothing was killed)."""


# -- configuration ------------------------------------------------------------------------------------
class Config:
    """A config.json under construction: `spec.default_spec()` (what `pyruntime spec` writes) with
    typed edits for the common cases. Each edit returns the Config, so they chain; `data` is the
    plain dict for anything else. Validated when a container is created from it (ConfigError names
    the JSON path)."""

    def __init__(self, data: dict[str, Any] | None = None, *, rootfs: str | os.PathLike | None = None,
                 rootless: bool = False) -> None:
        self.data: dict[str, Any] = data if data is not None else _spec.default_spec(rootless)
        if data is None:
            self.data["process"]["terminal"] = False  # a library call has no terminal to give
        if rootfs is not None:
            self.data.setdefault("root", {})["path"] = os.path.abspath(rootfs)

    def copy(self) -> Config:
        """An independent copy (deep): edits to it leave this one unchanged, so one Config can be
        the template of many containers."""
        import copy

        return Config(copy.deepcopy(self.data))

    @classmethod
    def load(cls, bundle: str | os.PathLike) -> Config:
        """The config.json of a bundle (its root.path made absolute, so it can be written elsewhere)."""
        data = _spec.load_json(os.path.join(os.fspath(bundle), "config.json"))
        root = data.get("root") or {}
        if root.get("path"):
            root["path"] = os.path.join(os.path.abspath(bundle), root["path"])
        return cls(data)

    # process
    @property
    def process(self) -> dict[str, Any]:
        return self.data.setdefault("process", {})

    def args(self, *args: str) -> Config:
        self.process["args"] = [str(a) for a in args]
        return self

    def env(self, **variables: str) -> Config:
        """Set (or replace) environment variables of the process."""
        env = [e for e in self.process.get("env") or [] if e.partition("=")[0] not in variables]
        self.process["env"] = env + [f"{k}={v}" for k, v in variables.items()]
        return self

    def cwd(self, path: str) -> Config:
        self.process["cwd"] = path
        return self

    def user(self, uid: int, gid: int = 0, additional_gids: Sequence[int] = ()) -> Config:
        self.process["user"] = {"uid": uid, "gid": gid, **({"additionalGids": list(additional_gids)}
                                                         if additional_gids else {})}
        return self

    def terminal(self, on: bool = True) -> Config:
        """process.terminal: the container gets a pty; create it with console=True to receive it."""
        self.process["terminal"] = on
        return self

    def capabilities(self, *caps: str, sets: Sequence[str] = ("bounding", "effective", "permitted")) -> Config:
        """Replace the capability sets named in `sets` (names with or without CAP_)."""
        names = [c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper() for c in caps]
        current = self.process.setdefault("capabilities", {})
        for s in sets:
            current[s] = list(names)
        return self

    def add_capabilities(self, *caps: str) -> Config:
        current = self.process.setdefault("capabilities", {})
        for c in caps:
            name = c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper()
            for s in ("bounding", "effective", "permitted"):
                if name not in current.setdefault(s, []):
                    current[s].append(name)
        return self

    # root, hostname, mounts
    def rootfs(self, path: str | os.PathLike, readonly: bool = True) -> Config:
        self.data["root"] = {"path": os.path.abspath(path), "readonly": readonly}
        return self

    def hostname(self, name: str) -> Config:
        self.data["hostname"] = name
        return self

    def mount(self, destination: str, source: str, type: str = "bind",  # noqa: A002 - the spec's name
              options: Sequence[str] = ()) -> Config:
        self.data.setdefault("mounts", []).append(
            {"destination": destination, "type": type, "source": str(source), "options": list(options)})
        return self

    def bind(self, source: str | os.PathLike, destination: str, readonly: bool = False) -> Config:
        return self.mount(destination, os.path.abspath(source), "bind", ["rbind", "ro" if readonly else "rw"])

    def annotation(self, key: str, value: str) -> Config:
        self.data.setdefault("annotations", {})[key] = value
        return self

    # linux
    @property
    def linux(self) -> dict[str, Any]:
        return self.data.setdefault("linux", {})

    def namespaces(self, *types: str, **paths: str) -> Config:
        """Replace linux.namespaces: new ones by type, joined ones as type=path (e.g. network=...)."""
        self.linux["namespaces"] = [{"type": t} for t in types] + [{"type": t, "path": p} for t, p in paths.items()]
        return self

    def add_namespace(self, type: str, path: str | None = None) -> Config:  # noqa: A002 - the spec's name
        self.without_namespace(type)
        self.linux.setdefault("namespaces", []).append({"type": type, **({"path": path} if path else {})})
        return self

    def without_namespace(self, type: str) -> Config:  # noqa: A002 - the spec's name
        self.linux["namespaces"] = [n for n in self.linux.get("namespaces") or [] if n.get("type") != type]
        return self

    def cgroups_path(self, path: str) -> Config:
        self.linux["cgroupsPath"] = path
        return self

    def resources(self, *, memory: int | None = None, pids: int | None = None, cpu_shares: int | None = None,
                  cpu_quota: int | None = None, cpu_period: int | None = None, cpus: str | None = None,
                  **raw: Any) -> Config:
        """Merge into linux.resources: common limits by name, anything else as raw linux.resources keys."""
        res = self.linux.setdefault("resources", {})
        if memory is not None:
            res.setdefault("memory", {})["limit"] = memory
        if pids is not None:
            res.setdefault("pids", {})["limit"] = pids
        for key, value in (("shares", cpu_shares), ("quota", cpu_quota), ("period", cpu_period), ("cpus", cpus)):
            if value is not None:
                res.setdefault("cpu", {})[key] = value
        res.update(raw)
        return self

    def seccomp(self, profile: dict[str, Any] | None) -> Config:
        """linux.seccomp (a runtime-spec profile), or None for none."""
        if profile is None:
            self.linux.pop("seccomp", None)
        else:
            self.linux["seccomp"] = profile
        return self

    def write(self, bundle: str | os.PathLike) -> str:
        """Write <bundle>/config.json (replacing one); returns its path."""
        os.makedirs(bundle, exist_ok=True)
        return _spec.write_config(os.fspath(bundle), self.data, replace=True)


# -- processes --------------------------------------------------------------------------------------------
class Result:
    """What Runtime.run and Process.run_to_end return: the exit status and the captured output."""

    def __init__(self, returncode: int | None, stdout: bytes | None, stderr: bytes | None) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def __repr__(self) -> str:
        return f"Result(returncode={self.returncode!r}, stdout={self.stdout!r}, stderr={self.stderr!r})"


class Process:
    """A process started by the runtime (a container's init or an exec'd process), held by a pidfd.

    stdin/stdout/stderr are binary file objects for the streams given as PIPE (else None)."""

    def __init__(self, pid: int, pipes: dict[int, IO[bytes]], console: Console | None = None) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._done = False
        self.stdin, self.stdout, self.stderr = pipes.get(0), pipes.get(1), pipes.get(2)
        self.console = console
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # reaped already (not ours): nothing to wait for
            self._pidfd, self._done = -1, True

    def poll(self) -> int | None:
        """The exit status if the process has ended, else None (never blocks)."""
        if not self._done and self._pidfd >= 0 and select.select([self._pidfd], [], [], 0)[0]:
            self._collect()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the process to end; its exit status (128+N if killed by signal N), or None if it
        was not our child (its status is its parent's). WaitTimeout after timeout seconds."""
        if not self._done:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise WaitTimeout(f"process {self.pid} still running after {timeout}s")
            self._collect()
        return self.returncode

    def _collect(self) -> None:
        try:
            res = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:  # not our child: it has ended, but its status is not ours to read
            res = None
        if res is not None:
            self.returncode = res.si_status if res.si_code == os.CLD_EXITED else 128 + res.si_status
        self._done = True
        os.close(self._pidfd)
        self._pidfd = -1

    def send_signal(self, sig: int | str) -> None:
        if self._pidfd >= 0:
            signal.pidfd_send_signal(self._pidfd, _signal_number(sig))

    def communicate(self, input: bytes | None = None, timeout: float | None = None) -> tuple[bytes | None, bytes | None]:  # noqa: A002
        """Write input to stdin (then close it), read stdout and stderr until the process ends (and
        what it wrote before is read), as subprocess does; WaitTimeout after timeout seconds (the
        process goes on; what was read so far is lost)."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        out: dict[int, list[bytes]] = {1: [], 2: []}
        readers = {f.fileno(): n for n, f in ((1, self.stdout), (2, self.stderr)) if f is not None}
        pending = memoryview(input or b"")
        writer = self.stdin.fileno() if self.stdin is not None else -1
        if writer >= 0 and not pending:
            self.stdin.close()
            writer = -1
        for fd in [*readers, writer]:
            if fd >= 0:
                os.set_blocking(fd, False)
        exited = False
        while readers or writer >= 0 or not exited:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout(f"process {self.pid} still running after {timeout}s")
            watch = list(readers) + ([self._pidfd] if not exited and self._pidfd >= 0 else [])
            if exited:  # what is left in the pipes: processes that outlived it may hold them open
                left = 0
            r, w, _ = select.select(watch, [writer] if writer >= 0 else [], [], left)
            if exited and not r:
                break
            for fd in r:
                if fd == self._pidfd:
                    continue
                data = os.read(fd, 65536)
                if data:
                    out[readers[fd]].append(data)
                else:
                    del readers[fd]
            if w:
                try:
                    pending = pending[os.write(writer, pending):]
                except BrokenPipeError:
                    pending = memoryview(b"")
                if not pending:
                    self.stdin.close()
                    writer = -1
            if not exited and (self._pidfd < 0 or self._pidfd in r):
                exited = True
        self.wait(0 if deadline is None else max(0.0, deadline - time.monotonic()))
        for f in (self.stdout, self.stderr):
            if f is not None:
                f.close()
        return (b"".join(out[1]) if self.stdout is not None else None,
                b"".join(out[2]) if self.stderr is not None else None)

    def close(self) -> None:
        """Close the pipes, the console and the pidfd (collecting the status if it has ended)."""
        if not self._done:
            self.poll()
        for f in (self.stdin, self.stdout, self.stderr):
            if f is not None and not f.closed:
                f.close()
        if self.console:
            self.console.close()
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1


class Console:
    """The pty master of a process with process.terminal (what --console-socket receives)."""

    def __init__(self) -> None:
        from .console import ConsoleSocket

        self._socket = ConsoleSocket("pyruntime-console-")
        self.socket_path = self._socket.path
        self.fd = -1

    def _receive(self, timeout: float = 30) -> None:
        self.fd = self._socket.receive(timeout)

    def _cleanup_socket(self) -> None:
        self._socket.close()

    def read(self, timeout: float | None = None, size: int = 65536) -> bytes:
        """What the terminal has to read (b"" once the process side is gone); WaitTimeout if nothing
        came within timeout seconds."""
        if not select.select([self.fd], [], [], timeout)[0]:
            raise WaitTimeout(f"nothing on the terminal after {timeout}s")
        try:
            return os.read(self.fd, size)
        except OSError:  # EIO: every process holding the pty peer is gone
            return b""

    def read_until(self, marker: bytes, timeout: float = 10) -> bytes:
        import time

        deadline, data = time.monotonic() + timeout, b""
        while marker not in data:
            chunk = self.read(max(0.0, deadline - time.monotonic()))
            if not chunk:
                raise RuntimeFailure(f"terminal closed before {marker!r}: {data!r}")
            data += chunk
        return data

    def write(self, data: bytes, timeout: float = 10) -> None:
        """Type data into the terminal; WaitTimeout if the pty takes none of it for timeout seconds."""
        view = memoryview(data)
        while view:
            if not select.select([], [self.fd], [], timeout)[1]:
                raise WaitTimeout(f"the terminal took no input for {timeout}s")
            view = view[os.write(self.fd, view):]

    def resize(self, rows: int, cols: int) -> None:
        from .console import set_winsize

        set_winsize(self.fd, rows, cols)

    def close(self) -> None:
        self._cleanup_socket()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# -- the runtime --------------------------------------------------------------------------------------------
class Runtime:
    """A state root (what the command line's --root names): containers live under it by ID."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = os.path.abspath(root) if root is not None else _state.default_root()

    def container(self, container_id: str, config: Config | str | os.PathLike | None = None,
                  **options: Any) -> Container:
        """A handle on a container. With a config (a Config, or a bundle directory) a new one, made by
        create() or by entering a `with` block; without, an existing one (NotFound if there is none)."""
        c = Container(container_id, config, runtime=self, **options)
        if config is None:
            c.state()  # NotFound now rather than later
            c._created = True
        return c

    def create(self, container_id: str, config: Config | str | os.PathLike, **options: Any) -> Container:
        """Create a container (its init waits for start); see Container for the options."""
        c = Container(container_id, config, runtime=self, **options)
        c.create()
        return c

    def run(self, container_id: str, config: Config | str | os.PathLike, *, timeout: float | None = None,
            input: bytes | None = None, keep: bool = False, **options: Any) -> Result:  # noqa: A002
        """create + start + wait, then delete (unless keep: then it stays, stopped, for
        Runtime.container(id)): the exit status and what the process wrote to the streams given as
        PIPE (stdout and stderr default to PIPE here). On a timeout or any other failure the
        container is deleted (WaitTimeout is raised)."""
        options.setdefault("stdout", PIPE)
        options.setdefault("stderr", PIPE)
        if input is not None:
            options.setdefault("stdin", PIPE)
        c = Container(container_id, config, runtime=self, **options)
        try:
            c.create()  # a failed create leaves nothing (and a taken ID is someone else's)
            c.start()
            out, err = c.init.communicate(input, timeout)
            return Result(c.init.returncode, out, err)
        except BaseException:
            keep = False
            raise
        finally:
            if not keep and c._created:
                with _signals_blocked():
                    c.delete(force=True)

    def list(self) -> builtins.list[dict[str, Any]]:  # builtins: `list` is this method in here
        """runc's containerState of every container under the root (as `list --format json`)."""
        from . import listing

        return listing.collect(self.root)

    def ids(self) -> builtins.list[str]:
        return _state.list_ids(self.root)

    def state(self, container_id: str) -> dict[str, Any]:
        return Container(container_id, runtime=self).state()

    def delete(self, container_id: str, force: bool = False) -> None:
        _container.delete_by_id(self.root, container_id, force)


class Container:
    """One container under a Runtime's root. A context manager: `with` creates it (unless it
    exists) and deletes it with force on the way out: normal exit, exception or KeyboardInterrupt.

    config: a Config, or a bundle directory holding config.json (root.path relative to it).
    stdin/stdout/stderr of the init: None (the caller's), PIPE, DEVNULL, a file descriptor, a file
    object, or a path (opened for reading for stdin, created/truncated for the others).
    console=True: the init's pty master (process.terminal must be true) arrives in `console`.
    preserve_fds: extra fds of the caller passed on as 3, 4, ... (--preserve-fds).
    """

    def __init__(self, container_id: str, config: Config | str | os.PathLike | None = None, *,
                 root: str | os.PathLike | None = None, runtime: Runtime | None = None,
                 stdin: Stdio = DEVNULL, stdout: Stdio = None, stderr: Stdio = None, console: bool = False,
                 preserve_fds: Sequence[int] = (), no_pivot: bool = False, no_new_keyring: bool = False,
                 pid_file: str | None = None) -> None:
        _state.check_id(container_id)
        self.id = container_id
        self.runtime = runtime or Runtime(root)
        self.root = self.runtime.root
        self.config = config
        self._stdio = (stdin, stdout, stderr)
        self._want_console = console
        self._preserve = list(preserve_fds)
        self._flags = {"no_pivot": no_pivot, "no_new_keyring": no_new_keyring, "pid_file": pid_file}
        self._created = False
        self._own_bundle: str | None = None
        self.init: Process | None = None
        self.console: Console | None = None
        self._processes: list[Process] = []

    def __repr__(self) -> str:
        return f"Container({self.id!r}, root={self.root!r})"

    # -- context manager: nothing leaks ------------------------------------------------------------
    def __enter__(self) -> Container:
        try:
            if not self._created:
                self.create()  # a failed create leaves nothing (and a taken ID is someone else's)
        except BaseException:  # e.g. the Ctrl-C held back during the create, delivered after it
            if self._created:
                with _signals_blocked():
                    self._forget()
            raise
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        with _signals_blocked():
            try:
                self.delete(force=True)
            except RuntimeFailure:
                if kind is None:
                    raise

    def _forget(self) -> None:
        """Force-delete whatever a failed or interrupted create left (nothing, normally)."""
        try:
            self.delete(force=True)
        except RuntimeFailure:
            pass

    # -- lifecycle ---------------------------------------------------------------------------------
    def create(self) -> None:
        """Create the container: its init is set up and waits for start (state "created")."""
        if self.config is None:
            raise RuntimeFailure(f"container {self.id!r}: no config or bundle to create it from")
        bundle = self._bundle()
        console = Console() if self._want_console else None
        options = _container.CreateOptions(
            bundle=bundle, pid_file=self._flags["pid_file"], console_socket=console.socket_path if console else None,
            no_pivot=self._flags["no_pivot"], no_new_keyring=self._flags["no_new_keyring"],
            preserve_fds=len(self._preserve))
        root, cid = self.root, self.id

        def work() -> int:
            c = _container.create(root, cid, options)
            c.close()
            return c.pid

        with _signals_blocked():  # a Ctrl-C now would leave a container nobody knows of
            try:
                pid, pipes = _in_helper(work, self._stdio, self._preserve)
            except BaseException:
                if console:
                    console.close()
                self._drop_own_bundle()
                raise
            self._created = True
            self.init = Process(pid, pipes, console)
            self._processes.append(self.init)
        if console:
            try:
                console._receive()
            except BaseException:
                with _signals_blocked():
                    self._forget()
                raise
            self.console = console

    def start(self) -> None:
        """Run the user's process of a created container (poststart hooks run before this returns)."""
        _container.start_by_id(self.root, self.id)

    def run(self, timeout: float | None = None) -> int | None:
        """create (if needed) + start + wait: the init's exit status. The container stays (stopped)."""
        if not self._created:
            self.create()
        self.start()
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until the init ends; its exit status (None if this process did not create it)."""
        if self.init is not None:
            return self.init.wait(timeout)
        pid = self.state()["pid"]
        if pid:
            return Process(pid, {}).wait(timeout)
        return None

    def kill(self, sig: int | str = "TERM", all: bool = False) -> None:  # noqa: A002 - runc's flag
        """Signal the init (by name or number), or with all=True every process of the container."""
        _container.kill_by_id(self.root, self.id, _signal_number(sig), all)

    def pause(self) -> None:
        from . import cgroup_commands

        self._with_state(cgroup_commands.pause)

    def resume(self) -> None:
        from . import cgroup_commands

        self._with_state(cgroup_commands.resume)

    def update(self, resources: dict[str, Any]) -> None:
        """Change a running container's linux.resources (keys as config.json spells them)."""
        from . import cgroup_commands

        res = cgroup_commands.checked_resources(resources, "resources")
        self._with_state(lambda c: cgroup_commands.update(c, res, "resources"))

    def delete(self, force: bool = False) -> None:
        """Delete the container (force: kill it first if it runs); collect its processes' status."""
        _container.delete_by_id(self.root, self.id, force)
        self._created = False
        for p in self._processes:
            try:
                p.wait(5)  # they die with the container (the init's pid namespace, or the cgroup kill)
            except WaitTimeout:
                pass
            p.close()
        self._processes.clear()
        if self.console:
            self.console.close()
        self._drop_own_bundle()

    # -- inspection ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """runc's containerState (ociVersion, id, pid, status, bundle, rootfs, created, owner...)."""
        from . import listing

        c = _state.load(self.root, self.id, lock=False)
        try:
            return listing.container_state(c)
        finally:
            c.close()

    @property
    def status(self) -> str:
        return self.state()["status"]

    @property
    def pid(self) -> int:
        return self.state()["pid"]

    def stats(self) -> dict[str, Any]:
        """runc's types.Stats of the container's cgroup (what `events --stats` prints under "data")."""
        from . import cgroup_commands

        def read(c: _state.Container) -> dict[str, Any]:
            if c.status() == "stopped":
                raise RuntimeFailure(f"container {c.id} is not running")
            return cgroup_commands.stats(c)

        return self._with_state(read, shared=True)

    def events(self, interval: float = 5.0) -> Iterator[dict[str, Any]]:
        """runc's events as dicts ({"type": "stats"|"oom", "id", "data"}): stats every interval, OOMs
        as they happen; ends when the container does (close the iterator to stop earlier)."""
        from . import cgroup_commands, fastjson

        c = _state.load(self.root, self.id, shared=True)
        try:
            for line in cgroup_commands.event_stream(c, interval):
                yield fastjson.loads(line)
        finally:
            c.close()

    # -- exec ------------------------------------------------------------------------------------------
    def exec(self, args: Sequence[str] | None = None, *, process: dict[str, Any] | None = None,  # noqa: A003
             env: dict[str, str] | Sequence[str] = (), cwd: str | None = None, user: int | str | tuple[int, int] | None = None,
             additional_gids: Sequence[int] = (), caps: Sequence[str] = (), no_new_privs: bool = False,
             tty: bool = False, stdin: Stdio = DEVNULL, stdout: Stdio = PIPE, stderr: Stdio = PIPE,
             preserve_fds: Sequence[int] = (), cgroup: str | None = None, ignore_paused: bool = False) -> Process:
        """Start one more process in the running container (`exec`): args (the container's process
        settings otherwise), or a whole runtime-spec `process`. stdout/stderr default to PIPE here;
        tty=True gives it a pty, whose master is the returned Process's `console`."""
        from . import exec_ as exec_mod

        if isinstance(user, tuple):
            user = f"{user[0]}:{user[1]}"
        console = Console() if tty else None
        opts = exec_mod.ExecOptions(
            args=list(args or []), process=process, tty=tty if process is None or tty else None, detach=True,
            console_socket=console.socket_path if console else None, cwd=cwd,
            env=[f"{k}={v}" for k, v in env.items()] if isinstance(env, dict) else list(env),
            user=None if user is None else str(user), additional_gids=[str(g) for g in additional_gids],
            caps=list(caps), no_new_privs=no_new_privs, preserve_fds=len(preserve_fds),
            cgroup=[cgroup] if cgroup else [], ignore_paused=ignore_paused)
        root, cid = self.root, self.id

        def work() -> int:
            return exec_mod.start_process(root, cid, opts)[0]

        with _signals_blocked():  # the process is tracked (and collected by delete) before a Ctrl-C lands
            try:
                pid, pipes = _in_helper(work, (stdin, stdout, stderr), list(preserve_fds))
            except BaseException:
                if console:
                    console.close()
                raise
            proc = Process(pid, pipes, console)
            self._processes.append(proc)
        if console:
            console._receive()
        return proc

    def exec_run(self, args: Sequence[str], *, timeout: float | None = None, input: bytes | None = None,  # noqa: A002
                 **options: Any) -> Result:
        """exec, then communicate: the exit status and the output (stdout and stderr as bytes)."""
        if input is not None:
            options.setdefault("stdin", PIPE)
        proc = self.exec(args, **options)
        out, err = proc.communicate(input, timeout)
        self._processes.remove(proc)
        proc.close()
        return Result(proc.returncode, out, err)

    # -- helpers ---------------------------------------------------------------------------------------
    def _bundle(self) -> str:
        if isinstance(self.config, Config):
            self._own_bundle = tempfile.mkdtemp(prefix=f"pyruntime-bundle-{self.id}-")
            self.config.write(self._own_bundle)
            return self._own_bundle
        return os.path.abspath(os.fspath(self.config))

    def _drop_own_bundle(self) -> None:
        if self._own_bundle:
            import shutil

            shutil.rmtree(self._own_bundle, ignore_errors=True)
            self._own_bundle = None

    def _with_state(self, fn: Any, shared: bool = False) -> Any:
        c = _state.load(self.root, self.id, shared=shared)
        try:
            return fn(c)
        finally:
            c.close()


# -- the forked helper ---------------------------------------------------------------------------------
class _subreaper:  # noqa: N801 - used as a statement
    """The caller is a child subreaper meanwhile (its previous setting restored afterwards)."""

    def __enter__(self) -> None:
        import _prctl  # the C module of python-prctl (a dependency): prctl.py costs ~0.7 ms

        self._was = _prctl.prctl(_prctl.PR_GET_CHILD_SUBREAPER)
        if not self._was:
            _prctl.prctl(_prctl.PR_SET_CHILD_SUBREAPER, 1)

    def __exit__(self, *exc: Any) -> None:
        import _prctl

        if not self._was:
            _prctl.prctl(_prctl.PR_SET_CHILD_SUBREAPER, 0)


class _signals_blocked:  # noqa: N801 - used as a statement
    """Block the interrupting signals meanwhile (delivered when the block ends); main thread only."""

    def __enter__(self) -> None:
        self._old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)

    def __exit__(self, *exc: Any) -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old)


def _open_stdio(which: int, spec: Stdio, mine: list[int], theirs: list[int]) -> tuple[int, IO[bytes] | None]:
    """(fd for the helper's stdio `which`, or -1 to inherit; the caller's end of a pipe)."""
    if spec is None:
        return -1, None
    if spec == PIPE:
        r, w = os.pipe()
        child, parent = (r, w) if which == 0 else (w, r)
        theirs.append(child)
        mine.append(parent)
        return child, os.fdopen(parent, "wb" if which == 0 else "rb", buffering=0)
    if spec == DEVNULL:
        fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        theirs.append(fd)
        return fd, None
    if isinstance(spec, int):
        return spec, None
    if isinstance(spec, str | os.PathLike):
        flags = os.O_RDONLY if which == 0 else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(spec, flags | os.O_CLOEXEC, 0o644)
        theirs.append(fd)
        return fd, None
    return spec.fileno(), None


def _in_helper(work: Any, stdio: tuple[Stdio, Stdio, Stdio], preserve: list[int]) -> tuple[int, dict[int, IO[bytes]]]:
    """Run work() (which returns a pid) in a forked child whose fds 0-2 are the given stdio and
    3.. the preserved fds; return (that pid, {stream: caller's end of its pipe}) or raise its error.
    Returns once the helper has exited: the process is then reparented to us (a subreaper meanwhile)."""
    from . import fastjson

    mine: list[int] = []
    theirs: list[int] = []
    pipes: dict[int, IO[bytes]] = {}
    try:
        fds = []
        for which, spec in enumerate(stdio):
            fd, end = _open_stdio(which, spec, mine, theirs)
            fds.append(fd)
            if end is not None:
                pipes[which] = end
        r, w = os.pipe()
        with _subreaper():
            with _signals_blocked():
                helper = os.fork()
                if helper == 0:  # pragma: no cover - the helper: never returns into the caller's code
                    _helper_main(work, fds, preserve, r, w)
            os.close(w)
            for fd in theirs:
                os.close(fd)
            theirs.clear()
            with os.fdopen(r, "rb") as f:
                answer = f.read()
            _reap(helper)  # it reaped the intermediate: the process is our child by now
        if not answer:
            raise RuntimeFailure("the runtime's helper process died")
        result = fastjson.loads(answer)
        if "error" in result:
            raise _decode(result["error"])
        return result["pid"], pipes
    except BaseException:
        for f in pipes.values():
            f.close()
        raise
    finally:
        for fd in theirs:
            os.close(fd)


def _helper_main(work: Any, fds: list[int], preserve: list[int], r: int, w: int) -> None:  # pragma: no cover
    code = 1
    try:
        os.close(r)
        for s in _SIGNALS:  # the caller's handlers (KeyboardInterrupt...) are not ours
            signal.signal(s, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        from .security import sealed

        sealed.reexec_allowed = False
        # the runtime's own messages (warnings) go to the caller's stderr, not the container's
        err = os.dup(2)
        sys.stderr = open(err, "w", closefd=False)  # noqa: SIM115
        import fcntl

        low = 3 + len(preserve)  # the copies sit above every target: no dup2 clobbers one still needed
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low) if fd >= 0 else -1 for fd in [*fds, *preserve]]
        for target, fd in enumerate(moved[:3]):
            if fd >= 0:
                os.dup2(fd, target, inheritable=True)
        for i, fd in enumerate(moved[3:]):
            os.dup2(fd, 3 + i, inheritable=True)
        try:
            result: dict[str, Any] = {"pid": work()}
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the caller
            result = {"error": _encode(e)}
        from . import fastjson

        data = fastjson.dumps(result, compact=True).encode()
        while data:
            data = data[os.write(w, data):]
        code = 0
    finally:
        os._exit(code)


def _reap(pid: int) -> None:
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


def _encode(e: BaseException) -> dict[str, Any]:
    from .errors import os_failure

    if isinstance(e, ConfigError):
        return {"kind": "ConfigError", "file": e.file, "path": e.path, "cause": e.cause}
    if isinstance(e, NotFound | AlreadyExists):
        return {"kind": type(e).__name__, "id": e.container_id}
    if isinstance(e, RuntimeFailure):
        return {"kind": "RuntimeFailure", "message": str(e), "exit_code": e.exit_code}
    if isinstance(e, OSError):
        return {"kind": "RuntimeFailure", "message": str(os_failure("create", e)), "exit_code": 1}
    return {"kind": "RuntimeFailure", "message": f"internal error: {type(e).__name__}: {e}", "exit_code": 1}


def _decode(d: dict[str, Any]) -> RuntimeFailure:
    if d["kind"] == "ConfigError":
        return ConfigError(d["file"], d["path"], d["cause"])
    if d["kind"] == "NotFound":
        return NotFound(d["id"])
    if d["kind"] == "AlreadyExists":
        return AlreadyExists(d["id"])
    e = RuntimeFailure(d["message"])
    e.exit_code = d.get("exit_code", 1)
    return e


def _signal_number(sig: int | str) -> int:
    return int(sig) if isinstance(sig, int) else _container.signal_number(sig)

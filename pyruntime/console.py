"""process.terminal: the pty inside the container, the console socket, and the foreground proxy.

Three parts:
- runtime side: `connect` to --console-socket before forking (the fd goes to the init or exec child);
- in the container (init or exec child, no imports allowed): `attach_pty` opens the devpts ptmx
  through an fd resolved inside the rootfs, gets the peer with TIOCGPTPEER (no /dev/pts/N lookup),
  makes it the controlling terminal and stdio, and sends the master over the socket (SCM_RIGHTS);
- `ForegroundTerminal`: for `run`/`exec` in the foreground without --console-socket, a private socket
  that receives the master, then a raw-mode proxy between the caller's terminal and the container's.
"""

from __future__ import annotations

import array  # noqa: F401 - socket.send_fds imports it lazily, and the container side cannot import
import errno
import os
import socket
import stat

from . import native
from ._native import ffi, lib
from .errors import RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The message sent along with the fd; conmon ignores it, runc sends the master's name.
MASTER_NAME = b"/dev/ptmx"
_RESOLVE = lib.RESOLVE_IN_ROOT | lib.RESOLVE_NO_SYMLINKS | lib.RESOLVE_NO_MAGICLINKS


# -- runtime side ---------------------------------------------------------------------------------
def connect(path: str) -> int:
    """Connect to the console socket; the returned fd (close-on-exec) goes to the container's process."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise RuntimeFailure(f"cannot connect to console socket {path}: {e.strerror or e}") from None
    return sock.detach()


# -- inside the container (runs after imports are blocked: use only what is imported above) -------
def attach_pty(root_fd: int, console_fd: int, process: dict[str, Any]) -> None:
    """Make a new pty of the container's devpts our controlling terminal and stdio; send its master.

    root_fd: the container's root (its /dev/pts is mounted by now). The caller is a session leader."""
    master = open_master(root_fd)
    try:
        peer = _check(lib.pr_pty_peer(master, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC), "open the pty peer")
        try:
            size = process.get("consoleSize") or {}
            if size.get("height") or size.get("width"):
                _check(lib.pr_set_winsize(master, size.get("height", 0), size.get("width", 0)), "set the window size")
            _give_to_user(peer, (process.get("user") or {}).get("uid", 0))
            _check(lib.pr_set_ctty(peer), "make the pty the controlling terminal")
            for fd in (0, 1, 2):
                os.dup2(peer, fd, inheritable=True)
        finally:
            os.close(peer)
        sock = socket.socket(fileno=console_fd)
        try:
            socket.send_fds(sock, [MASTER_NAME], [master])
        except OSError as e:
            raise RuntimeFailure(f"cannot send the pty master to the console socket: {e.strerror or e}") from None
        finally:
            sock.close()
    finally:
        os.close(master)


def _give_to_user(peer: int, uid: int) -> None:
    """The pty belongs to the process's user (its group stays devpts' gid= option, tty): an init
    opens it as root before it becomes the user, and `tty`, `mesg` or ssh-like programs check it."""
    try:
        if os.fstat(peer).st_uid != uid:
            os.fchown(peer, uid, -1)
    except OSError as e:
        raise RuntimeFailure(f"process.terminal: cannot give the pty to uid {uid}: "
                             f"{os.strerror(e.errno).lower()}") from None


def open_master(root_fd: int) -> int:
    """Open <root>/dev/pts/ptmx without following any symlink the container planted, and check that it
    really is the ptmx of a devpts (a pty master is all we hand out)."""
    try:
        fd = native.openat2(root_fd, "dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY, _RESOLVE)
    except OSError as e:
        raise RuntimeFailure(f"process.terminal: cannot open /dev/pts/ptmx in the container "
                             f"(is devpts mounted on /dev/pts?): {os.strerror(e.errno).lower()}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISCHR(st.st_mode) or lib.pr_fs_type(fd) != lib.DEVPTS_SUPER_MAGIC:
            raise RuntimeFailure("process.terminal: /dev/pts/ptmx in the container is not a devpts ptmx")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check(rc: int, what: str) -> int:
    if rc < 0:
        raise RuntimeFailure(f"process.terminal: cannot {what}: {os.strerror(ffi.errno).lower()}")
    return rc


def get_winsize(fd: int) -> tuple[int, int] | None:
    v = lib.pr_get_winsize(fd)
    return None if v < 0 else (v >> 16, v & 0xFFFF)


def set_winsize(fd: int, rows: int, cols: int) -> None:
    lib.pr_set_winsize(fd, rows, cols)


# -- a private console socket ---------------------------------------------------------------------
class ConsoleSocket:
    """A --console-socket of our own (foreground `run`/`exec`, the Python API): a listener in a fresh
    private directory that receives one pty master, then goes."""

    def __init__(self, prefix: str) -> None:
        import tempfile

        self._dir = tempfile.mkdtemp(prefix=prefix)
        self.path = os.path.join(self._dir, "console.sock")
        self._listener: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._listener.bind(self.path)
        self._listener.listen(1)

    def receive(self, timeout: float = 30) -> int:
        """The pty master the container's process sends (not inheritable); the socket is gone after."""
        if self._listener is None:
            raise RuntimeFailure("no terminal received from the container")
        self._listener.settimeout(timeout)
        try:
            conn, _ = self._listener.accept()
            with conn:
                conn.settimeout(timeout)
                _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        except OSError as e:
            raise RuntimeFailure(f"no terminal received from the container: {e.strerror or e}") from None
        finally:
            self.close()  # one connection is all it takes: nothing left in /tmp from here on
        if not fds:
            raise RuntimeFailure("no terminal received from the container")
        os.set_inheritable(fds[0], False)
        return fds[0]

    def unlink(self) -> None:
        """Remove the socket's name and its private directory (a connected client keeps working, and a
        killed runtime leaves nothing in /tmp)."""
        import shutil

        shutil.rmtree(self._dir, ignore_errors=True)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.unlink()


# -- foreground proxy -----------------------------------------------------------------------------
class ForegroundTerminal:
    """A private console socket, then a proxy between our stdio and the container's pty.

    Used by `run` and `exec` in the foreground when the process wants a terminal and the caller gave
    no --console-socket: the container's process sends its master here, we put our terminal in raw
    mode, copy bytes both ways, follow SIGWINCH, and return the exit code of the process."""

    def __init__(self) -> None:
        self._socket = ConsoleSocket("pyruntime-tty-")
        self.socket_path = self._socket.path
        self.master = -1
        self._size_src = -1
        self._saved_attrs: list[Any] | None = None
        self._old_winch: Any = None

    @staticmethod
    def caller_size() -> tuple[int, int] | None:
        """The window size of our terminal (stdin's, else stdout's), if we have one."""
        for fd in (0, 1):
            if os.isatty(fd):
                size = get_winsize(fd)
                return size if size and size != (0, 0) else None
        return None

    def receive_master(self, timeout: float = 30) -> None:
        self.master = self._socket.receive(timeout)
        # The size before the process starts: it may ask for it at once.
        self._size_src = 0 if os.isatty(0) else 1 if os.isatty(1) else -1
        if self._size_src >= 0:
            self._copy_size(self._size_src)

    def proxy_until_exit(self, pid: int) -> int:
        """Copy stdin -> pty and pty -> stdout until the process exits; return its exit code."""
        import select
        import signal

        from .proc import wait_exit

        if os.isatty(0) and _foreground(0):  # in the background, tcsetattr would stop us (SIGTTOU)
            import termios
            import tty

            self._saved_attrs = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)
        size_src = self._size_src
        if size_src >= 0:
            self._copy_size(size_src)  # again: it may have changed since receive_master
            self._old_winch = signal.signal(signal.SIGWINCH, lambda *_: self._copy_size(size_src))
        pidfd = os.pidfd_open(pid)
        os.set_blocking(self.master, False)
        pending = b""  # stdin bytes the pty has not taken yet
        stdin_open, master_open = True, True
        try:
            while True:
                rlist = [pidfd] + ([self.master] if master_open else []) + ([0] if stdin_open and not pending else [])
                wlist = [self.master] if pending and master_open else []
                r, _, _ = select.select(rlist, wlist, [])
                if self.master in r:
                    master_open = self._pump_out()
                if 0 in r:
                    try:
                        data = os.read(0, 65536)
                    except OSError:  # our terminal hung up: as end of input
                        data = b""
                    if data:
                        pending += data
                    else:
                        stdin_open = False
                        pending += b"\x04"  # end of input: EOF for a canonical-mode reader
                if pending and master_open:
                    pending = pending[self._write_some(pending):]
                if pidfd in r:
                    break
            self._drain()
        finally:
            os.close(pidfd)
        return wait_exit(pid)

    def _pump_out(self) -> bool:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return True
        except OSError as e:
            if e.errno == errno.EIO:  # every peer is closed
                return False
            raise
        if not data:
            return False
        try:
            _write_all(1, data)
        except OSError:
            pass  # our stdout is gone: keep reading so the container never blocks on a full pty
        return True

    def _write_some(self, data: bytes) -> int:
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0
        except OSError as e:
            if e.errno == errno.EIO:
                return len(data)
            raise

    def _drain(self) -> None:
        """Output still buffered in the pty after the process exited (background children may keep the
        peer open, so stop when nothing more comes for a moment)."""
        import select

        while True:
            r, _, _ = select.select([self.master], [], [], 0.1)
            if not r or not self._pump_out():
                return

    def _copy_size(self, src: int) -> None:
        size = get_winsize(src)
        if size and size != (0, 0) and self.master >= 0:  # 0x0: the caller's terminal has no size
            set_winsize(self.master, *size)

    def close(self) -> None:
        import signal

        if self._saved_attrs is not None:
            import termios

            try:
                termios.tcsetattr(0, termios.TCSADRAIN, self._saved_attrs)
            except termios.error:
                pass
            self._saved_attrs = None
        if self._old_winch is not None:
            signal.signal(signal.SIGWINCH, self._old_winch)
            self._old_winch = None
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        self._socket.close()

    def unlink_path(self) -> None:
        """Remove the socket's name once the one client is connected (see ConsoleSocket.unlink)."""
        self._socket.unlink()


def _foreground(fd: int) -> bool:
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            import select

            select.select([], [fd], [])

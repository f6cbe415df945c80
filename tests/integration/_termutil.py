"""Test helpers for terminals: drive a command on a real pty, and receive a pty master on a console
socket the way conmon does."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_size(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


@dataclass
class PtyResult:
    output: bytes
    returncode: int
    attrs_after: list = field(default_factory=list)  # termios of our pty after the command exited
    attrs_before: list = field(default_factory=list)


def run_in_pty(argv: list[str], rows: int = 24, cols: int = 80, timeout: float = 30,
               on_output: Callable[[bytes, int], bytes | None] | None = None) -> PtyResult:
    """Run argv as the session leader of a new pty (as a user's shell would); collect its output.

    on_output(output_so_far, master_fd) may return bytes to type into the terminal (once per call)."""
    master, slave = pty.openpty()
    set_size(master, rows, cols)
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    pass
                if on_output:
                    typed = on_output(out, master)
                    if typed:
                        os.write(master, typed)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{argv} timed out; output so far: {out!r}")
        while select.select([master], [], [], 0.05)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
        after = termios.tcgetattr(slave)
    finally:
        os.close(slave)
        os.close(master)
    return PtyResult(out, proc.returncode, after, before)


class ConsoleReceiver:
    """A --console-socket: accepts one connection and keeps the pty master it carries."""

    def __init__(self, path: str, timeout: float = 30) -> None:
        self.path, self.timeout = path, timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.master = -1
        self.message = b""
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(self.timeout)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            self.message, fds, _, _ = socket.recv_fds(conn, 1024, 4)
        if fds:
            self.master = fds[0]
            for extra in fds[1:]:
                os.close(extra)

    def wait(self, timeout: float = 30) -> int:
        self._thread.join(timeout)
        assert self.master >= 0, "no pty master received on the console socket"
        return self.master

    def read_until(self, needle: bytes, timeout: float = 10) -> bytes:
        out = b""
        deadline = time.monotonic() + timeout
        while needle not in out and time.monotonic() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.1)
            if r:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    break
                if not data:
                    break
                out += data
        return out

    def close(self) -> None:
        self.sock.close()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            pass
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"process {pid} still running after {timeout}s")

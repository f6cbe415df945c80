"""--pidfd-socket (runc 1.2+ on create, run and exec): a pidfd of the process, sent over a unix socket.

The receiver (a shim, a supervisor) can then signal and wait for the process without any pid-reuse
race, whoever its parent is."""

from __future__ import annotations

import os

from .errors import RuntimeFailure


def send(path: str, pid: int) -> None:
    """Connect to path and send a pidfd of pid (SCM_RIGHTS, with runc's message "pidfd")."""
    import socket

    from . import console

    try:
        pidfd = os.pidfd_open(pid)
    except OSError as e:
        raise RuntimeFailure(f"--pidfd-socket: cannot open a pidfd of process {pid}: "
                             f"{(e.strerror or str(e)).lower()}") from None
    try:
        sock = socket.socket(fileno=console.connect(path))
        try:
            socket.send_fds(sock, [b"pidfd"], [pidfd])
        except OSError as e:
            raise RuntimeFailure(f"--pidfd-socket {path}: cannot send the pidfd: "
                                 f"{(e.strerror or str(e)).lower()}") from None
        finally:
            sock.close()
    finally:
        os.close(pidfd)

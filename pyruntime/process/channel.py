"""The sync channel between the runtime and the processes it forks: JSON messages on a SEQPACKET pair."""

from __future__ import annotations

import _socket as socket  # the C module: socket.py costs ~2 ms to import (enums, selectors)
import _struct  # not array: importing array imports collections.abc (~2 ms)
import os

from .. import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_FDS = 4


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def send(self, **msg: Any) -> None:
        # write(2), not send(2): the init's last message goes out under the container's seccomp
        # filter, and write is a syscall every program (and so every profile) allows.
        os.write(self.sock.fileno(), fastjson.dumps(msg).encode())

    def send_fds(self, fds: list[int], **msg: Any) -> None:
        """A message with fds attached (SCM_RIGHTS); the receiver finds them in msg["fds"]."""
        self.sock.sendmsg([fastjson.dumps(msg).encode()],
                          [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _struct.pack(f"{len(fds)}i", *fds))])

    def recv(self) -> dict[str, Any] | None:
        """The next message, or None at EOF (every peer closed or exec'd). Received fds are
        close-on-exec and listed in msg["fds"]; the caller owns (and closes) them."""
        data, anc, _flags, _addr = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(MAX_FDS * 4),
                                                      socket.MSG_CMSG_CLOEXEC)
        fds: list[int] = []
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                n = len(payload) // 4
                fds.extend(_struct.unpack(f"{n}i", payload[:n * 4]))
        if not data:
            for fd in fds:
                os.close(fd)
            return None
        msg = fastjson.loads(data)
        if fds:
            msg["fds"] = fds
        return msg

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

"""The sync channel between the runtime and the processes it forks: JSON messages on a SEQPACKET pair."""

from __future__ import annotations

import json
import socket
from typing import Any


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def send(self, **msg: Any) -> None:
        self.sock.send(json.dumps(msg).encode())

    def recv(self) -> dict[str, Any] | None:
        """The next message, or None at EOF (every peer closed or exec'd)."""
        data = self.sock.recv(1 << 20)
        return json.loads(data) if data else None

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

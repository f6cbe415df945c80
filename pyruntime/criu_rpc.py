"""CRIU's RPC (`criu swrk FD`): the few protobuf messages of criu/rpc.proto that checkpoint and restore
use, encoded by hand (proto2 wire format: varints and length-delimited fields), so that no protobuf
package is needed. swrk is what runc drives: it is the only mode in which CRIU hands back the
restored tty's master (orphan_pts_master) and reports the restore's steps (setup-namespaces,
post-restore) while the runtime is still there to run hooks and record the container.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time
from collections.abc import Callable

from .errors import RuntimeFailure

# criu_req_type
DUMP, RESTORE, PRE_DUMP, NOTIFY, VERSION = 1, 2, 4, 6, 10
# criu_cg_mode
CG_MODES = {"soft": 3, "full": 4, "strict": 5}

# criu_opts field numbers (criu/rpc.proto)
OPT = {
    "images_dir_fd": 1, "pid": 2, "leave_running": 3, "ext_unix_sk": 4, "tcp_established": 5,
    "evasive_devices": 6, "shell_job": 7, "file_locks": 8, "log_level": 9, "log_file": 10, "ps": 11,
    "notify_scripts": 12, "root": 13, "parent_img": 14, "track_mem": 15, "auto_dedup": 16,
    "work_dir_fd": 17, "ext_mnt": 23, "manage_cgroups": 24, "cg_root": 25, "rst_sibling": 26,
    "inherit_fd": 27, "manage_cgroups_mode": 34, "external": 37, "empty_ns": 38, "join_ns": 39,
    "freeze_cgroup": 44, "lazy_pages": 48, "status_fd": 49, "orphan_pts_master": 50, "config_file": 51,
    "lsm_profile": 53, "lsm_mount_context": 63,
}
# the nested messages' fields, in order: (key, val) pairs and the page server
PAIRS = {"ext_mnt": (1, 2), "inherit_fd": (1, 2), "cg_root": (1, 2), "join_ns": (1, 2)}
PS_FIELDS = {"address": 1, "port": 2}

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32s are ten-byte two's complement varints
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, value: object) -> bytes:
    if isinstance(value, (bool, int)):
        return _varint(num << 3) + _varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    assert isinstance(data, bytes)
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _pair(key_num: int, val_num: int, key: object, val: object) -> bytes:
    return _field(key_num, key) + _field(val_num, val)


def encode_opts(opts: dict[str, object]) -> bytes:
    """criu_opts from {name: value}; repeated fields are lists (pairs for the nested messages)."""
    out = bytearray()
    for name, value in opts.items():
        num = OPT[name]
        if value is None:
            continue
        if name in PAIRS:
            for k, v in value:  # type: ignore[attr-defined]
                inner = (_field(2, v) if k is None else _pair(*PAIRS[name], k, v))
                out += _field(num, inner)
        elif name == "ps":
            out += _field(num, b"".join(_field(PS_FIELDS[k], v) for k, v in value.items()))  # type: ignore[attr-defined]
        elif isinstance(value, list):
            for item in value:
                out += _field(num, item)
        else:
            out += _field(num, value)
    return bytes(out)


def encode_req(req_type: int, opts: bytes | None = None, notify_success: bool | None = None) -> bytes:
    out = _field(1, req_type)
    if opts is not None:
        out += _field(2, opts)
    if notify_success is not None:
        out += _field(3, notify_success)
    return out


def decode(data: bytes) -> dict[int, list[int | bytes]]:
    """One message's fields: {number: [values]} (varints as ints, length-delimited as bytes)."""
    fields: dict[int, list[int | bytes]] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        shift = n = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(data):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            value: int | bytes = varint()
        elif wire == 2:
            length = varint()
            value, i = data[i:i + length], i + length
        elif wire in (1, 5):  # fixed64/fixed32: not used by criu_resp, skipped
            width = 8 if wire == 1 else 4
            value, i = int.from_bytes(data[i:i + width], "little"), i + width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(num, []).append(value)
    return fields


def _first(fields: dict[int, list[int | bytes]], num: int, default: object = None) -> object:
    values = fields.get(num)
    return values[0] if values else default


class Response:
    """criu_resp: type, success, errno/errmsg, the notification (script, pid), the restored pid."""

    def __init__(self, data: bytes) -> None:
        f = decode(data)
        self.type = int(_first(f, 1, 0))  # type: ignore[arg-type]
        self.success = bool(_first(f, 2, 0))
        self.errno = int(_first(f, 7, 0))  # type: ignore[arg-type]
        msg = _first(f, 9, b"")
        self.errmsg = msg.decode(errors="replace") if isinstance(msg, bytes) else ""
        notify = decode(_first(f, 5, b""))  # type: ignore[arg-type]
        script = _first(notify, 1, b"")
        self.script = script.decode(errors="replace") if isinstance(script, bytes) else ""
        self.pid = int(_first(notify, 2, 0))  # type: ignore[arg-type]
        restore = decode(_first(f, 4, b""))  # type: ignore[arg-type]
        self.restored_pid = int(_first(restore, 1, 0))  # type: ignore[arg-type]


Notify = Callable[[str, int, list[int]], None]  # (script, pid, fds received with it)


def swrk(criu: str, req_type: int, opts: dict[str, object], log_path: str, what: str,
         pass_fds: tuple[int, ...] = (), on_notify: Notify | None = None, on_started: Callable[[int], None] | None = None,
         timeout: float = 600.0) -> Response:
    """Run one request through `criu swrk`; every failure names CRIU's log. Bounded by timeout."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        try:
            proc = subprocess.Popen([criu, "swrk", str(theirs.fileno())], pass_fds=(theirs.fileno(), *pass_fds))
        except OSError as e:
            raise RuntimeFailure(f"{what}: cannot run {criu}: {e.strerror or e}") from None
        theirs.close()  # a CRIU that dies is then EOF here, not a hang
        try:
            return _converse(proc, ours, req_type, opts, log_path, what, on_notify, on_started, timeout)
        finally:
            ours.close()
            _reap(proc)
    finally:
        theirs.close()


def _converse(proc: subprocess.Popen, sock: socket.socket, req_type: int, opts: dict[str, object], log_path: str,
              what: str, on_notify: Notify | None, on_started: Callable[[int], None] | None,
              timeout: float) -> Response:
    if on_started:
        on_started(proc.pid)
    sock.sendall(encode_req(req_type, encode_opts(opts)))
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            raise RuntimeFailure(f"{what}: criu did not answer within {int(timeout)} s (log file: {log_path})")
        data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 4)
        if not data:
            raise RuntimeFailure(f"{what}: criu exited without an answer (log file: {log_path})")
        resp = Response(data)
        if not resp.success:
            for fd in fds:
                os.close(fd)
            detail = resp.errmsg or (os.strerror(resp.errno) if resp.errno else "failed")
            raise RuntimeFailure(f"{what}: criu failed: {detail} (log file: {log_path})")
        if resp.type != NOTIFY:
            return resp
        try:
            if on_notify:
                on_notify(resp.script, resp.pid, fds)
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        sock.sendall(encode_req(NOTIFY, notify_success=True))


def _reap(proc: subprocess.Popen) -> None:
    """CRIU exits once its socket closes (a pre-dump's swrk waits for more requests until then)."""
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

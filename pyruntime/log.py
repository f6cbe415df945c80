"""Runtime logging: runc's --log/--log-format contract (JSON: one object per line with level, msg, time)."""

from __future__ import annotations

import os
import sys
import time

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_log_fd: int | None = None
_json = False
_threshold = _LEVELS["warning"]


def configure(path: str | None, fmt: str, debug: bool) -> None:
    global _log_fd, _json, _threshold
    _json = fmt == "json"
    _threshold = _LEVELS["debug"] if debug else _LEVELS["info"] if path else _LEVELS["warning"]
    if path:
        try:
            _log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            from .errors import RuntimeFailure

            raise RuntimeFailure(f"cannot open log file {path}: {(e.strerror or str(e)).lower()}") from None


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"


def _format(level: str, msg: str) -> str:
    if _json:
        from .fastjson import dumps

        return dumps({"level": level, "msg": msg, "time": _timestamp()}, compact=True) + "\n"  # as logrus
    quoted = msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")  # logrus quotes msg
    return f'time="{_timestamp()}" level={level} msg="{quoted}"\n'


def emit(level: str, msg: str) -> None:
    if _LEVELS[level] < _threshold:
        return
    line = _format(level, msg)
    if _log_fd is not None:
        try:
            os.write(_log_fd, line.encode())
        except OSError:
            pass
    elif level != "error":  # errors reach stderr through error(); others only when no log file
        sys.stderr.write(line)


def debug(msg: str) -> None:
    emit("debug", msg)


def debugging() -> bool:
    """Whether --debug is on: the forked children then report their steps to the runtime (channel
    messages {"debug": ...}), which logs them as its own lines, as runc's children do through its
    log pipe (the children write to no host fd themselves)."""
    return _threshold <= _LEVELS["debug"]


def info(msg: str) -> None:
    emit("info", msg)


def warning(msg: str) -> None:
    emit("warning", msg)


def error(msg: str) -> None:
    """A fatal error: one line on stderr (what a shell user and conmon read) and in --log."""
    emit("error", msg)
    try:
        sys.stderr.write(f"pyruntime: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass

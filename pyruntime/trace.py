"""PYRUNTIME_TRACE=<file>: timestamps of a call's phases, for `make bench`'s per-phase breakdown.

With the variable set, each runtime process appends one JSON line to the file when it exits:
{"argv", "pid", "exit", "marks": [[phase, CLOCK_MONOTONIC ns], ...], "cpu_ms": [own, waited-for
children], "modules": [sys.modules]}.
The container's init marks its own phases and sends them with its "ready" message (it cannot
open files after pivot_root). Without the variable, a mark is one comparison.
"""

from __future__ import annotations

import os
import time

FILE = os.environ.get("PYRUNTIME_TRACE") or None
MARKS: list[tuple[str, int]] = []


def mark(phase: str, at: int | None = None) -> None:
    if FILE is not None:
        MARKS.append((phase, time.monotonic_ns() if at is None else at))


def write(argv: list[str], code: int) -> None:
    if FILE is None:
        return
    import sys

    modules = sorted(sys.modules)  # the call's, before the two below (the import budget test reads it)
    import resource

    from .fastjson import dumps

    cpu = [round((r.ru_utime + r.ru_stime) * 1000, 3)
           for r in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))]
    line = dumps({"argv": argv, "pid": os.getpid(), "exit": code, "marks": MARKS, "cpu_ms": cpu,
                  "modules": modules}) + "\n"
    try:
        fd = os.open(FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError:
        pass

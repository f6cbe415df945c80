"""Signals sent to a foreground runtime (`run`, `exec`) go on to the container's process, as runc's do."""

from __future__ import annotations

import os
import signal

# Not forwarded: the uncatchable ones, our own child notifications, and the terminal's size (the
# terminal proxy handles SIGWINCH itself).
_FORWARDED = [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD,
                                                      signal.SIGURG, signal.SIGWINCH)]


def send(pid: int, signum: int) -> None:
    """Signal pid; a process that is already gone is not an error."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def forward_to(pid: int) -> None:
    for s in _FORWARDED:
        try:
            signal.signal(s, lambda signum, _frame: send(pid, signum))
        except (OSError, ValueError):
            pass

"""Signals sent to a foreground runtime (`run`, `exec`) go on to the container's process, as runc's do."""

from __future__ import annotations

import _signal  # the C module: signal.py imports enum (~4 ms)
import os

# Not forwarded: the uncatchable ones, our own child notifications, and the terminal's size (the
# terminal proxy handles SIGWINCH itself).
# signal.Signals' members are the SIG* names (not SIG_*), aliases once.
_FORWARDED = sorted({v for k, v in vars(_signal).items() if k.startswith("SIG") and not k.startswith("SIG_")
                     and isinstance(v, int)} - {_signal.SIGKILL, _signal.SIGSTOP, _signal.SIGCHLD, _signal.SIGURG,
                                                _signal.SIGWINCH})


def send(pid: int, signum: int) -> None:
    """Signal pid; a process that is already gone is not an error."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def forward_to(pid: int) -> None:
    for s in _FORWARDED:
        try:
            _signal.signal(s, lambda signum, _frame: send(pid, signum))
        except (OSError, ValueError):
            pass

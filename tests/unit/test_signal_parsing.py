"""Signal arguments of `kill`: names with or without SIG, any case, numbers; everything else refused."""

from __future__ import annotations

import signal

import pytest

from pyruntime.container import signal_number
from pyruntime.errors import RuntimeFailure


@pytest.mark.parametrize("arg, expected", [
    ("SIGTERM", signal.SIGTERM), ("TERM", signal.SIGTERM), ("term", signal.SIGTERM), ("sigterm", signal.SIGTERM),
    ("KILL", signal.SIGKILL), ("9", 9), ("15", 15), ("HUP", signal.SIGHUP), ("SIGUSR1", signal.SIGUSR1),
    ("USR2", signal.SIGUSR2), ("SIGWINCH", signal.SIGWINCH), ("STOP", signal.SIGSTOP), ("CONT", signal.SIGCONT),
    ("1", 1), ("0", 0), ("00", 0), (str(signal.NSIG - 1), signal.NSIG - 1), ("SIGRTMIN", signal.SIGRTMIN), ("RTMAX", signal.SIGRTMAX),
])
def test_valid_signals(arg, expected):
    assert signal_number(arg) == int(expected)


@pytest.mark.parametrize("arg", ["", "-1", "-9", "65", "999", str(signal.NSIG), "NOPE", "SIG", "SIGNOPE",
                                 "TERM1", "9x", " 9", "SIG_DFL", "SIG_IGN", "1.5", "0x9"])
def test_invalid_signals(arg):
    with pytest.raises(RuntimeFailure) as info:
        signal_number(arg)
    assert "invalid signal" in str(info.value)


def test_every_named_signal_round_trips():
    for sig in signal.Signals:
        if sig.name.startswith("SIG") and "_" not in sig.name:
            assert signal_number(sig.name) == int(sig)
            assert signal_number(sig.name[3:].lower()) == int(sig)
            assert signal_number(str(int(sig))) == int(sig)

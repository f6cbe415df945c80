"""Helpers shared by the attack tests (imported as `from _attack import ...`)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_config(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    config = json.loads((bundle / "config.json").read_text())
    edit(config)
    (bundle / "config.json").write_text(json.dumps(config))


def host_mounts_under(path: str | Path) -> list[str]:
    """Mount points of the host (this test process's mount namespace) at or below path."""
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == path or mp.startswith(path.rstrip("/") + "/"):
                found.append(mp)
    return found



def wait_file(path: Path, marker: str, timeout: float = 15.0) -> str:
    """Wait until a file written by a container contains marker; return its text."""
    import time

    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        if marker in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{path} never contained {marker!r}; it has:\n{text[-2000:]}")


def own_inodes(*rootfs: Path) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of every file in the container's own rootfs copies: writable handles on those
    are the container's business, on anything else an escape."""
    found = set()
    for top in rootfs:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                found.add((st.st_dev, st.st_ino))
    return found


def attack_findings(output: str, allowed: set[tuple[int, int]]) -> list[str]:
    """Lines of the attacker's scan that show an escape: a writable handle on a file that is not the
    container's own, or a write that went into the runtime's memfd."""
    bad = []
    for line in output.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in ("MEMFD-WRITTEN", "HOST-VISIBLE"):
            bad.append(line)
        elif words[0] in ("WRITABLE", "REOPENED-WRITABLE") and len(words) >= 4:
            target = " ".join(words[3:])
            if target.startswith("/memfd:"):
                continue  # judged by the real write attempt (MEMFD-WRITTEN)
            dev, _, ino = words[2].partition(":")
            if not (dev.isdigit() and ino.isdigit() and (int(dev), int(ino)) in allowed):
                bad.append(line)
    return bad


def has_command(name: str) -> bool:
    """Whether the runtime under test has a CLI command (some arrive with other issues)."""
    import subprocess
    import sys

    runtime = os.environ.get("PYRUNTIME_BIN") or os.path.join(os.path.dirname(sys.executable), "pyruntime")
    proc = subprocess.run([runtime, name, "--help"], capture_output=True, timeout=30)
    return proc.returncode == 0

"""Fixtures and helpers of the attack tier, imported by each test module (`from _attack import ...`):
a conftest.py here would shadow the shared tests/conftest.py when every tier runs together.

Every test here builds a malicious bundle or image and attacks for real. The autouse fixture
`host_untouched` fingerprints what an escape would go for (the host interpreter, libpython, the
runtime's own files) before and after each test and fails the test if anything changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ROOTFS = REPO / "bundles" / "busybox" / "rootfs"
RUNTIME = os.environ.get("PYRUNTIME_BIN") or str(Path(sys.executable).parent / "pyruntime")


def runtime_files() -> list[Path]:
    """The host files a container escape would overwrite: the interpreter the runtime runs on, its
    libpython, the runtime's own init stub, C extension and console script."""
    import pyruntime

    pkg = Path(pyruntime.__file__).resolve().parent
    files = [Path(os.path.realpath(sys.executable)), Path(os.path.realpath(RUNTIME)), pkg / "_initstub"]
    files += sorted(pkg.glob("_native*.so"))
    libdir = sysconfig.get_config_var("LIBDIR")
    ldlib = sysconfig.get_config_var("LDLIBRARY")
    if libdir and ldlib and (Path(libdir) / ldlib).is_file():
        files.append(Path(os.path.realpath(Path(libdir) / ldlib)))
    return files


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(paths: list[Path]) -> dict[str, tuple[str, int]]:
    out = {}
    for p in paths:
        st = p.stat()
        out[str(p)] = (sha256(p), st.st_mode)
    return out


@pytest.fixture(autouse=True)
def host_untouched() -> Iterator[None]:
    files = runtime_files()
    before = fingerprint(files)
    yield
    after = fingerprint(files)
    changed = [p for p in before if before[p] != after[p]]
    assert not changed, f"HOST FILES CHANGED BY THE ATTACK: {changed}"


@pytest.fixture(scope="session")
def attacker_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("attacker") / "attacker"
    subprocess.run(["cc", "-static", "-O1", "-Wall", "-Wno-format-truncation", "-o", str(out), str(HERE / "attacker.c")], check=True)
    return out


@pytest.fixture
def evil_rootfs(tmp_path: Path) -> Path:
    """A private, writable copy of the busybox rootfs (~2 MB) to plant things in."""
    dest = tmp_path / "evil-rootfs"
    subprocess.run(["cp", "-a", str(ROOTFS), str(dest)], check=True)
    return dest


@pytest.fixture
def userns_rootfs(evil_rootfs: Path) -> Iterator[Path]:
    """The evil rootfs moved where a user namespace's root can reach it (pytest's tmp is 0700)."""
    top = Path(tempfile.mkdtemp(prefix="prt-userns-", dir="/tmp"))
    top.chmod(0o755)
    dest = top / "rootfs"
    subprocess.run(["cp", "-a", str(evil_rootfs), str(dest)], check=True)
    yield dest
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def evil_bundle(make_bundle: Callable[..., Path], evil_rootfs: Path) -> Callable[..., Path]:
    """evil_bundle(args, edit=None, name=None): a bundle whose root is the private evil rootfs."""

    def make(args: list[str], edit: Callable[[dict[str, Any]], None] | None = None,
             name: str | None = None) -> Path:
        def edit_all(config: dict[str, Any]) -> None:
            config["root"] = {"path": str(evil_rootfs), "readonly": False}
            if edit:
                edit(config)

        return make_bundle(args, edit=edit_all, name=name)

    return make


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


def caps_mask(names: list[str]) -> int:
    from pyruntime.security.caps import CAPS

    return sum(1 << CAPS[n if n.startswith("CAP_") else "CAP_" + n] for n in names)


def over_privileged(output: str, bounding: list[str]) -> list[str]:
    """CAPPRM lines of the attacker's scan naming a process (the runtime's, while it sets a process
    up) with capabilities beyond the container's bounding set: one it could hijack with ptrace."""
    allowed = caps_mask(bounding)
    return [line for line in output.splitlines()
            if line.startswith("CAPPRM ") and int(line.split()[1], 16) & ~allowed]

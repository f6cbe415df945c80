"""Fixtures of the attack tier: hostile rootfs copies, a static attacker binary, host fingerprints.

Every test here builds a malicious bundle or image and attacks for real. The autouse fixture
`host_untouched` fingerprints what an escape would go for (the host interpreter, libpython, the
runtime's own files) before and after each test and fails the test if anything changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
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

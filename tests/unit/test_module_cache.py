"""The command line's module cache (__main__.MODULE_CACHE, written by launcher.write_module_cache):
modules come from it while their sources are unchanged, and from the normal import once one changes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyruntime
from pyruntime import launcher

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import pyruntime.__main__ as m
m._use_module_cache()
import pyruntime.state, pyruntime.cgroups.v1
for name in ("pyruntime.state", "pyruntime.cgroups", "pyruntime.cgroups.v1"):
    mod = sys.modules[name]
    print(name, type(mod.__spec__.loader).__name__, mod.__file__.startswith(sys.argv[1]))
"""


def _copy_package(tmp_path: Path) -> Path:
    pkg = tmp_path / "pyruntime"
    shutil.copytree(Path(pyruntime.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.bin"))
    launcher.write_module_cache(str(pkg))
    return pkg


def _loaders(tmp_path: Path) -> dict[str, tuple[str, str]]:
    out = subprocess.run([sys.executable, "-IS", "-c", PROBE, str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout
    return {name: (loader, inside) for name, loader, inside in (line.split() for line in out.splitlines())}


def test_modules_come_from_the_cache(tmp_path: Path) -> None:
    _copy_package(tmp_path)
    assert _loaders(tmp_path) == {"pyruntime.state": ("_ModuleCache", "True"),
                                  "pyruntime.cgroups": ("_ModuleCache", "True"),
                                  "pyruntime.cgroups.v1": ("_ModuleCache", "True")}


def test_a_changed_source_is_imported_normally(tmp_path: Path) -> None:
    pkg = _copy_package(tmp_path)
    state = pkg / "state.py"
    state.write_text(state.read_text() + "\nCHANGED = True\n")
    loaders = _loaders(tmp_path)
    assert loaders["pyruntime.state"] == ("SourceFileLoader", "True")
    assert loaders["pyruntime.cgroups.v1"] == ("_ModuleCache", "True")


def test_no_cache_file_means_the_normal_import(tmp_path: Path) -> None:
    pkg = _copy_package(tmp_path)
    (pkg / "_modules.bin").unlink()
    assert {loader for loader, _ in _loaders(tmp_path).values()} == {"SourceFileLoader"}

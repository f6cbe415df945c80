"""Write a faster `pyruntime` console script: `python -m pyruntime.launcher [BIN_DIR]` (run by `make`),
and the command-line table of the fast path (argtable.py -> pyruntime/_argtable.py).

pip's console script starts the interpreter with `site` (about 3-5 ms: site-packages scan, .pth files
such as setuptools' distutils hack) and without -I. The runtime is started several times per
container, so this one starts `python -IS` (isolated: no PYTHON* variables, no script directory on
sys.path; no site) and puts exactly the directories it needs on sys.path itself.
"""

from __future__ import annotations

import os
import sys
import sysconfig

import pyruntime

TEMPLATE = """#!{python} -IS
# Written by `python -m pyruntime.launcher` (see pyruntime/launcher.py); pip would write a slower one.
import sys
sys.path += {paths!r}
from pyruntime.__main__ import main
main()
"""


def paths() -> list[str]:
    """site-packages, and the source tree when pyruntime is installed in editable mode."""
    out: list[str] = []
    for p in (sysconfig.get_path("purelib"), sysconfig.get_path("platlib"),
              os.path.dirname(os.path.dirname(os.path.abspath(pyruntime.__file__)))):
        if p not in out:
            out.append(p)
    return out


def write(bin_dir: str) -> str:
    target = os.path.join(bin_dir, "pyruntime")
    python = os.path.join(bin_dir, os.path.basename(sys.executable))
    if not os.access(python, os.X_OK):
        python = sys.executable
    tmp = target + ".tmp"
    with open(tmp, "w") as f:
        f.write(TEMPLATE.format(python=python, paths=paths()))
    os.chmod(tmp, 0o755)
    os.rename(tmp, target)
    return target


def write_module_cache(pkg_dir: str | None = None) -> str:
    """Compile every module of the package into __main__.MODULE_CACHE (the format is described there)."""
    import marshal

    from .__main__ import MODULE_CACHE

    pkg_dir = pkg_dir or os.path.dirname(os.path.abspath(pyruntime.__file__))
    index: dict[str, tuple] = {}
    blobs: list[bytes] = []
    offset = 0
    for dirpath, dirnames, filenames in os.walk(pkg_dir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for filename in sorted(f for f in filenames if f.endswith(".py")):
            path = os.path.join(dirpath, filename)
            rel = os.path.relpath(path, pkg_dir)
            parts = ["pyruntime", *rel[:-3].split(os.sep)]
            is_pkg = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_pkg else parts)
            with open(path, "rb") as f:
                source = f.read()
            st = os.stat(path)
            blob = marshal.dumps(compile(source, path, "exec", dont_inherit=True))
            index[name] = (offset, len(blob), rel, is_pkg, st.st_size, st.st_mtime_ns)
            blobs.append(blob)
            offset += len(blob)
    head = marshal.dumps(index)
    target = os.path.join(pkg_dir, MODULE_CACHE)
    tmp = target + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(head).to_bytes(8, "little") + head + b"".join(blobs))
    os.rename(tmp, target)
    return target


if __name__ == "__main__":
    from . import argtable

    print(write(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(sys.executable)))
    print(argtable.write())
    print(write_module_cache())  # after the table: it is one of the modules

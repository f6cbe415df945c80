"""The init's optional modules (process/init.py: preload): imported by the runtime only for a config
that uses them, and everything the init and exec's children import in their functions is among them
(they refuse imports in the container). That each feature still works is the integration tests' job
(test_security_process.py, test_terminal.py, test_exec.py run a container with each)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pyruntime
from pyruntime.process import init

PKG = Path(pyruntime.__file__).parent
EVERY_FEATURE_PROCESS = {**{k: {} for k in init.OPTIONAL_BY_PROCESS_KEY}, "terminal": True}
EVERY_FEATURE_LINUX = {k: {} for k in init.OPTIONAL_BY_LINUX_KEY}
ALL_OPTIONAL = init.optional_modules(EVERY_FEATURE_PROCESS, EVERY_FEATURE_LINUX)
# The Python wrappers the C modules _socket and _prctl replace on these paths.
SLOW_WRAPPERS = {"socket", "prctl", "selectors"}

BARE = {"ociVersion": "1.3.0", "root": {"path": "rootfs"},
        "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "terminal": False,
                    "capabilities": {"bounding": ["CAP_KILL"]}, "noNewPrivileges": True},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}], "maskedPaths": ["/proc/kcore"]}}


def _loaded_after(code: str) -> list[str]:
    """The watched modules loaded by a fresh runtime interpreter after the create and exec paths'
    imports and `code`."""
    watched = sorted(ALL_OPTIONAL | SLOW_WRAPPERS)
    prog = ("import sys, json\n"
            "from pyruntime.__main__ import _defer_imports; _defer_imports()\n"
            "import pyruntime.cli, pyruntime.container, pyruntime.runner, pyruntime.exec_\n"
            "from pyruntime.process import init, setns_init, spawn, stub\n"
            "from pyruntime.rootfs import idmap\n"
            "from pyruntime.security import caps, validate\n"
            f"{code}\n"
            f"print(json.dumps([m for m in {watched!r} if m in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-I", "-c", prog], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_a_bare_config_imports_no_optional_module() -> None:
    assert _loaded_after(
        f"cfg = json.loads({json.dumps(BARE)!r})\n"
        "validate.check_config(cfg, {'pid': None, 'mount': None}, 'config.json')\n"
        "validate.check_process(cfg['process'], 'process.json')\n"
        "init.preload(cfg['process'], cfg['linux'])\n"
        "init.preload(cfg['process'], {'seccomp': None})  # exec's (setns_init.preload_for)") == []


def test_each_feature_preloads_its_module() -> None:
    assert len(ALL_OPTIONAL) == 8  # seccomp console lsm sched numa personality sysctl rlimits
    cases = [({k: v}, {}) for k, v in EVERY_FEATURE_PROCESS.items()]
    cases += [({}, {k: v}) for k, v in EVERY_FEATURE_LINUX.items()]
    for process, linux in cases:
        (name,) = init.optional_modules(process, linux)
        loaded = set(_loaded_after(f"init.preload({process!r}, {linux!r})")) - SLOW_WRAPPERS  # seccomp, console
        needs = {"pyruntime.security.numa": {"pyruntime.security.sched"}}.get(name, set())  # parse_cpu_list
        assert loaded == {name} | needs, (process, linux)
    assert init.optional_modules({"terminal": False, "oomScoreAdj": 0}, {}) == {"pyruntime.security.sched"}


def _function_imports(path: Path) -> set[str]:
    """Absolute names of the pyruntime modules a file imports inside its functions."""
    package = "pyruntime." + ".".join(path.relative_to(PKG).parent.parts)
    found = set()
    for fn in ast.walk(ast.parse(path.read_text())):
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom):
                base = package.rstrip(".").rsplit(".", node.level - 1)[0] if node.level else ""
                mod = ".".join(p for p in (base, node.module or "") if p)
                found.update(f"{mod}.{a.name}" if f"{mod}.{a.name}" in ALL_OPTIONAL else mod for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
    return found


def test_the_children_import_only_preloaded_modules() -> None:
    for rel in ("process/init.py", "process/setns_init.py"):
        path = PKG / rel
        assert _function_imports(path) <= ALL_OPTIONAL, rel
        top = {n.module or "" for n in ast.parse(path.read_text()).body if isinstance(n, ast.ImportFrom)}
        top |= {a.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.Import) for a in n.names}
        assert not top & SLOW_WRAPPERS, rel

"""The package's import graph: no cycles, and the command-line layers on top of the core (cli.py,
cgroup_cli.py -> commands.py <- fastcli.py -> core), never the reverse.

Read from the source with ast: every import, in functions too (they run later, but a cycle through
them is still a knot), except those under `if TYPE_CHECKING:` (never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pyruntime

PKG = Path(pyruntime.__file__).parent
COMMAND_LINE = {"pyruntime.cli", "pyruntime.cgroup_cli", "pyruntime.commands", "pyruntime.fastcli",
                "pyruntime.argtable", "pyruntime._argtable", "pyruntime.__main__", "pyruntime.launcher"}


def _name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p) for p in PKG.rglob("*.py")}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level:
        base = module.split(".")
        base = base if is_package else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    # `from package import submodule` depends on the submodule; `from module import name` on the module
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]


def _imports(path: Path, top_level_only: bool) -> set[str]:
    module, is_package = _name(path), path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                visit(node.orelse)  # typing-only imports do not run
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                found.update(_resolve(module, is_package, node))
            if top_level_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue  # runs when called, not when imported
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])
                elif isinstance(child, ast.excepthandler):
                    visit(child.body)

    visit(tree.body)
    return {m for m in found if m in MODULES and m != module}


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    return {_name(p): _imports(p, top_level_only) for p in PKG.rglob("*.py")}


def test_no_import_cycles() -> None:
    graph = _graph(top_level_only=False)
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                walk(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m)


def test_the_core_never_imports_the_command_line() -> None:
    graph = _graph(top_level_only=False)
    for module, imports in graph.items():
        if module in COMMAND_LINE:
            continue
        assert not imports & COMMAND_LINE, f"{module} imports {sorted(imports & COMMAND_LINE)}"
    assert "pyruntime.cli" not in graph["pyruntime.fastcli"] | graph["pyruntime.commands"]
    assert "pyruntime.cli" not in graph["pyruntime.cgroup_cli"]


LIBRARY = {"pyruntime.api", "pyruntime.pytest_plugin"}


def test_the_library_is_on_top_of_the_core_beside_the_command_line() -> None:
    """pyruntime.api calls the core (never the command line); nothing but the plugin imports it."""
    graph = _graph(top_level_only=False)
    assert not graph["pyruntime.api"] & COMMAND_LINE, sorted(graph["pyruntime.api"] & COMMAND_LINE)
    for module, imports in graph.items():
        if module not in LIBRARY:
            assert not imports & LIBRARY, f"{module} imports {sorted(imports & LIBRARY)}"


def test_import_pyruntime_stays_cheap() -> None:
    """`import pyruntime` (and the plugin, loaded by every pytest run) does not load the API."""
    import subprocess
    import sys

    code = ("import sys, pyruntime, pyruntime.pytest_plugin; "
            "print(sorted(m for m in sys.modules if m.startswith('pyruntime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    import ast

    assert ast.literal_eval(out) == ["pyruntime", "pyruntime.pytest_plugin"]

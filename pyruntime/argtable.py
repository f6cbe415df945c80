"""Generate pyruntime/_argtable.py, the command-line table fastcli.py parses with, from click's objects.

Run at install time (`python -I -m pyruntime.launcher`, the Makefile's setup step). Everything comes
from the click command tree in cli.py: a flag added there flows into the table at the next install,
and while the table is stale (its STAMP, the size and mtime of the modules that define the commands, does not
match) fastcli hands every call to click. A command or option the table cannot describe exactly
(a callback, an environment variable, a prompt, a count, --x/--no-x, nargs > 1, a type other than
text, choice or integer range...) is left out or marked, so calls using it go to click too.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import click

TABLE_MODULE = "_argtable.py"
PROG_NAME = "pyruntime"


def source_files() -> list[str]:
    """The files whose content the table depends on (relative to the package): those defining commands."""
    from . import cli

    mods = {cli.main.callback.__module__} | {c.callback.__module__ for c in cli.main.commands.values() if c.callback}
    pkg = os.path.dirname(os.path.abspath(cli.__file__))
    return sorted(os.path.relpath(os.path.abspath(sys.modules[m].__file__ or ""), pkg) for m in mods)


class Unsupported(Exception):
    """Something the fast parser cannot reproduce exactly: calls that need it go to click."""


def _value_type(param: click.Parameter) -> Any:
    import click

    t = param.type
    if isinstance(t, click.types.StringParamType | click.types.UnprocessedParamType):
        return None
    if isinstance(t, click.Choice):
        if not t.case_sensitive or not all(isinstance(c, str) for c in t.choices):
            raise Unsupported(f"{param.name}: choice")
        return ("choice", tuple(t.choices))
    if isinstance(t, click.IntRange):
        if t.clamp:
            raise Unsupported(f"{param.name}: clamped range")
        return ("int", t.min, t.max, t.min_open, t.max_open)
    if type(t) is click.types.IntParamType:
        return ("int", None, None, False, False)
    raise Unsupported(f"{param.name}: type {t!r}")


def _command(cmd: click.Command, name: str, parent: click.Context | None) -> dict[str, Any]:
    import click

    ctx = cmd.make_context(name, [], parent=parent, resilient_parsing=True)
    group = isinstance(cmd, click.Group)  # a group's extra args are its command's: expected
    if ctx.token_normalize_func is not None or ctx.ignore_unknown_options or (ctx.allow_extra_args and not group) \
            or ctx.auto_envvar_prefix or ctx.default_map:
        raise Unsupported(f"{name}: context settings")
    parser = cmd.make_parser(ctx)
    if parser._opt_prefixes != {"-", "--"}:
        raise Unsupported(f"{name}: option prefixes {parser._opt_prefixes}")
    opts: dict[str, dict[str, tuple[Any, ...]]] = {"long": {}, "short": {}}
    for kind, table in (("long", parser._long_opt), ("short", parser._short_opt)):
        for spelling, o in table.items():
            p = o.obj
            if p.is_eager or p.callback is not None:  # --help, --version: click's job
                opts[kind][spelling] = ("", "click", None, None)
                continue
            if p.envvar or getattr(p, "prompt", None) or not p.expose_value or o.nargs != 1 \
                    or getattr(p, "_flag_needs_value", False) or getattr(p, "deprecated", False):
                raise Unsupported(f"{name} {spelling}")
            if o.action in ("store", "append"):
                opts[kind][spelling] = (o.dest, o.action, None, _value_type(p))
            elif o.action == "store_const":
                # the value click stores for the flag, through the parameter's own conversion
                const = p.type_cast_value(ctx, o.const)
                opts[kind][spelling] = (o.dest, "const", const, None)
            else:
                raise Unsupported(f"{name} {spelling}: {o.action}")
    args = []
    for p in cmd.get_params(ctx):
        if isinstance(p, click.Argument):
            if p.nargs not in (1, -1) or p.envvar or not p.expose_value or p.callback is not None:
                raise Unsupported(f"{name} {p.name}")
            args.append((p.name, p.nargs, p.required, _value_type(p)))
    if any(n == -1 for _, n, _, _ in args[:-1]):
        raise Unsupported(f"{name}: a variadic argument before the last")
    defaults = dict(ctx.params)
    for pname, _nargs, required, _ in args:
        if required:
            defaults.pop(pname, None)
    return {"callback": cmd.callback.__name__ if cmd.callback else "", "opts": opts, "args": args,
            "defaults": defaults, "interspersed": ctx.allow_interspersed_args}


def build() -> dict[str, Any]:
    """The table: the group's (global) options and every command the fast path can parse exactly."""
    import click

    from . import cli

    group = cli.main
    gctx = group.make_context(PROG_NAME, [], resilient_parsing=True)
    table: dict[str, Any] = {"group": _command(group, PROG_NAME, None), "commands": {},
                             "complete_var": f"_{PROG_NAME.replace('-', '_')}_COMPLETE".upper(),
                             "skipped": {}}
    if group.chain or group.invoke_without_command or group.callback is None:
        raise Unsupported("group settings")
    for cname in sorted(group.list_commands(gctx)):
        cmd = group.get_command(gctx, cname)
        if cmd is None or getattr(cmd, "deprecated", False) or isinstance(cmd, click.Group):
            table["skipped"][cname] = "deprecated or group"
            continue
        try:
            table["commands"][cname] = _command(cmd, cname, gctx)
        except Unsupported as e:
            table["skipped"][cname] = str(e)
    return table


def write(pkg_dir: str | None = None) -> str:
    """Write <package>/_argtable.py atomically and compile it; return its path. TABLE is marshalled,
    and each command's entry in it once more (unmarshalling is far cheaper than running the code that
    builds the same literal, and a call unpacks the group and its own command only); `python -c
    "import pyruntime.fastcli as f; print(f.full_table())"` shows it."""
    import marshal
    import py_compile

    from . import cli
    from .fastcli import stamp

    pkg_dir = pkg_dir or os.path.dirname(os.path.abspath(cli.__file__))
    files = source_files()
    table = build()
    text = ('"""Generated by pyruntime/argtable.py from the click definitions (do not edit; `make` rewrites it)."""\n\n'
            f"SOURCES = {files!r}\nSTAMP = {stamp(pkg_dir, files)}\n"
            f"TABLE = {marshal.dumps(dict(table, commands={k: marshal.dumps(v) for k, v in table['commands'].items()}))!r}\n")
    target = os.path.join(pkg_dir, TABLE_MODULE)
    tmp = target + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, target)
    py_compile.compile(target, doraise=True)
    return target


if __name__ == "__main__":
    print(write(sys.argv[1] if len(sys.argv) > 1 else None))

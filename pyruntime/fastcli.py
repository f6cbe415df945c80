"""The fast command line: parse a well-formed call with the table generated from click's definitions
(argtable.py -> _argtable.py) and call the same functions click's commands call (commands.py).

Importing click (with typing, enum, re, inspect...) costs more than everything `state`, `start`, `kill`
or `delete` does, and a container costs several such calls. This parser reproduces click's parsing
(click.parser: long options with `=` or a separate value, short option clusters, `--`, options
after arguments where the command allows it, the last value winning, multiple options collecting)
for the calls it can parse exactly, and returns None for everything else: --help, --version, an
unknown option, a missing value or argument, a bad choice or number, a command it does not know,
a stale or missing table, a shell-completion request. Those go to click, whose messages users see.
tests/unit/test_fastcli.py checks that both parse every generated call alike.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Fallback(Exception):
    """This call is click's to handle."""


def stamp(pkg_dir: str, files: list[str]) -> list[list[int]]:
    """[size, mtime in ns] of each file the table was made from (argtable.py records it at
    generation): a changed definition of the command line makes the table stale. Two stats, where a
    checksum would read both files and import zlib on every call."""
    out = []
    for name in files:
        st = os.stat(os.path.join(pkg_dir, name))
        out.append([st.st_size, st.st_mtime_ns])
    return out


def load_table() -> dict[str, Any] | None:
    """The generated table if it matches the click definitions it was made from, else None."""
    try:
        from . import _argtable
    except ImportError:
        return None
    try:
        current = stamp(os.path.dirname(__file__), _argtable.SOURCES)
    except OSError:
        return None
    if current != _argtable.STAMP:
        return None
    import marshal

    return marshal.loads(_argtable.TABLE)


def _convert(value: str, vtype: Any) -> Any:
    if vtype is None:
        return value
    if vtype[0] == "choice":
        if value not in vtype[1]:
            raise _Fallback
        return value
    # ("int", min, max, min_open, max_open): plain ASCII decimal only; click's messages otherwise
    _, lo, hi, lo_open, hi_open = vtype
    digits = value[1:] if value[:1] == "-" else value
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        raise _Fallback
    n = int(value)
    if (lo is not None and (n < lo or (lo_open and n == lo))) or \
            (hi is not None and (n > hi or (hi_open and n == hi))):
        raise _Fallback
    return n


def _parse(spec: dict[str, Any], argv: list[str], group: bool) -> tuple[dict[str, Any], list[str]]:
    """click's Command.parse_args for one command (or the group): (params, what follows the group's
    options). Raises _Fallback for anything click would reject or that the table does not describe."""
    longs, shorts = spec["opts"]["long"], spec["opts"]["short"]
    interspersed = spec["interspersed"]
    given: dict[str, Any] = {}
    largs: list[str] = []
    rargs = list(argv)

    def take(spelling: str, entry: tuple[Any, ...], inline: str | None) -> None:
        dest, action, const, vtype = entry
        if action == "click":
            raise _Fallback
        if action == "const":
            if inline is not None:
                raise _Fallback  # "Option --x does not take a value."
            given[dest] = const
            return
        if inline is not None:
            value = inline
        elif rargs:
            value = rargs.pop(0)
        else:
            raise _Fallback  # "Option --x requires an argument."
        value = _convert(value, vtype)
        if action == "append":
            given.setdefault(dest, []).append(value)
        else:
            given[dest] = value

    while rargs:
        arg = rargs.pop(0)
        if arg == "--":
            break
        if arg[:1] == "-" and len(arg) > 1:
            name, eq, value = arg.partition("=")
            if name in longs:
                take(name, longs[name], value if eq else None)
            elif arg[:2] == "--":
                raise _Fallback  # "No such option" (with click's suggestions)
            else:  # a cluster of short options: -ab, -bVALUE
                for i in range(1, len(arg)):
                    entry = shorts.get("-" + arg[i])
                    if entry is None:
                        raise _Fallback
                    if entry[1] in ("store", "append"):
                        take(arg[:i + 1], entry, arg[i + 1:] if i + 1 < len(arg) else None)
                        break
                    take(arg[:i + 1], entry, None)
        elif interspersed:
            largs.append(arg)
        else:
            rargs.insert(0, arg)
            break
    positional = largs + rargs
    params = dict(spec["defaults"])
    for dest, value in given.items():
        params[dest] = tuple(value) if isinstance(value, list) else value
    if group:
        return params, positional
    for name, nargs, required, vtype in spec["args"]:
        if nargs == -1:
            params[name] = tuple(_convert(v, vtype) for v in positional)
            positional = []
        elif positional:
            params[name] = _convert(positional.pop(0), vtype)
        elif required:
            raise _Fallback  # "Missing argument"
    if positional:
        raise _Fallback  # "Got unexpected extra argument"
    return params, []


def _command_spec(table: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A command's entry: the installed table keeps each one marshalled (a call unpacks only its own)."""
    spec = table["commands"].get(name)
    if isinstance(spec, bytes):
        import marshal

        spec = table["commands"][name] = marshal.loads(spec)
    return spec


def full_table() -> dict[str, Any] | None:
    """The installed table with every command unpacked (for tests and for reading it)."""
    table = load_table()
    if table is not None:
        for name in table["commands"]:
            _command_spec(table, name)
    return table


def parse(argv: list[str], table: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(command, global params, command params) as click would pass them, or None: click's call."""
    try:
        gparams, rest = _parse(table["group"], argv, group=True)
        if not rest:
            return None  # no command: click prints the usage
        spec = _command_spec(table, rest[0])
        if spec is None:
            return None
        params, _ = _parse(spec, rest[1:], group=False)
    except _Fallback:
        return None
    return rest[0], gparams, params


def main(argv: list[str]) -> int | None:
    """Run the call if the table parses it exactly: its exit status; None if click must handle it."""
    table = load_table()
    if table is None or os.environ.get(table["complete_var"]):
        return None
    parsed = parse(argv, table)
    if parsed is None:
        return None
    name, gparams, params = parsed
    from . import commands, trace

    trace.mark("cli")
    func = getattr(commands, _command_spec(table, name)["callback"], None)
    if func is None:
        return None

    def call() -> int | None:
        g = commands.make_globals(**gparams)
        return func(g, **params)

    return commands.guarded(call, bool(gparams.get("debug")), name)

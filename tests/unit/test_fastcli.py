"""The fast command line (pyruntime/fastcli.py) against click, the one definition of the command line.

Property: on every generated argv the fast parser accepts, click calls the same command function
with the same values (and the same global flags); every argv click refuses, the fast parser hands
to click. And the calls only click can answer (--help, --version, typos, bad options) still get
click's own messages from the installed runtime.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyruntime import argtable, cli, commands, fastcli

TABLE = argtable.build()
RUNTIME = str(Path(sys.executable).parent / "pyruntime")

# Values that probe the parser: dashes, '=', empty, numbers in and out of range, odd digits.
TEXT = st.sampled_from(["x", "a b", "", "-", "--", "-x", "--x", "=", "a=b", "-b", "--bundle", "0", "1", "-1",
                        "+5", " 5", "5_0", "100000", "100001", "\u0663", "json", "table", "JSON", "true",
                        "auto", "false", "/tmp/b", "SIGKILL", "9"])
TYPOS = ["--nope", "-z", "--bundl", "--hel", "-", "--", "-bx", "--debug=1", "-hx", "-h", "--help", "-v", "--version"]


def _value(draw: Any, entry: tuple[Any, ...]) -> str:
    """Mostly a value the option's type accepts, sometimes any probe."""
    vtype = entry[3]
    if draw(st.integers(0, 4)) == 0:
        return draw(TEXT)
    if vtype and vtype[0] == "choice":
        return draw(st.sampled_from(vtype[1]))
    if vtype and vtype[0] == "int":
        return str(draw(st.integers(-1, 100001)))
    return draw(TEXT)


def _option_tokens(draw: Any, spec: dict[str, Any]) -> list[str]:
    """One option of the command in one of the forms click accepts (or a near miss)."""
    # --help, -h, --version, -v are click's (they are among the typos below)
    longs = {k: v for k, v in spec["opts"]["long"].items() if v[1] != "click"}
    shorts = {k: v for k, v in spec["opts"]["short"].items() if v[1] != "click"}
    kind = draw(st.sampled_from(["long", "long=", "short", "cluster"] * 3 + ["typo"]))
    if kind == "typo" or not longs:
        return [draw(st.sampled_from(TYPOS))]
    if kind in ("short", "cluster") and shorts:
        names = draw(st.lists(st.sampled_from(sorted(shorts)), min_size=1, max_size=3))
        if kind == "short":
            names = names[:1]
        token = "-" + "".join(n[1] for n in names)
        if shorts[names[-1]][1] in ("store", "append"):
            value = _value(draw, shorts[names[-1]])
            return [token, value] if draw(st.booleans()) else [token + value]
        return [token]
    name = draw(st.sampled_from(sorted(longs)))
    if longs[name][1] in ("store", "append"):
        value = _value(draw, longs[name])
        return [f"{name}={value}"] if kind == "long=" else [name, value]
    return [f"{name}=x"] if draw(st.integers(0, 9)) == 0 else [name]


@st.composite
def argvs(draw: Any) -> list[str]:
    argv: list[str] = []
    for _ in range(draw(st.integers(0, 3))):  # global flags
        argv += _option_tokens(draw, TABLE["group"])
    if draw(st.integers(0, 15)) == 0:
        argv.append("--")
    commands_ = sorted(TABLE["commands"]) * 4 + ["stat", "ps", "nope"]
    name = draw(st.sampled_from(commands_))
    argv.append(name)
    spec = TABLE["commands"].get(name, TABLE["commands"]["state"])
    words = []
    for _ in range(draw(st.integers(0, 4))):
        words.append(_option_tokens(draw, spec))
    word = st.sampled_from(["c1", "c-2", "x", "KILL", "-", "ls"])
    positional = []
    for _pname, nargs, required, _ in spec["args"]:  # mostly what the command takes, sometimes not
        count = draw(st.integers(0, 2)) if nargs == -1 else 1 if required else draw(st.integers(0, 1))
        positional += [[draw(word)] for _ in range(count)]
    if draw(st.integers(0, 9)) == 0:
        positional = positional[1:] if draw(st.booleans()) else positional + [[draw(word)]]
    # options before, between and after the arguments; sometimes a "--" first
    order = draw(st.permutations(words + positional))
    for i, tokens in enumerate(order):
        if draw(st.integers(0, 12)) == 0:
            argv.append("--")
        argv += tokens
        if i == 0 and draw(st.integers(0, 5)) == 0:
            argv += draw(st.lists(TEXT, max_size=2))
    return argv


def _click_call(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict, dict] | None:
    """What click calls for argv: (commands function, globals, params), or None if it refuses it."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(commands, "make_globals", lambda **kw: dict(kw))

    def recorder(fname: str) -> Any:
        def record(g: dict, **kw: Any) -> None:
            seen.update(func=fname, g=g, params=kw)
        return record

    for cmd in cli.main.commands.values():
        monkeypatch.setattr(commands, cmd.callback.__name__, recorder(cmd.callback.__name__))
    try:
        cli.main.main(args=list(argv), standalone_mode=False, prog_name="pyruntime")
    except (click.UsageError, click.exceptions.Exit, click.exceptions.Abort):
        return None
    if not seen:
        return None
    return seen["func"], seen["g"], seen["params"]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=argvs())
def test_fast_path_agrees_with_click(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fast = fastcli.parse(argv, TABLE)
    with monkeypatch.context() as m:
        slow = _click_call(argv, m)
    if fast is None:
        return  # click's call (it may succeed or fail: either way click answers)
    assert slow is not None, f"fast path accepted what click refuses: {argv}"
    name, gparams, params = fast
    assert (TABLE["commands"][name]["callback"], gparams, params) == slow, argv


def test_fixed_calls_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The calls podman, conmon and containerd's shim make, and the forms users type."""
    calls = [
        ["--root", "/r", "--log", "/l", "--log-format=json", "create", "--bundle", "/b", "--pid-file", "/p", "c"],
        ["--systemd-cgroup", "create", "-b", "/b", "--console-socket=/s", "--no-pivot", "c"],
        ["state", "c"], ["start", "c"], ["kill", "c", "9"], ["kill", "-a", "c"], ["kill", "c"],
        ["delete", "--force", "c"], ["delete", "-f", "c"], ["delete", "c", "-f"],
        ["exec", "--process", "/p.json", "--detach", "--pid-file", "/p", "c"],
        ["exec", "-t", "-d", "--console-socket", "/s", "--process", "/p", "c"],
        ["exec", "-dt", "-e", "A=1", "-eB=2", "--env=C=3", "c", "ls", "-la", "--", "-x"],
        ["exec", "c", "--", "sh", "-c", "true"], ["exec", "-u", "0:0", "--cap", "CAP_KILL", "c", "id"],
        ["run", "-d", "--bundle", "/b", "c"], ["run", "--keep", "--preserve-fds", "2", "c"],
        ["--debug", "--rootless", "false", "list", "-q"], ["list", "--format", "json"], ["list", "-fjson"],
        ["pause", "c"], ["resume", "c"], ["features"], ["spec", "-b", "/b", "--rootless"],
        ["update", "--memory", "1g", "--pids-limit=10", "c"], ["events", "--stats", "c"],
        ["--", "state", "c"], ["state", "--", "-c"], ["create", "c", "--bundle", "/b"],
    ]
    for argv in calls:
        fast = fastcli.parse(argv, TABLE)
        assert fast is not None, argv
        with monkeypatch.context() as m:
            slow = _click_call(argv, m)
        assert (TABLE["commands"][fast[0]]["callback"], fast[1], fast[2]) == slow, argv


@pytest.mark.parametrize("argv", [
    ["--help"], ["-h"], ["state", "--help"], ["create", "-h"], ["--version"], ["-v"], [],
    ["stat", "c"], ["state"], ["state", "c", "d"], ["create", "--bundel", "/b", "c"], ["create", "-z", "c"],
    ["list", "--format", "yaml"], ["run", "--preserve-fds", "-1", "c"], ["run", "--preserve-fds", "x", "c"],
    ["--log-format", "xml", "state", "c"], ["delete", "--force=1", "c"], ["create", "c", "--bundle"],
    ["ps", "c"], ["--nope", "state", "c"],
])
def test_click_answers_the_rest(argv: list[str]) -> None:
    """Help, version and every mistake go to click: the fast parser declines, and the installed
    runtime prints exactly what the click path prints (its message, its exit status)."""
    assert fastcli.parse(argv, TABLE) is None
    click_only = ("import sys; from pyruntime.__main__ import _defer_imports; _defer_imports(); "
                  "from pyruntime.cli import entry; sys.stdout.flush(); rc = entry(); sys.stdout.flush(); sys.exit(rc)")
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": "/nonexistent-pyruntime-test"}
    want = subprocess.run([sys.executable, "-I", "-c", click_only, *argv], capture_output=True, text=True, env=env)
    got = subprocess.run([RUNTIME, *argv], capture_output=True, text=True, env=env)
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)


def test_stale_or_missing_table_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyruntime import _argtable  # generated by the launcher step (make setup)

    assert _argtable.SOURCES == argtable.source_files()
    assert fastcli.full_table() == TABLE, "the installed table is not the one click's definitions give"
    monkeypatch.setattr(_argtable, "STAMP", [[size + 1, mtime] for size, mtime in _argtable.STAMP])  # cli.py changed
    assert fastcli.load_table() is None
    monkeypatch.setitem(sys.modules, "pyruntime._argtable", None)  # not generated
    assert fastcli.load_table() is None
    assert fastcli.main(["state", "x"]) is None


def test_table_is_derived_from_click() -> None:
    """Every click command is in the table unless it needs what the table cannot express (ps takes
    unknown options); every option spelling click knows is there."""
    ctx = cli.main.make_context("pyruntime", [], resilient_parsing=True)
    assert set(TABLE["commands"]) | set(TABLE["skipped"]) == set(cli.main.list_commands(ctx))
    assert set(TABLE["skipped"]) == {"ps"}
    for name, spec in TABLE["commands"].items():
        cmd = cli.main.get_command(ctx, name)
        spellings = {o for p in cmd.get_params(ctx) if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}
        assert spellings == set(spec["opts"]["long"]) | set(spec["opts"]["short"]), name
        assert hasattr(commands, spec["callback"]), name

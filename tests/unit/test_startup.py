"""Start-up shortcuts (pyruntime/__main__.py, pyruntime/launcher.py): structural checks, no timings.

The placeholders must give the same answers as the modules they stand in for, load the real module
on any other use, and the modules of create/run/start must not pull the heavy ones back in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _run(code: str) -> str:
    prelude = "import sys, json; from pyruntime.__main__ import _defer_imports; _defer_imports(); "
    return subprocess.run([sys.executable, "-I", "-c", prelude + code], capture_output=True, text=True,
                          check=True).stdout


def test_placeholders_answer_like_the_real_modules() -> None:
    out = json.loads(_run(
        "import inspect, platform, datetime, gettext, _datetime; "
        "docs = ['  a\\n    b\\n  c\\n\\n', '\\n\\n  x', 'one', '', '\\t a\\n\\t\\tb', 'x\\n   \\n y']; "
        "mine = [inspect.cleandoc(d) for d in docs]; "
        "answers = [mine, platform.system(), datetime.datetime is _datetime.datetime, "
        "gettext.gettext('Usage:'), gettext.ngettext('a', 'b', 1), gettext.ngettext('a', 'b', 2)]; "
        "loaded = [type(sys.modules[m]).__name__ for m in ('inspect', 'platform', 'datetime', 'gettext')]; "
        "inspect.isfunction(len); platform.machine(); datetime.date.today(); gettext.translation; "
        "real = [type(sys.modules[m]).__name__ for m in ('inspect', 'platform', 'datetime', 'gettext')]; "
        "import inspect as i2, platform as p2; "
        "print(json.dumps([answers, loaded, real, [i2.cleandoc(d) for d in docs], p2.system()]))"))
    answers, loaded, real, real_cleandoc, real_system = out
    assert loaded == ["Deferred"] * 4
    assert real == ["module"] * 4  # any other attribute loads the real module
    assert answers[0] == real_cleandoc
    assert answers[1] == real_system == os.uname().sysname
    assert answers[2:] == [True, "Usage:", "a", "b"]


def test_create_path_does_not_load_heavy_modules() -> None:
    out = _run("import pyruntime.cli, pyruntime.container, pyruntime.runner, pyruntime.process.spawn; "
               "print(json.dumps({m: type(sys.modules[m]).__name__ if m in sys.modules else None "
               "for m in ('inspect', 'dataclasses', 'platform', 'datetime', 'gettext', 'ast', 'locale')}))")
    assert json.loads(out) == {"inspect": "Deferred", "dataclasses": None, "platform": "Deferred",
                               "datetime": "Deferred", "gettext": "Deferred", "ast": None, "locale": None}


def test_help_still_works() -> None:
    """--help needs the real inspect and gettext: the placeholders must step aside."""
    out = subprocess.run([sys.executable, "-I", "-m", "pyruntime", "create", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "Usage: pyruntime create" in out and "--bundle" in out


def test_launcher_script(tmp_path: Path) -> None:
    from pyruntime import launcher

    python = tmp_path / os.path.basename(sys.executable)
    python.symlink_to(sys.executable)
    script = Path(launcher.write(str(tmp_path)))
    first = script.read_text().splitlines()[0]
    assert first == f"#!{python} -IS"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "/nonexistent"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("pyruntime version")

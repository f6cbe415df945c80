"""`python -m pyruntime` and the `pyruntime` console script."""

import os
import sys


def main() -> None:
    # The runtime never honours PYTHON* variables from its environment (PYTHONPATH could make it import
    # code it does not own): re-execute isolated if any is set. The common case pays nothing.
    if not sys.flags.isolated and any(k.startswith("PYTHON") for k in os.environ):
        os.execv(sys.executable, [sys.executable, "-I", "-m", "pyruntime", *sys.argv[1:]])
    _defer_inspect()
    from .cli import entry

    try:
        entry()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        if not isinstance(e.code, int | None):
            sys.stderr.write(f"{e.code}\n")
    # Skip the interpreter's teardown (finalising every module costs ~5 ms per call): by now every
    # command has closed its files, so only the standard streams need flushing.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _defer_inspect() -> None:
    """click and dataclasses import `inspect` (with ast, dis, tokenize: ~8 ms) but only click's
    option help calls it on every run (cleandoc, reproduced below); help output and undocumented
    dataclasses need more: stand in a placeholder that loads the real module on first other use."""
    if "inspect" in sys.modules:
        return

    class Deferred(type(sys)):
        def __getattr__(self, name: str):  # noqa: ANN204
            del sys.modules["inspect"]
            import inspect as real

            self.__dict__.update(real.__dict__)
            return getattr(real, name)

    placeholder = Deferred("inspect")
    placeholder.cleandoc = _cleandoc
    sys.modules["inspect"] = placeholder


def _cleandoc(doc: str) -> str:
    """inspect.cleandoc: drop the common indentation of lines 2+ and the blank lines around."""
    lines = doc.expandtabs().split("\n")
    margin = min((len(ln) - len(ln.lstrip()) for ln in lines[1:] if ln.lstrip()), default=sys.maxsize)
    lines[0] = lines[0].lstrip()
    if margin < sys.maxsize:
        lines[1:] = [ln[margin:] for ln in lines[1:]]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


if __name__ == "__main__":
    main()

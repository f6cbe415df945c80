"""`python -m pyruntime` and the `pyruntime` console script."""

import gc
import os
import sys

# The package's compiled modules in one file, written at install time by the launcher step (see
# launcher.write_module_cache): an 8-byte little-endian length N, a marshalled index {module name:
# (offset, length, path relative to the package, is a package, source size, source mtime in ns)} of
# N bytes, then each module's marshalled code object (offsets count from the end of the index).
MODULE_CACHE = "_modules.bin"


def main() -> None:
    # Collecting cycles every 700 allocations costs ~2 ms of the imports of a command that lives for
    # milliseconds; a rarer collection still bounds what a long-lived command (run, events) could hold.
    gc.set_threshold(50_000)
    # `from __future__ import annotations` is a compiler directive, but at run time it is also an
    # import of __future__.py (~0.4 ms, a tenth of what `kill` does): the runtime's modules only need
    # the name to exist. Anything else asked of __future__ loads the real module (see _defer).
    _defer("__future__", annotations=None)
    _use_module_cache()
    from . import trace

    trace.mark("main")
    # The runtime never honours PYTHON* variables from its environment (PYTHONPATH could make it import
    # code it does not own): re-execute isolated if any is set. The common case pays nothing.
    if not sys.flags.isolated and any(k.startswith("PYTHON") for k in os.environ):
        os.execv(sys.executable, [sys.executable, "-I", "-m", "pyruntime", *sys.argv[1:]])
    try:
        # A well-formed call never imports click (fastcli.py); --help, mistakes and the rest go to click.
        from .fastcli import main as fast_main

        code = fast_main(sys.argv[1:])
        if code is None:
            _defer_imports()
            from .cli import entry

            code = entry()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        if not isinstance(e.code, int | None):
            sys.stderr.write(f"{e.code}\n")
    trace.mark("exit")
    trace.write(sys.argv[1:], code)
    # Skip the interpreter's teardown (finalising every module costs ~5 ms per call): by now every
    # command has closed its files, so only the standard streams need flushing.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


class _ModuleCache:
    """A meta path finder for the package's own modules, from MODULE_CACHE: each import of a module
    through the path finder costs ~0.2 M instructions (a directory scan, stats, opening the .pyc,
    importlib's Python code) before its code even runs, and a `kill` imports a dozen of them, a
    `create` fifty. Here it is a dictionary lookup, one stat (a module whose source changed since
    the cache was written is left to the normal import) and one read. Only the command line uses it
    (installed by main); the init's import barrier (process/init.py) stands in front of it."""

    def __init__(self, path: str, index: dict[str, tuple], base: int) -> None:
        self.path, self.index, self.base, self.pkg = path, index, base, os.path.dirname(path)

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        entry = self.index.get(name)
        if entry is None:
            return None
        _offset, _length, rel, is_pkg, size, mtime_ns = entry
        origin = os.path.join(self.pkg, rel)
        try:
            st = os.stat(origin)
        except OSError:
            return None
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            return None
        from _frozen_importlib import ModuleSpec

        spec = ModuleSpec(name, self, origin=origin, is_package=is_pkg)
        spec.has_location = True
        if is_pkg:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        return spec

    @staticmethod
    def create_module(spec: object) -> None:
        return None

    def exec_module(self, module: object) -> None:
        import marshal

        offset, length = self.index[module.__name__][:2]
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            code = marshal.loads(os.pread(fd, length, self.base + offset))
        finally:
            os.close(fd)
        exec(code, module.__dict__)


def _use_module_cache() -> None:
    import marshal

    path = os.path.join(os.path.dirname(__file__), MODULE_CACHE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # not written (a plain pip install): the normal import
    try:
        size = int.from_bytes(os.pread(fd, 8, 0), "little")
        index = marshal.loads(os.pread(fd, size, 8))
    except (OSError, ValueError, EOFError, TypeError):
        return
    finally:
        os.close(fd)
    sys.meta_path.insert(0, _ModuleCache(path, index, 8 + size))


def _defer_imports() -> None:
    """Modules click imports but, on a runtime command, uses for one cheap thing or not at all: each
    is replaced by a placeholder that provides that thing and loads the real module on any other use.
    - inspect (~8 ms with ast, dis, tokenize): click only calls cleandoc on option help (reproduced).
    - platform (~1.5 ms): uuid calls platform.system() at import (os.uname() is the same on Linux).
    - datetime (~1.2 ms): click.types needs the class, which the C module _datetime is.
    - gettext (+ locale, ~2 ms): click marks its messages for translation; with no catalogue (there
      is none for click) gettext returns the message itself.
    """
    import _datetime

    _defer("inspect", cleandoc=_cleandoc)
    _defer("platform", system=lambda: os.uname().sysname)
    _defer("datetime", datetime=_datetime.datetime)
    _defer("gettext", gettext=lambda message: message,
           ngettext=lambda singular, plural, n: singular if n == 1 else plural)


def _defer(module: str, **provided: object) -> None:
    if module in sys.modules:
        return

    class Deferred(type(sys)):
        def __getattr__(self, name: str):  # noqa: ANN204
            if name == "__path__":  # `from m import x` asks whether m is a package: none of these is
                raise AttributeError(name)
            if sys.modules.get(module) is self:
                del sys.modules[module]
            try:
                real = __import__(module)
            except BaseException:  # e.g. in the init after pivot_root, where every import is refused
                sys.modules.setdefault(module, self)
                raise
            self.__dict__.update(real.__dict__)
            return getattr(real, name)

    placeholder = Deferred(module)
    placeholder.__dict__.update(provided)
    sys.modules[module] = placeholder


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

"""`python -m pyruntime` and the `pyruntime` console script."""

import os
import sys


def main() -> None:
    # The runtime never honours PYTHON* variables from its environment (PYTHONPATH could make it import
    # code it does not own): re-execute isolated if any is set. The common case pays nothing.
    if not sys.flags.isolated and any(k.startswith("PYTHON") for k in os.environ):
        os.execv(sys.executable, [sys.executable, "-I", "-m", "pyruntime", *sys.argv[1:]])
    from .cli import entry

    entry()


if __name__ == "__main__":
    main()

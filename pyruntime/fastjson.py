"""JSON through the C module `_json` alone, with exactly the json module's results.

`import json` costs ~7 ms of a runtime call: json.decoder and json.encoder import `re` (and re imports
enum, functools, collections...) for regular expressions that `_json` does not need. This module
parses with `_json.make_scanner` and writes with `_json.make_encoder` / `encode_basestring_ascii`, the
same C code json uses. Anything unusual (a syntax error, a BOM, bytes that are not UTF-8) is handed to
the real json module, so error messages and exceptions (json.JSONDecodeError, with line and column)
stay exactly json's; only the well-formed case is fast.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"  # json's whitespace (json.decoder.WHITESPACE)
_NAN, _INF = float("nan"), float("inf")
_CONSTANTS = {"-Infinity": -_INF, "Infinity": _INF, "NaN": _NAN}


class _Context:
    """What _json.make_scanner reads from a json.JSONDecoder (strict, no hooks)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_Context())


def loads(data: str | bytes) -> Any:
    """json.loads(data): the same object, or the same exception (from json itself)."""
    try:
        s = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        if s[:1] != "\ufeff":  # json refuses a BOM in a str with its own message
            start = len(s) - len(s.lstrip(_WS))
            obj, end = _scan(s, start)
            if not s[end:].strip(_WS):
                return obj
    except (StopIteration, ValueError, SystemError):
        # ValueError: JSONDecodeError or UnicodeDecodeError. SystemError: _json raises JSONDecodeError
        # only once json.decoder is imported (it does not import it), else a NULL without an exception.
        pass
    import json  # the unusual case: json's own answer (message, line, column) or result

    return json.loads(data)


def copy(obj: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): what copy.deepcopy does, without its import."""
    if isinstance(obj, dict):
        return {k: copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [copy(v) for v in obj]
    return obj


def _not_serializable(o: Any) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


# json.dumps(o) and json.dumps(o, separators=(",", ":")): the C encoder json itself uses for them.
_default = _json.make_encoder({}, _not_serializable, _json.encode_basestring_ascii, None, ": ", ", ",
                              False, False, True)
_compact = _json.make_encoder({}, _not_serializable, _json.encode_basestring_ascii, None, ":", ",",
                              False, False, True)
_str = _json.encode_basestring_ascii


def dumps(obj: Any, compact: bool = False) -> str:
    """json.dumps(obj), or json.dumps(obj, separators=(",", ":")) with compact."""
    return "".join((_compact if compact else _default)(obj, 0))


def dumps_indented(obj: Any) -> str:
    """json.dumps(obj, indent=2): json's C encoder cannot indent (in 3.11), and its Python one needs re."""
    out: list[str] = []
    _indented(obj, 0, out)
    return "".join(out)


def _float(o: float) -> str:
    if o != o:
        return "NaN"
    if o == _INF:
        return "Infinity"
    if o == -_INF:
        return "-Infinity"
    return float.__repr__(o)


def _scalar(o: Any) -> str | None:
    if isinstance(o, str):
        return _str(o)
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        return _float(o)
    return None


def _key(k: Any) -> str:
    if isinstance(k, str):
        return _str(k)
    if isinstance(k, float):
        return _str(_float(k))
    if k is True or k is False or k is None:
        return '"' + ("true" if k is True else "false" if k is False else "null") + '"'
    if isinstance(k, int):
        return '"' + int.__repr__(k) + '"'
    raise TypeError(f"keys must be str, int, float, bool or None, not {k.__class__.__name__}")


def _indented(o: Any, level: int, out: list[str]) -> None:
    s = _scalar(o)
    if s is not None:
        out.append(s)
        return
    if isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        inner = "\n" + "  " * (level + 1)
        first = True
        for k, v in o.items():
            out.append(("{" if first else ",") + inner + _key(k) + ": ")
            first = False
            _indented(v, level + 1, out)
        out.append("\n" + "  " * level + "}")
    elif isinstance(o, list | tuple):
        if not o:
            out.append("[]")
            return
        inner = "\n" + "  " * (level + 1)
        for i, v in enumerate(o):
            out.append(("[" if i == 0 else ",") + inner)
            _indented(v, level + 1, out)
        out.append("\n" + "  " * level + "]")
    else:
        _not_serializable(o)

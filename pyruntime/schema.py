"""A small structural validator for config.json: types, ranges and required fields, with JSON paths.

Hostile input is the normal case: every string is checked for NUL bytes (the kernel would truncate it)
and every integer for the range of the kernel type it ends up in, so later code can trust the shapes.
"""

from __future__ import annotations

from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Int:
    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi


U16, U32, U64 = Int(0, 2**16 - 1), Int(0, 2**32 - 1), Int(0, 2**64 - 1)
I32, I64 = Int(-(2**31), 2**31 - 1), Int(-(2**63), 2**63 - 1)


class ListOf:
    def __init__(self, item: Any, max_len: int = 100_000) -> None:
        self.item, self.max_len = item, max_len


class MapOf:
    def __init__(self, value: Any) -> None:
        self.value = value


class Obj:
    """An object; keys ending in '!' are required. Unknown keys are allowed (the spec says so)."""

    def __init__(self, **fields: Any) -> None:
        self.required = {k.rstrip("!") for k in fields if k.endswith("!")}
        self.fields = {k.rstrip("!"): v for k, v in fields.items()}


Anything = object()
_TYPE_WORDS = {str: "a string", bool: "a boolean", dict: "an object", list: "an array"}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate(value: Any, schema: Any, file: str, path: str = "") -> None:
    """Raise ConfigError naming file and JSON path for the first thing in value that schema rejects."""
    if schema is Anything:
        return
    if schema is str:
        if not isinstance(value, str):
            raise ConfigError(file, path, f"expected a string, got {_describe(value)}")
        if "\x00" in value:
            raise ConfigError(file, path, "string contains a NUL byte")
        if not value.isascii():
            _check_utf8(value, file, path)
    elif schema is bool:
        if not isinstance(value, bool):
            raise ConfigError(file, path, f"expected a boolean, got {_describe(value)}")
    elif isinstance(schema, Int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(file, path, f"expected an integer, got {_describe(value)}")
        if not schema.lo <= value <= schema.hi:
            raise ConfigError(file, path, f"{value} is out of range {schema.lo}..{schema.hi}")
    elif isinstance(schema, ListOf):
        if not isinstance(value, list):
            raise ConfigError(file, path, f"expected an array, got {_describe(value)}")
        if len(value) > schema.max_len:
            raise ConfigError(file, path, f"too many entries ({len(value)} > {schema.max_len})")
        for i, item in enumerate(value):
            validate(item, schema.item, file, f"{path}[{i}]")
    elif isinstance(schema, MapOf):
        if not isinstance(value, dict):
            raise ConfigError(file, path, f"expected an object, got {_describe(value)}")
        for key, item in value.items():
            if "\x00" in key:
                raise ConfigError(file, path, "key contains a NUL byte")
            if not key.isascii():
                _check_utf8(key, file, path)
            validate(item, schema.value, file, _join(path, key))
    elif isinstance(schema, Obj):
        if not isinstance(value, dict):
            raise ConfigError(file, path, f"expected an object, got {_describe(value)}")
        for key in schema.required:
            if key not in value:
                raise ConfigError(file, _join(path, key), "required field is missing")
            if value[key] is None:  # null would pass as "absent" below, yet code relies on it
                raise ConfigError(file, _join(path, key), "required field is null")
        for key, sub in schema.fields.items():
            if key in value and value[key] is not None:
                validate(value[key], sub, file, _join(path, key))
    else:  # pragma: no cover - a schema bug, not input
        raise TypeError(f"bad schema node {schema!r}")


def _check_utf8(value: str, file: str, path: str) -> None:
    """A JSON escape like \\udcff decodes to a lone surrogate that no UTF-8 file name, argument or
    cgroup can hold (the OS layer would turn it into a raw byte or fail with a traceback)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ConfigError(file, path, f"invalid Unicode (lone surrogate) at character {e.start}") from None


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction"
    return _TYPE_WORDS.get(type(value), type(value).__name__)


_IDMAP = Obj(**{"containerID!": U32, "hostID!": U32, "size!": U32})
_HOOK = Obj(**{"path!": str, "args": ListOf(str), "env": ListOf(str), "timeout": Int(1, 2**31 - 1)})
_HOOKS = ListOf(_HOOK, 1000)
_DEVICE_RULE = Obj(**{"allow!": bool, "type": str, "major": I64, "minor": I64, "access": str})
_THROTTLE = ListOf(Obj(**{"major!": I64, "minor!": I64, "rate!": U64}))

RESOURCES = Obj(
    devices=ListOf(_DEVICE_RULE),
    memory=Obj(limit=I64, reservation=I64, swap=I64, kernel=I64, kernelTCP=I64, swappiness=U64,
               disableOOMKiller=bool, useHierarchy=bool, checkBeforeUpdate=bool),
    cpu=Obj(shares=U64, quota=I64, burst=U64, period=U64, realtimeRuntime=I64, realtimePeriod=U64,
            cpus=str, mems=str, idle=I64),
    pids=Obj(**{"limit!": I64}),
    blockIO=Obj(weight=U16, leafWeight=U16,
                weightDevice=ListOf(Obj(**{"major!": I64, "minor!": I64, "weight": U16, "leafWeight": U16})),
                throttleReadBpsDevice=_THROTTLE, throttleWriteBpsDevice=_THROTTLE,
                throttleReadIOPSDevice=_THROTTLE, throttleWriteIOPSDevice=_THROTTLE),
    hugepageLimits=ListOf(Obj(**{"pageSize!": str, "limit!": U64})),
    network=Obj(classID=U32, priorities=ListOf(Obj(**{"name!": str, "priority!": U32}))),
    rdma=MapOf(Obj(hcaHandles=U32, hcaObjects=U32)),
    unified=MapOf(str),
)

SECCOMP = Obj(**{
    "defaultAction!": str, "defaultErrnoRet": U32, "architectures": ListOf(str), "flags": ListOf(str),
    "listenerPath": str, "listenerMetadata": str,
    "syscalls": ListOf(Obj(**{
        "names!": ListOf(str), "action!": str, "errnoRet": U32,
        "args": ListOf(Obj(**{"index!": Int(0, 5), "value!": U64, "valueTwo": U64, "op!": str}), 6),
    })),
})

PROCESS = Obj(**{
    "terminal": bool,
    "consoleSize": Obj(**{"height!": U16, "width!": U16}),
    "cwd!": str,
    "env": ListOf(str),
    "args": ListOf(str),
    "commandLine": str,
    "user": Obj(**{"uid!": U32, "gid!": U32, "umask": U32, "additionalGids": ListOf(U32, 65536), "username": str}),
    "capabilities": Obj(bounding=ListOf(str), effective=ListOf(str), inheritable=ListOf(str),
                        permitted=ListOf(str), ambient=ListOf(str)),
    "rlimits": ListOf(Obj(**{"type!": str, "soft!": U64, "hard!": U64})),
    "noNewPrivileges": bool,
    "apparmorProfile": str,
    "oomScoreAdj": Int(-1000, 1000),
    "selinuxLabel": str,
    "scheduler": Obj(**{"policy!": str, "nice": Int(-20, 19), "priority": I32, "flags": ListOf(str),
                        "runtime": U64, "deadline": U64, "period": U64}),
    "ioPriority": Obj(**{"class!": str, "priority": Int(0, 7)}),
    "execCPUAffinity": Obj(initial=str, final=str),
})

CONFIG = Obj(**{
    "ociVersion!": str,
    "root": Obj(**{"path!": str, "readonly": bool}),
    "mounts": ListOf(Obj(**{"destination!": str, "source": str, "type": str, "options": ListOf(str),
                            "uidMappings": ListOf(_IDMAP), "gidMappings": ListOf(_IDMAP)}), 10_000),
    "process": PROCESS,
    "hostname": str,
    "domainname": str,
    "hooks": Obj(prestart=_HOOKS, createRuntime=_HOOKS, createContainer=_HOOKS, startContainer=_HOOKS,
                 poststart=_HOOKS, poststop=_HOOKS),
    "annotations": MapOf(str),
    "linux": Obj(
        namespaces=ListOf(Obj(**{"type!": str, "path": str}), 64),
        uidMappings=ListOf(_IDMAP, 340), gidMappings=ListOf(_IDMAP, 340),
        timeOffsets=MapOf(Obj(secs=I64, nanosecs=U32)),
        devices=ListOf(Obj(**{"type!": str, "path!": str, "major": I64, "minor": I64, "fileMode": U32,
                              "uid": U32, "gid": U32}), 10_000),
        netDevices=MapOf(Obj(name=str)),
        cgroupsPath=str,
        resources=RESOURCES,
        rootfsPropagation=str,
        seccomp=SECCOMP,
        sysctl=MapOf(str),
        maskedPaths=ListOf(str, 10_000),
        readonlyPaths=ListOf(str, 10_000),
        mountLabel=str,
        personality=Obj(**{"domain!": str, "flags": ListOf(str)}),
        intelRdt=Anything,
        memoryPolicy=Obj(**{"mode!": str, "nodes": str, "flags": ListOf(str)}),
    ),
})

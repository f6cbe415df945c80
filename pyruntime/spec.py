"""config.json: loading, validation with JSON paths, and the default spec written by `pyruntime spec`."""

from __future__ import annotations

import os
import stat

from . import fastjson, schema
from .errors import ConfigError, RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAMESPACE_FLAGS = {  # spec namespace type -> /proc/<pid>/ns/ name
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
    "user": "user", "cgroup": "cgroup", "time": "time",
}
RLIMITS = ("RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
           "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
           "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK")
PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable")
_PRERELEASE_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.+-")


def supported_version(version: str) -> bool:
    """1.0.x to 1.3.x, with an optional -prerelease (plain checks: `re` costs ~4 ms to import)."""
    core, dash, pre = version.partition("-")
    parts = core.split(".")
    return (len(parts) == 3 and parts[0] == "1" and parts[1] in ("0", "1", "2", "3") and parts[2].isdecimal()
            and (not dash or _PRERELEASE_CHARS.issuperset(pre)))


def is_proc_fd_path(path: str, leaves: tuple[str, ...] = ("fd", "cwd", "root")) -> bool:
    """Whether a normalised path is /proc/(self|thread-self|N)[/task/N]/<leaf>[/...] (CVE-2024-21626)."""
    if path.endswith("\n"):  # as the regular expression this replaces ("$" matched before a final newline)
        path = path[:-1]
    parts = path.split("/")
    if len(parts) < 4 or parts[0] != "" or parts[1] != "proc":
        return False
    if not (parts[2] in ("self", "thread-self") or (parts[2].isascii() and parts[2].isdigit())):
        return False
    if parts[3] in leaves:
        return True
    return (parts[3] == "task" and len(parts) >= 6 and parts[4].isascii() and parts[4].isdigit()
            and parts[5] in leaves)

MAX_CONFIG_BYTES = 64 * 1024 * 1024


PIPE_WAIT = 30.0  # seconds a pipe given as --process may stay silent before we give up


def load_json(path: str, what: str = "config.json", pipe_ok: bool = False) -> Any:
    """Read and parse a JSON file, turning every failure into one ConfigError line. pipe_ok: a pipe
    is accepted too (exec -p <(...), -p /dev/stdin), read until its end with a bounded wait."""
    try:
        # O_NONBLOCK: a FIFO planted as config.json must not hang the runtime in open()
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        with open(fd, "rb") as f:
            mode = os.fstat(fd).st_mode
            if pipe_ok and stat.S_ISFIFO(mode):
                data = _read_pipe(fd, path, what)
            elif not stat.S_ISREG(mode):
                raise ConfigError(path, "", f"{what} is not a regular file")
            else:
                data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(path, "", f"{what} not found: no such file or directory") from None
    except OSError as e:
        raise ConfigError(path, "", f"cannot read {what}: {e.strerror.lower()}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(path, "", f"{what} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return fastjson.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(path, "", f"invalid UTF-8 at byte {e.start}") from None
    except ValueError as e:  # json.JSONDecodeError (fastjson hands errors to json)
        if not hasattr(e, "lineno"):
            raise
        raise ConfigError(path, "", f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise ConfigError(path, "", "JSON is nested too deeply") from None


def _read_pipe(fd: int, path: str, what: str) -> bytes:
    """Everything a pipe holds until its writer closes it; a writer silent for PIPE_WAIT seconds
    (or one that never comes) is an error, not a hang."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_CONFIG_BYTES:
        if not poller.poll(int(PIPE_WAIT * 1000)):
            raise ConfigError(path, "", f"{what}: nothing more came through the pipe in {PIPE_WAIT:g} s")
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def load_config(bundle: str) -> dict[str, Any]:
    """Load <bundle>/config.json and check everything create relies on."""
    file = os.path.join(bundle, "config.json")
    config = load_json(file)
    check_config(config, file)
    return config


def load_bundle(bundle: str) -> tuple[str, str, dict[str, Any], str]:
    """(absolute bundle, its config.json, the checked config, the real rootfs path) for create and
    restore: a missing bundle or rootfs is one line."""
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        raise RuntimeFailure(f"bundle {bundle}: no such directory")
    config = load_config(bundle)
    file = os.path.join(bundle, "config.json")
    rootfs = os.path.join(bundle, config["root"]["path"])
    if not os.path.isdir(rootfs):
        raise ConfigError(file, "root.path", f"rootfs {rootfs}: no such directory")
    return bundle, file, config, os.path.realpath(rootfs)


def check_config(config: Any, file: str) -> None:
    schema.validate(config, schema.CONFIG, file)
    version = config["ociVersion"]
    if not isinstance(version, str) or not supported_version(version):
        raise ConfigError(file, "ociVersion", f"unsupported version {version!r} (1.0.0 to 1.3.x accepted)")
    if config.get("root") is None:
        raise ConfigError(file, "root", "required field is missing")
    if config.get("process") is None:
        raise ConfigError(file, "process", "required field is missing")
    check_process(config["process"], file, "process")
    for key in ("hostname", "domainname"):  # the kernel's limit (__NEW_UTS_LEN)
        if len((config.get(key) or "").encode()) > 64:
            raise ConfigError(file, key, "longer than 64 bytes")
    linux = config.get("linux") or {}
    seen: set[str] = set()
    for i, ns in enumerate(linux.get("namespaces") or []):
        if ns["type"] not in NAMESPACE_FLAGS:
            raise ConfigError(file, f"linux.namespaces[{i}].type", f"unknown namespace type {ns['type']!r}")
        if ns["type"] in seen:
            raise ConfigError(file, f"linux.namespaces[{i}].type", f"namespace {ns['type']!r} given twice")
        seen.add(ns["type"])
        if ns.get("path") and not os.path.isabs(ns["path"]):
            raise ConfigError(file, f"linux.namespaces[{i}].path", "must be an absolute path")
    if linux.get("intelRdt") is not None:  # runc refuses it too where RDT is not supported
        raise ConfigError(file, "linux.intelRdt", "Intel RDT is not supported by pyruntime")
    if linux.get("timeOffsets") and "time" not in seen:
        raise ConfigError(file, "linux.timeOffsets", "requires a new time namespace")
    prop = linux.get("rootfsPropagation")
    if prop and prop not in PROPAGATIONS:
        raise ConfigError(file, "linux.rootfsPropagation", f"unknown propagation {prop!r}")
    for key in ("maskedPaths", "readonlyPaths"):
        for i, p in enumerate(linux.get(key) or []):
            if not p.startswith("/"):
                raise ConfigError(file, f"linux.{key}[{i}]", "must be an absolute path")
    for i, dev in enumerate(linux.get("devices") or []):
        if dev["type"] not in ("c", "b", "u", "p"):
            raise ConfigError(file, f"linux.devices[{i}].type", f"unknown device type {dev['type']!r}")
        # Any path in the container (the spec's rule; runc's too), resolved inside the rootfs like a
        # mount target (rootfs/devices.py); ".." is refused: "/dev/../etc/passwd" is a disguise.
        if not dev["path"].startswith("/") or dev["path"].rstrip("/") == "":
            raise ConfigError(file, f"linux.devices[{i}].path", "must be an absolute path in the container, not /")
        if ".." in dev["path"].split("/"):
            raise ConfigError(file, f"linux.devices[{i}].path", "must not contain '..'")
        if dev["type"] != "p" and ("major" not in dev or "minor" not in dev):
            raise ConfigError(file, f"linux.devices[{i}]", "major and minor are required for this type")
    hooks_cfg = config.get("hooks") or {}
    for kind in schema.CONFIG.fields["hooks"].fields:  # unknown keys are allowed, and not checked
        for i, hook in enumerate(hooks_cfg.get(kind) or []):
            if not os.path.isabs(hook["path"]):
                raise ConfigError(file, f"hooks.{kind}[{i}].path", "must be an absolute path")




def check_process(process: dict[str, Any], file: str, path: str) -> None:
    """Checks shared by config.json's process and exec's --process file."""
    if not process.get("args") and not process.get("commandLine"):
        raise ConfigError(file, f"{path}.args", "must contain at least the program to run")
    if not process["cwd"].startswith("/"):
        raise ConfigError(file, f"{path}.cwd", "must be an absolute path")
    if is_proc_fd_path(os.path.normpath(process["cwd"])):  # CVE-2024-21626: a leaked fd as the cwd
        raise ConfigError(file, f"{path}.cwd", f"{process['cwd']!r} is a file descriptor path: refused")
    for i, item in enumerate(process.get("env") or []):
        if "=" not in item:
            raise ConfigError(file, f"{path}.env[{i}]", "must be of the form KEY=value")
    for i, rl in enumerate(process.get("rlimits") or []):
        if rl["type"] not in RLIMITS:
            raise ConfigError(file, f"{path}.rlimits[{i}].type", f"unknown rlimit {rl['type']!r}")
        if rl["soft"] > rl["hard"]:
            raise ConfigError(file, f"{path}.rlimits[{i}]", "soft limit is above the hard limit")


def namespaces(config: dict[str, Any]) -> dict[str, str | None]:
    """{type: path or None} for the namespaces config.json asks for."""
    return {ns["type"]: ns.get("path") or None for ns in (config.get("linux") or {}).get("namespaces") or []}


DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def _default_namespaces() -> list[str]:
    """runc's: a cgroup namespace only where the host is cgroup v2 only (on a v1 or hybrid host,
    its tests add one themselves, and a second would be a duplicate)."""
    unified = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    return ["pid", "network", "ipc", "uts", "mount", *(["cgroup"] if unified else [])]


def default_spec(rootless: bool = False) -> dict[str, Any]:
    """The config.json `pyruntime spec` writes: runc's default, runnable with a busybox rootfs."""
    spec: dict[str, Any] = {
        "ociVersion": "1.2.0",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyruntime",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in _default_namespaces()],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    if rootless:
        uid, gid = os.getuid(), os.getgid()
        spec["linux"]["namespaces"] = [{"type": t} for t in _default_namespaces() if t != "network"] + [{"type": "user"}]
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
        spec["linux"].pop("resources")
        spec["mounts"] = [m for m in spec["mounts"] if m["type"] not in ("sysfs", "cgroup")] + [
            {"destination": "/sys", "type": "none", "source": "/sys",
             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}]
        for m in spec["mounts"]:
            if m["type"] == "devpts":
                m["options"].remove("gid=5")
    return spec


def write_config(bundle: str, config: dict[str, Any], replace: bool = False) -> str:
    """Write <bundle>/config.json (indented, as runc's `spec`); an existing one is an error unless
    replace. Returns its path."""
    import json

    path = os.path.join(bundle, "config.json")
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if replace else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        raise RuntimeFailure(f"{path} already exists") from None
    except OSError as e:
        raise RuntimeFailure(f"cannot write {path}: {(e.strerror or str(e)).lower()}") from None
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    return path

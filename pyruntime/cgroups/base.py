"""The Manager interface shared by the v1 and v2 drivers: apply linux.resources, read stats.

A driver turns linux.resources into an ordered list of Writes (JSON path, cgroup dir, file, value);
`run_writes` performs them and turns a value the kernel rejects into one line naming the config
file, the JSON path, the cgroup file and the value.
"""

from __future__ import annotations

import os

from .. import log
from ..errors import ConfigError
from ..record import dataclass  # dataclasses without its start-up cost (see record.py)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass
class Write:
    """One value to write into a cgroup file."""

    path: str  # JSON path in the config, for the error message
    dir: str  # cgroup directory
    file: str  # file name inside it (never a path)
    value: str
    optional: bool = False  # skip (with a warning) when the kernel has no such file


def write_file(directory: str, name: str, value: str) -> None:
    """Write one cgroup file, opened relative to its directory and never through a symlink."""
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dfd)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def read_file(directory: str, name: str) -> str:
    with open(os.path.join(directory, name)) as f:
        return f.read().strip()


def read_int(directory: str, name: str, default: int = 0) -> int:
    try:
        v = read_file(directory, name)
    except OSError:
        return default
    if v == "max":
        return 2**64 - 1
    try:
        return int(v)
    except ValueError:
        return default


def read_kv(directory: str, name: str) -> dict[str, int]:
    """A flat keyed file ("key value" lines) such as memory.stat or cpu.stat."""
    out: dict[str, int] = {}
    try:
        text = read_file(directory, name)
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def run_writes(writes: list[Write], file: str) -> None:
    for w in writes:
        try:
            write_file(w.dir, w.file, w.value)
        except FileNotFoundError:
            if w.optional:
                log.warning(f"{w.path}: {w.dir}/{w.file} does not exist on this kernel; ignored")
                continue
            raise ConfigError(file, w.path, f"cannot set {w.file} to {w.value!r}: "
                              f"{w.dir}/{w.file} is not supported by this kernel") from None
        except OSError as e:
            raise ConfigError(file, w.path, f"the kernel rejected {w.value!r} for {w.dir}/{w.file}: "
                              f"{(e.strerror or str(e)).lower()}") from None


def num(value: int) -> str:
    """-1 (or any negative) is unlimited."""
    return "max" if value < 0 else str(value)


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) to cpu.weight (1..10000), the conversion runc and crun use."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) to io.weight (1..10000), as runc converts."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap: int, limit: int) -> int | None:
    """memory.swap.max from the spec's memory+swap total (runc's conversion); None: leave unset."""
    if limit == -1 and swap == 0:
        return -1
    if swap == -1:
        return -1
    if swap == 0:
        return None
    if limit in (0, -1):
        raise ValueError("a swap limit needs a memory limit")
    if swap < limit:
        raise ValueError("memory+swap limit must be >= the memory limit")
    return swap - limit


class Manager:
    """One container's cgroup(s): {mount point: dir} as recorded in its state."""

    version = 0

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths

    def apply(self, resources: dict[str, Any], file: str, *, update: bool = False,
              devices: list[dict[str, Any]] | None = None) -> None:
        """Write linux.resources; `devices` are linux.devices (allowed like runc does). On update,
        device rules are left as they are (runc does the same)."""
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """runc's `events --stats` data object."""
        raise NotImplementedError

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.paths.values())

    def oom_kills(self) -> int | None:
        """How many processes the OOM killer has killed in the container's memory cgroup; None when
        the counter cannot be read (no memory cgroup, removed, or a kernel without the counter)."""
        raise NotImplementedError

    def oom_watch_fd(self) -> tuple[int, str]:
        """(fd, how): an fd that becomes readable ('in') or gets POLLPRI ('pri') on OOM events; -1 if none."""
        raise NotImplementedError

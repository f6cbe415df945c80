"""linux.sysctl: only sysctls that belong to a namespace the container has are accepted (as runc).

Checked in the runtime before anything is created; the values are written by the init through the
container's own /proc/sys (process/init.py), after the namespaces exist.
"""

from __future__ import annotations

import os
import re

from ..errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

IPC_NAMES = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
             "kernel.shmmni", "kernel.shm_rmid_forced", "kernel.msg_next_id", "kernel.sem_next_id",
             "kernel.shm_next_id")
_KEY = re.compile(r"^[A-Za-z0-9_-]+([./][A-Za-z0-9_:@+-]+)*$")


def normalize(key: str) -> str:
    """sysctl(8) accepts both separators; a '/' key is the path form: 'net/ipv4/conf/eth0.1/x'."""
    if "/" in key:
        return key.replace(".", "\0").replace("/", ".").replace("\0", "/")
    return key


def check(config: dict[str, Any], namespaces: dict[str, str | None], file: str) -> None:
    sysctls = (config.get("linux") or {}).get("sysctl") or {}
    for key, value in sysctls.items():
        path = f"linux.sysctl.{key}"
        if not _KEY.match(key) or ".." in key:
            raise ConfigError(file, path, "is not a valid sysctl name")
        if "\n" in value:
            raise ConfigError(file, path, "value must be a single line")
        name = normalize(key)
        if name in IPC_NAMES or name.startswith("fs.mqueue."):
            if "ipc" not in namespaces:
                raise ConfigError(file, path, "is an IPC namespace sysctl: it needs an ipc namespace")
            continue
        if name.startswith("net."):
            if "network" not in namespaces:
                raise ConfigError(file, path, "is a network namespace sysctl: it needs a network namespace")
            if namespaces["network"] and _is_host_netns(namespaces["network"]):
                raise ConfigError(file, path, "is not allowed in the host's network namespace")
            continue
        if name == "kernel.domainname" and "uts" in namespaces:
            continue
        if name == "kernel.hostname" and "uts" in namespaces:
            raise ConfigError(file, path, "conflicts with the \"hostname\" field: set that instead")
        raise ConfigError(file, path, "is not namespaced: it would change the host (only ipc, net and "
                          "uts namespace sysctls are allowed)")


def _is_host_netns(path: str) -> bool:
    try:
        a, b = os.stat(path), os.stat("/proc/self/ns/net")  # the runtime's own (as runc)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def proc_path(key: str) -> str:
    """The file under /proc/sys for a key in either form."""
    return key if "/" in key else key.replace(".", "/")

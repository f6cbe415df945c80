"""AppArmor profile and SELinux labels: applied when the LSM is enabled, handled as runc does when not.

AppArmor not enabled: process.apparmorProfile is ignored. SELinux not enabled: a process.selinuxLabel
or linux.mountLabel is refused with a clear error (runc fails writing /proc/self/attr/exec there).
"""

from __future__ import annotations

import os

from ..errors import ConfigError, RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_apparmor: bool | None = None  # decided in the runtime (host /sys), inherited by the init across fork


def apparmor_enabled() -> bool:
    global _apparmor
    if _apparmor is None:
        _apparmor = _probe_apparmor()
    return _apparmor


def _probe_apparmor() -> bool:
    if not os.path.isdir("/sys/kernel/security/apparmor"):
        return False
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read(1) == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    if not os.path.exists("/sys/fs/selinux/enforce"):
        return False
    try:
        with open("/proc/self/attr/current") as f:
            return f.read().strip("\0\n") not in ("", "kernel")
    except OSError:
        return False


def check_process(process: dict[str, Any], file: str, path: str) -> None:
    if process.get("apparmorProfile"):
        apparmor_enabled()  # probed now, on the host's /sys; the answer is inherited across fork
    if process.get("selinuxLabel") and not selinux_enabled():
        raise ConfigError(file, f"{path}.selinuxLabel", "SELinux is not enabled on this host")


def check_mount_label(linux: dict[str, Any], file: str) -> None:
    if linux.get("mountLabel") and not selinux_enabled():
        raise ConfigError(file, "linux.mountLabel", "SELinux is not enabled on this host")


def apply_exec_labels(process: dict[str, Any]) -> None:
    """Before the exec, through the host's /proc: the labels the kernel gives the next program. (The
    next program is the init stub, which then executes the container's program in the same domain.)"""
    profile = process.get("apparmorProfile")
    if profile and apparmor_enabled():
        _write_attr(("/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"), f"exec {profile}",
                    "process.apparmorProfile")
    label = process.get("selinuxLabel")
    if label:
        _write_attr(("/proc/thread-self/attr/exec",), label, "process.selinuxLabel")


def _write_attr(paths: tuple[str, ...], value: str, what: str) -> None:
    err: OSError | None = None
    for p in paths:
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError as e:
            err = e
            continue
        except OSError as e:
            raise RuntimeFailure(f"cannot apply {what} {value!r}: {e.strerror.lower()}") from None
        try:
            os.write(fd, value.encode())
            return
        except OSError as e:
            raise RuntimeFailure(f"cannot apply {what} {value!r}: {e.strerror.lower()}") from None
        finally:
            os.close(fd)
    raise RuntimeFailure(f"cannot apply {what}: {err.strerror.lower() if err else 'no attr file'}")

"""`checkpoint` and `restore` through CRIU (its swrk RPC, see criu_rpc.py), with runc 1.1.5's flags.

checkpoint: CRIU dumps the container's process tree (its root is the container's rootfs; the
config's bind mounts, masked files and devices are declared external mounts; a network or pid
namespace given by path is external); the stdio of the init is recorded in descriptors.json beside
the images, as runc does. Unless --leave-running or --pre-dump, the container is then deleted
(runc's destroy: cgroup and state removed, poststop hooks run).

restore: a new container (any ID) from a bundle and the images: state saved, cgroup created with
the config's resources and CRIU put in it, so the restored tasks land there; bind mounts re-bound
through CRIU's external mount map; prestart/createRuntime hooks at CRIU's setup-namespaces step; a
restored terminal's master goes to --console-socket; stdio pipes recorded at checkpoint are
replaced by restore's own. Foreground, restore waits for the init and exits with its code.

CRIU needs a kernel it supports (`criu check`): on this project's CI host (6.18, CRIU 3.17) it does
not, and the error says so; tests/vm/test_criu_vm.py proves both commands in a qemu guest.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from typing import Any

from . import criu_rpc
from .errors import RuntimeFailure
from .state import Container

DESCRIPTORS = "descriptors.json"  # runc's name: the init's stdio at checkpoint
NS_KEYS = {"network": ("net", "extRootNetNS"), "pid": ("pid", "extRootPidNS")}  # runc's keys
CLONE_NEWNET = 0x40000000  # runtime-spec/linux ABI constant (sched.h), same on every architecture
CLONE_NEWNS = 0x00020000


@dataclass
class CriuOptions:
    image_path: str
    work_path: str | None = None
    leave_running: bool = False
    tcp_established: bool = False
    file_locks: bool = False
    ext_unix_sk: bool = False
    shell_job: bool = False
    manage_cgroups_mode: str | None = None
    auto_dedup: bool = False
    empty_ns: tuple[str, ...] = ()
    lazy_pages: bool = False
    parent_path: str | None = None
    pre_dump: bool = False
    status_fd: int = -1
    page_server: str | None = None
    lsm_profile: str | None = None
    lsm_mount_context: str | None = None


def find_criu(criu: str = "criu") -> str:
    path = shutil.which(criu)
    if not path:
        raise RuntimeFailure(f"{criu} not found: install CRIU to checkpoint and restore containers")
    return path


def criu_check_reason(criu: str) -> str | None:
    """Why `criu check` fails on this kernel, or None when it passes (asked after a failure only)."""
    try:
        proc = subprocess.run([criu, "check"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode == 0:
        return None
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    return next((ln for ln in lines if "failed" in ln.lower()), lines[-1] if lines else "no output")


# -- options shared by both commands ----------------------------------------------------------------
def base_opts(opts: CriuOptions, log_file: str) -> dict[str, object]:
    """The criu_opts both commands send, from runc's flags (validated here, before anything runs)."""
    rpc: dict[str, object] = {
        "log_level": 4, "log_file": log_file, "manage_cgroups": True, "notify_scripts": True,
        "shell_job": opts.shell_job, "tcp_established": opts.tcp_established, "ext_unix_sk": opts.ext_unix_sk,
        "file_locks": opts.file_locks, "orphan_pts_master": True, "auto_dedup": opts.auto_dedup,
        "lazy_pages": opts.lazy_pages, "empty_ns": empty_ns_mask(opts.empty_ns),
    }
    if opts.manage_cgroups_mode:
        mode = criu_rpc.CG_MODES.get(opts.manage_cgroups_mode)
        if mode is None:
            raise RuntimeFailure(f"invalid --manage-cgroups-mode {opts.manage_cgroups_mode!r}: "
                                 "expected soft, full or strict")
        rpc["manage_cgroups_mode"] = mode
    return rpc


def config_file(annotations: dict[str, str]) -> str | None:
    """runc's CRIU configuration file: annotation org.criu.config (empty: none), else
    /etc/criu/runc.conf (CRIU ignores a missing file; its settings override the RPC's)."""
    if "org.criu.config" in annotations:
        return annotations["org.criu.config"] or None
    return "/etc/criu/runc.conf"


def empty_ns_mask(names: tuple[str, ...]) -> int:
    """runc always leaves the network namespace's contents to others (CRIU gets CLONE_NEWNET), and
    --empty-ns accepts only "network"."""
    for name in names:
        if name != "network":
            raise RuntimeFailure(f"--empty-ns: namespace {name!r} is not supported (only \"network\")")
    return CLONE_NEWNET


def page_server(value: str | None) -> dict[str, object] | None:
    if not value:
        return None
    address, _, port = value.rpartition(":")
    if not address or not port:
        raise RuntimeFailure("Use --page-server ADDRESS:PORT to specify page server")
    if not port.isdigit():
        raise RuntimeFailure(f"--page-server {value}: invalid port number")
    return {"address": address.strip("[]"), "port": int(port)}


def _open_dir(path: str, flag: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure(f"{flag} {path}: {(e.strerror or str(e)).lower()}") from None


def _make_dir(path: str, flag: str) -> None:
    """runc creates --image-path (checkpoint) and --work-path when they are missing."""
    try:
        os.makedirs(path, 0o700, exist_ok=True)
    except OSError as e:
        raise RuntimeFailure(f"cannot create {flag} {path}: {(e.strerror or str(e)).lower()}") from None


def _check_parent_path(opts: CriuOptions) -> None:
    """runc's rule: --parent-path is relative to --image-path (CRIU's parent image) and names an
    existing directory (the images of an earlier pre-dump)."""
    if not opts.parent_path:
        return
    if os.path.isabs(opts.parent_path):
        raise RuntimeFailure("--parent-path must be relative (to --image-path)")
    parent = os.path.join(opts.image_path, opts.parent_path)
    if not os.path.isdir(parent):
        why = "not a directory" if os.path.exists(parent) else "no such file or directory"
        raise RuntimeFailure(f"invalid --parent-path: {parent}: {why}")


def _is_bind(m: dict[str, Any]) -> bool:
    return m.get("type") == "bind" or any(o in ("bind", "rbind") for o in m.get("options") or [])


def _dest(m: dict[str, Any]) -> str:
    return os.path.normpath("/" + str(m.get("destination", "")).lstrip("/"))  # not "//x": POSIX keeps it


def resolved_dest(rootfs: str, m: dict[str, Any]) -> str:
    """A mount's destination as the runtime mounted it: symlinks resolved inside the rootfs (a
    destination through a symlink is mounted on its target; CRIU knows the mount by that path)."""
    from .rootfs import resolve

    dest = _dest(m)
    try:
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return dest
    try:
        fd = resolve.open_in_root(root_fd, dest)
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    except OSError:
        return dest  # not there (yet): the lexical path
    finally:
        os.close(root_fd)
    root = os.path.realpath(rootfs)
    if real == root:
        return "/"
    return real[len(root):] if real.startswith(root + "/") else dest


def device_paths(config: dict[str, Any]) -> list[str]:
    from .rootfs.devices import DEFAULT_DEVICES

    paths = [p for p, *_ in DEFAULT_DEVICES]
    paths += [d["path"] for d in (config.get("linux") or {}).get("devices") or [] if d.get("path")]
    return list(dict.fromkeys(paths))


def _failure(what: str, e: RuntimeFailure, criu: str) -> RuntimeFailure:
    reason = criu_check_reason(criu)
    if reason:
        return RuntimeFailure(f"{e} (CRIU cannot work on this kernel: `criu check` failed: {reason})")
    return e


# -- checkpoint ------------------------------------------------------------------------------------
def checkpoint(c: Container, opts: CriuOptions, criu: str = "criu") -> None:
    status = c.status()
    if status not in ("running", "paused"):
        raise RuntimeFailure(f"container {c.id} cannot be checkpointed in {status} state")
    criu = find_criu(criu)
    config = _bundle_config(c)
    rpc = base_opts(opts, "dump.log")
    ps = page_server(opts.page_server)
    _make_dir(opts.image_path, "--image-path")
    _check_parent_path(opts)
    if opts.work_path:
        _make_dir(opts.work_path, "--work-path")
    log_path = os.path.join(opts.work_path or opts.image_path, "dump.log")
    fds: list[int] = []
    try:
        fds.append(_open_dir(opts.image_path, "--image-path"))
        rpc.update(images_dir_fd=fds[-1], pid=c.pid, leave_running=opts.leave_running, root=_rootfs(c, config),
                   config_file=config_file(c.annotations))
        if opts.work_path:
            fds.append(_open_dir(opts.work_path, "--work-path"))
            rpc["work_dir_fd"] = fds[-1]
        rpc["external"] = external_namespaces(config, c.pid)
        freezer = _freeze_cgroup(c)
        if freezer:
            rpc["freeze_cgroup"] = freezer
        if ps:
            rpc["ps"] = ps
        if opts.parent_path:
            rpc.update(parent_img=opts.parent_path, track_mem=True)
        if opts.lazy_pages and opts.status_fd >= 0:
            _check_status_fd(opts.status_fd)
        if not opts.pre_dump:  # no need for any of this in a pre-dump (runc)
            rpc["ext_mnt"] = dump_ext_mounts(config, c.pid, _rootfs(c, config))
            _write_descriptors(opts.image_path, c.pid)

        def notify(script: str, _pid: int, _fds: list[int]) -> None:
            if script == "status-ready" and opts.status_fd >= 0:
                _signal_ready(opts.status_fd)

        req = criu_rpc.PRE_DUMP if opts.pre_dump else criu_rpc.DUMP
        try:
            criu_rpc.swrk(criu, req, rpc, log_path, "checkpoint", pass_fds=tuple(fds), on_notify=notify)
        except RuntimeFailure as e:
            raise _failure("checkpoint", e, criu) from None
    finally:
        for fd in fds:
            os.close(fd)
    if not (opts.leave_running or opts.pre_dump):
        from . import container

        container.delete(c, force=True)  # runc destroys the checkpointed container (poststop hooks run)


def _bundle_config(c: Container) -> dict[str, Any]:
    """The full config (mounts, masked paths, devices): from the bundle, else what state kept."""
    from . import spec

    try:
        return spec.load_config(c.bundle)
    except Exception:  # noqa: BLE001 - a bundle changed or gone since create: the kept part still works
        return c.config


def _rootfs(c: Container, config: dict[str, Any]) -> str:
    return os.path.realpath(os.path.join(c.bundle, ((config.get("root") or c.config.get("root") or {})
                                                    .get("path", "rootfs"))))


def _freeze_cgroup(c: Container) -> str | None:
    """CRIU freezes through the cgroup freezer (v1 freezer, v2 cgroup.freeze) rather than ptrace."""
    if not c.cgroup_paths:
        return None
    from .freezer import locate

    fz = locate(c.cgroup_paths)
    return fz[1] if fz else None


def external_namespaces(config: dict[str, Any], pid: int) -> list[str]:
    """A network or pid namespace given by path is CRIU-external: net[inode]:extRootNetNS (runc)."""
    out = []
    for ns in (config.get("linux") or {}).get("namespaces") or []:
        kind = NS_KEYS.get(ns.get("type", ""))
        if kind and ns.get("path"):
            ino = os.stat(f"/proc/{pid}/ns/{kind[0]}").st_ino
            out.append(f"{kind[0]}[{ino}]:{kind[1]}")
    return out


def dump_ext_mounts(config: dict[str, Any], pid: int, rootfs: str = "/nonexistent") -> list[tuple[str, str]]:
    """Mounts CRIU cannot dump itself, keyed by their destination: binds, masked files (/dev/null
    bound over them) and device nodes (bound from the host in a user namespace)."""
    pairs = []
    for m in config.get("mounts") or []:
        if _is_bind(m):
            dest = resolved_dest(rootfs, m)
            pairs.append((dest, dest))
    for path in (config.get("linux") or {}).get("maskedPaths") or []:
        try:
            if not stat.S_ISDIR(os.stat(f"/proc/{pid}/root{path}").st_mode):
                pairs.append((path, "/dev/null"))
        except OSError:
            continue
    pairs += [(p, p) for p in device_paths(config)]
    return list(dict.fromkeys(pairs))


def _write_descriptors(image_path: str, pid: int) -> None:
    from .fastjson import dumps

    fds = []
    for n in range(3):
        try:
            fds.append(os.readlink(f"/proc/{pid}/fd/{n}"))
        except OSError:
            fds.append("/dev/null")
    path = os.path.join(image_path, DESCRIPTORS)
    try:
        with open(path, "w") as f:
            f.write(dumps(fds))
    except OSError as e:
        raise RuntimeFailure(f"cannot write {path}: {(e.strerror or str(e)).lower()}") from None


def _check_status_fd(fd: int) -> None:
    import fcntl

    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError as e:
        raise RuntimeFailure(f"invalid --status-fd argument {fd}: {(e.strerror or str(e)).lower()}") from None
    if flags & os.O_ACCMODE == os.O_RDONLY:
        raise RuntimeFailure(f"invalid --status-fd argument {fd}: not writable")


def _signal_ready(fd: int) -> None:
    try:
        os.write(fd, b"\0")
        os.close(fd)
    except OSError:
        pass

"""`restore`: a container made from a bundle and CRIU images (see checkpoint.py for the whole design).

Order (runc 1.1.5's): everything that can be refused is checked first; then the state directory,
the cgroup (resources applied), a private mount namespace for this command in which the rootfs is
bind-mounted on <state>/criu-root (CRIU wants its root to be a mount point; nothing reaches the
host's mount table), CRIU (swrk) moved into the cgroup, the restore. Any failure removes the state
directory and the cgroup and kills whatever CRIU restored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from . import checkpoint as cp
from . import criu_rpc, log, state
from .errors import ConfigError, RuntimeFailure

MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 0x1000, 0x4000, 1 << 18, 2  # linux/mount.h, arch-independent


@dataclass
class RestoreOptions:
    bundle: str = "."
    detach: bool = False
    pid_file: str | None = None
    console_socket: str | None = None
    no_pivot: bool = False
    no_subreaper: bool = False
    systemd_cgroup: bool = False


def restore(root: str, container_id: str, opts: cp.CriuOptions, ropts: RestoreOptions, criu: str = "criu") -> int:
    from . import cgroups, spec

    state.check_id(container_id)
    criu = cp.find_criu(criu)
    bundle, file, config, rootfs = spec.load_bundle(ropts.bundle)
    terminal = bool((config.get("process") or {}).get("terminal"))
    if terminal and ropts.detach and not ropts.console_socket:
        raise RuntimeFailure("process.terminal is true: a detached restore needs --console-socket")
    if not os.path.isdir(opts.image_path):
        raise RuntimeFailure(f"--image-path {opts.image_path}: no such directory (nothing to restore)")
    descriptors = _read_descriptors(opts.image_path)
    rpc = cp.base_opts(opts, "restore.log")
    namespaces = spec.namespaces(config)
    cgroup_paths = cgroups.plan(config, container_id, ropts.systemd_cgroup, file)
    if opts.work_path:
        cp._make_dir(opts.work_path, "--work-path")
    log_path = os.path.join(opts.work_path or opts.image_path, "restore.log")

    from . import container

    c = state.create(root, container_id)  # "already exists" before anything else is made
    c.bundle, c.annotations, c.config = bundle, config.get("annotations") or {}, container._kept_config(config)
    c.cgroup_paths = cgroup_paths
    fds: list[int] = []
    terminal_proxy = None
    try:
        c.save()
        cgroups.create(cgroup_paths)
        cgroups.manager(cgroup_paths).apply((config.get("linux") or {}).get("resources") or {}, file,
                                            devices=(config.get("linux") or {}).get("devices"))
        if terminal and not ropts.console_socket:  # foreground: proxy the terminal ourselves (as run)
            from . import console

            terminal_proxy = console.ForegroundTerminal()
        criu_root = _private_root(c, rootfs)
        _make_mountpoints(config, rootfs, bundle)  # (before the keys: they are the resolved mount points)
        fds.append(cp._open_dir(opts.image_path, "--image-path"))
        rpc.update(images_dir_fd=fds[-1], evasive_devices=True, rst_sibling=True, root=criu_root,
                   lsm_profile=opts.lsm_profile, lsm_mount_context=opts.lsm_mount_context,
                   config_file=cp.config_file(c.annotations))
        if opts.work_path:
            fds.append(cp._open_dir(opts.work_path, "--work-path"))
            rpc["work_dir_fd"] = fds[-1]
        inherit, join = _namespaces(config, namespaces, fds, file)
        inherit += [(key, n) for n, key in enumerate(descriptors) if "pipe:" in key]
        rpc.update(inherit_fd=inherit, join_ns=join, ext_mnt=restore_ext_mounts(config, rootfs, bundle))
        if not ropts.no_subreaper and not ropts.detach:
            import _prctl

            _prctl.prctl(_prctl.PR_SET_CHILD_SUBREAPER, 1)
        socket_path = terminal_proxy.socket_path if terminal_proxy else ropts.console_socket

        def started(criu_pid: int) -> None:
            cgroups.join(cgroup_paths, criu_pid)  # the restored tasks land in the container's cgroup
            if cgroup_paths and not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # v1 or hybrid
                rpc["cg_root"] = _v1_roots(criu_pid)

        def notify(script: str, pid: int, got: list[int]) -> None:
            if script == "setup-namespaces":
                st = dict(container._hook_base_state(c), pid=pid, status="creating")
                _hooks("prestart", c, st)
                _hooks("createRuntime", c, st)
            elif script == "post-restore":
                _record(c, pid)
            elif script == "orphan-pts-master" and got:
                _send_master(socket_path, got[0])
            elif script == "status-ready" and opts.status_fd >= 0:
                cp._signal_ready(opts.status_fd)

        try:
            resp = criu_rpc.swrk(criu, criu_rpc.RESTORE, rpc, log_path, "restore", pass_fds=tuple(fds),
                                 on_notify=notify, on_started=started)
        except RuntimeFailure as e:
            raise cp._failure("restore", e, criu) from None
        if resp.restored_pid and resp.restored_pid != c.pid:
            _record(c, resp.restored_pid)
        if ropts.pid_file:
            from .proc import write_pid_file

            try:
                write_pid_file(ropts.pid_file, c.pid)
            except OSError as e:
                raise RuntimeFailure(f"cannot write --pid-file {ropts.pid_file}: "
                                     f"{(e.strerror or str(e)).lower()}") from None
        if terminal_proxy:
            terminal_proxy.receive_master()
    except BaseException:
        if terminal_proxy:
            terminal_proxy.close()
        _drop_private_root(c)  # before the state directory goes
        try:
            container._destroy(c)
        except RuntimeFailure as cleanup:
            log.warning(f"cleaning up after the failed restore: {cleanup}")
        raise
    finally:
        for fd in fds:
            os.close(fd)
        _drop_private_root(c)
    pid = c.pid
    c.close()
    if ropts.detach:
        return 0
    return _wait_foreground(root, container_id, pid, terminal_proxy)


def _wait_foreground(root: str, container_id: str, pid: int, terminal_proxy: Any) -> int:
    from . import container, forwarding
    from .proc import wait_exit

    forwarding.forward_to(pid)
    try:
        code = terminal_proxy.proxy_until_exit(pid) if terminal_proxy else wait_exit(pid)
    finally:
        if terminal_proxy:
            terminal_proxy.close()
    try:  # runc destroys a foreground container once its init exits
        container.delete(state.load(root, container_id), force=True)
    except RuntimeFailure:
        pass
    return code


def _read_descriptors(image_path: str) -> list[str]:
    from . import spec

    path = os.path.join(image_path, cp.DESCRIPTORS)
    if not os.path.exists(path):
        raise RuntimeFailure(f"{path}: no such file (not a checkpoint made by pyruntime or runc)")
    fds = spec.load_json(path, cp.DESCRIPTORS)
    if not isinstance(fds, list) or not all(isinstance(s, str) for s in fds):
        raise RuntimeFailure(f"{path}: expected a JSON list of strings")
    return fds


def _private_root(c: state.Container, rootfs: str) -> str:
    """This command's own mount namespace (changes never propagate back), the rootfs bound on a
    mount point of its own: what CRIU wants as its root."""
    from . import native

    native.unshare(cp.CLONE_NEWNS)
    native.mount(None, "/", None, MS_REC | MS_PRIVATE)
    target = os.path.join(c.path, "criu-root")
    os.mkdir(target, 0o755)
    native.mount(rootfs, target, None, MS_BIND | MS_REC)
    return target


def _drop_private_root(c: state.Container) -> None:
    from . import native

    target = os.path.join(c.path, "criu-root")
    if os.path.isdir(target):
        try:
            native.umount2(target, MNT_DETACH)
        except OSError:
            pass  # never mounted (the bind failed)
        os.rmdir(target)


def _make_mountpoints(config: dict[str, Any], rootfs: str, bundle: str) -> None:
    """Create missing mount points in the rootfs (CRIU mounts on them), except under a tmpfs (CRIU
    restores its contents) and for cgroup mounts (runc's prepareCriuRestoreMounts). Each bind mount
    is bound for the while (in this command's own mount namespace), so that the mount points of
    binds nested in it are made in its source, as at create."""
    from . import native
    from .rootfs import resolve

    mounts = config.get("mounts") or []
    tmpfs = [cp._dest(m) for m in mounts if m.get("type") == "tmpfs"]
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    bound: list[str] = []
    try:
        for m in mounts:
            dest = cp._dest(m)
            if m.get("type") in ("cgroup", "cgroup2") or any(dest.startswith(t + "/") for t in tmpfs):
                continue
            bind = cp._is_bind(m) and bool(m.get("source"))
            source = os.path.join(bundle, m["source"]) if bind else ""  # relative: to the bundle
            file_source = bind and os.path.exists(source) and not os.path.isdir(source)
            try:
                fd = resolve.mkfile_in_root(root_fd, dest) if file_source else resolve.mkdirs_in_root(root_fd, dest)
            except OSError as e:
                raise RuntimeFailure(f"cannot create the mount point {dest} in the rootfs: "
                                     f"{(e.strerror or str(e)).lower()}") from None
            try:
                if bind and os.path.exists(source):
                    native.mount(source, f"/proc/self/fd/{fd}", None, MS_BIND | MS_REC)
                    bound.append(dest)
            except OSError as e:
                raise RuntimeFailure(f"cannot bind {source} on {dest} to make the mount points in it: "
                                     f"{(e.strerror or str(e)).lower()}") from None
            finally:
                os.close(fd)
    finally:
        for dest in reversed(bound):
            try:
                fd = resolve.open_in_root(root_fd, dest)
                try:
                    native.umount2(f"/proc/self/fd/{fd}", MNT_DETACH)
                finally:
                    os.close(fd)
            except OSError:
                pass
        os.close(root_fd)


def restore_ext_mounts(config: dict[str, Any], rootfs: str = "/nonexistent", bundle: str = "/") -> list[tuple[str, str]]:
    """The external mounts of the dump, each key mapped to its source now (the bundle's; a relative
    source is relative to the bundle, as at create)."""
    pairs = [(cp.resolved_dest(rootfs, m), os.path.normpath(os.path.join(bundle, m["source"]))) for m in config.get("mounts") or []
             if cp._is_bind(m) and m.get("source")]
    if (config.get("linux") or {}).get("maskedPaths"):
        pairs.append(("/dev/null", "/dev/null"))
    pairs += [(p, p) for p in cp.device_paths(config)]
    return list(dict.fromkeys(pairs))


def _namespaces(config: dict[str, Any], namespaces: dict[str, str | None], fds: list[int],
                file: str) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """A network or pid namespace given by path is inherited by fd; the others are joined (runc)."""
    inherit: list[tuple[str, int]] = []
    join: list[tuple[str, str]] = []
    names = {"ipc": "ipc", "uts": "uts", "mount": "mnt", "user": "user", "time": "time"}
    for kind, path in namespaces.items():
        if not path:
            continue
        if kind in cp.NS_KEYS:
            try:
                fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            except OSError as e:
                raise ConfigError(file, "linux.namespaces", f"{kind} namespace {path}: "
                                  f"{(e.strerror or str(e)).lower()}") from None
            inherit.append((cp.NS_KEYS[kind][1], fds[-1]))
        elif kind == "cgroup":
            raise ConfigError(file, "linux.namespaces", "a cgroup namespace given by path cannot be restored (CRIU)")
        elif kind in names:
            join.append((names[kind], path))
    return inherit, join


def _v1_roots(pid: int) -> list[tuple[str | None, str]]:
    """cgroup v1: each controller's root for CRIU is where CRIU itself was put (runc)."""
    roots: list[tuple[str | None, str]] = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls:
                roots.append((ctrls.removeprefix("name="), path))
    return roots


def _record(c: state.Container, pid: int) -> None:
    c.pid = pid
    st = state.proc_stat(pid)
    c.start_time = st[1] if st else 0
    c.save()


def _hooks(kind: str, c: state.Container, st: dict[str, Any]) -> None:
    configured = (c.config.get("hooks") or {}).get(kind)
    if configured:
        from . import hooks

        hooks.run_all(kind, configured, st)


def _send_master(path: str | None, master: int) -> None:
    import socket

    if not path:
        raise RuntimeFailure("the restored process has a terminal: --console-socket is required")
    from . import console

    fd = console.connect(path)
    sock = socket.socket(fileno=fd)
    try:
        socket.send_fds(sock, [b"/dev/ptmx"], [master])
    except OSError as e:
        raise RuntimeFailure(f"cannot send the terminal to --console-socket {path}: {e.strerror or e}") from None
    finally:
        sock.close()

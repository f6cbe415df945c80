"""The container's init: the whole setup sequence, in order, in one function (_setup, called by run).

It runs in the process forked inside the new namespaces, as root, with every module it will ever
use already imported (the optional ones by the runtime: preload). After pivot_root it refuses imports (an import would read files from the
container's rootfs). It ends by executing the init stub from a sealed memfd, which waits for
`start` and then executes the user's program.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py costs ~2 ms to import (enums, selectors)
import errno
import fcntl
import os
import stat
import sys

import _prctl  # the C module: prctl.py costs ~0.7 ms to import (it generates its wrappers)

from .. import hooks, log, native, trace
from .._native import lib
from ..errors import ConfigError, RuntimeFailure
from ..faults import checkpoint
from ..rootfs import devices, mounts, paths, pivot, resolve
from ..security import caps, identity
from . import stub
from .channel import Channel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .spawn import InitPlan

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Modules the init (and exec's children, setns_init.py) use only for some configs, by the key that
# needs them. The runtime imports those a config needs before it forks (preload); the init imports
# them where it uses them, from sys.modules (no file is read). One missed here is refused after
# pivot_root (block_imports), never read from the rootfs. tests/unit/test_preload.py checks both.
OPTIONAL_BY_PROCESS_KEY = {"oomScoreAdj": "sched", "scheduler": "sched", "ioPriority": "sched",
                           "execCPUAffinity": "sched", "apparmorProfile": "lsm", "selinuxLabel": "lsm",
                           "rlimits": "rlimits"}
OPTIONAL_BY_LINUX_KEY = {"seccomp": "seccomp", "sysctl": "sysctl", "personality": "personality",
                         "memoryPolicy": "numa"}


def optional_modules(process: dict[str, Any], linux: dict[str, Any]) -> set[str]:
    """The optional modules this process and config use (the terminal's too: pyruntime.console)."""
    names = {f"pyruntime.security.{m}" for k, m in OPTIONAL_BY_PROCESS_KEY.items() if process.get(k) is not None}
    names |= {f"pyruntime.security.{m}" for k, m in OPTIONAL_BY_LINUX_KEY.items() if linux.get(k) is not None}
    if process.get("terminal"):
        names.add("pyruntime.console")
    return names


def preload(process: dict[str, Any], linux: dict[str, Any]) -> None:
    """In the runtime, before it forks: import what optional_modules names (a bare config imports
    none of seccomp, console, LSM, scheduler, NUMA, personality, sysctl, rlimits)."""
    for name in sorted(optional_modules(process, linux)):
        __import__(name)


def run(plan: InitPlan, chan: Channel) -> None:  # pragma: no cover - runs in the forked init
    try:
        # Our own fds go above the range the user's fds will occupy (stdio, preserved, start socket).
        high = 4 + plan.preserve_fds
        chan = Channel(socket.socket(fileno=_move_high(chan.sock.detach(), high)))
        plan.stub_fd = _move_high(plan.stub_fd, high)
        if plan.listen_fd >= 0:
            plan.listen_fd = _move_high(plan.listen_fd, high)
        if plan.console_fd >= 0:
            plan.console_fd = _move_high(plan.console_fd, high)
        if plan.late_pid_fd >= 0:
            plan.late_pid_fd = _move_high(plan.late_pid_fd, high)
        _setup(plan, chan)
    except BaseException as e:  # noqa: BLE001
        try:
            chan.send(error=_located(plan, e))
        finally:
            os._exit(1)


_AT = [""]  # the config.json entry being applied, so that its failure names the JSON path
# The step under way (named in a bare syscall failure), and a hint once the filter is loaded early.
_STEP = ["", ""]
EARLY_FILTER_HINT = ("linux.seccomp is already loaded here: with process.noNewPrivileges false it is loaded "
                     "before the user change, so the profile must allow this step's syscalls")
_FILTER_ERRNOS: list[frozenset[int] | None] = [None]  # what the filter loaded early can return


def filter_may_explain(e: BaseException, errnos: frozenset[int] | None) -> bool:
    """Whether a filter loaded early may have caused e: not a failure whose errno it never returns
    (a missing program's ENOENT under a profile answering ENOSYS and EPERM)."""
    code = getattr(e, "errno", None)
    return code is None or errnos is None or code in errnos


def _located(plan: InitPlan, e: BaseException) -> str:
    msg = describe(e)
    if isinstance(e, OSError) and _STEP[0]:
        msg = f"{_STEP[0]}: {msg}"
    if _STEP[1] and not isinstance(e, ConfigError) and filter_may_explain(e, _FILTER_ERRNOS[0]):
        msg = f"{msg} ({_STEP[1]})"
    return f"{plan.config_file}: {_AT[0]}: {msg}" if _AT[0] and not isinstance(e, ConfigError) else msg


def _setup(plan: InitPlan, chan: Channel) -> None:
    trace.mark("init:start")
    config, linux = plan.config, plan.config.get("linux") or {}
    process = config["process"]
    hooks_cfg = config.get("hooks") or {}
    if log.debugging():  # the runtime logs it (runc's words, so that its tests and users find them)
        chan.send(debug="child process in init(): mounts, pivot_root, the process's security")
    # A new mount namespace, or one joined by path: either way the rootfs is set up (mounts,
    # pivot_root) inside it, as runc does. Without one, the process runs in the runtime's root.
    own_mountns = "mount" in plan.namespaces
    userns = "user" in plan.namespaces or not plan.host_root  # in one, whoever made it
    # Read through the host's /proc now: after pivot_root, /proc/self is the container's to fake.
    setgroups_ok = not userns or _setgroups_allowed()
    _prctl.prctl(_prctl.PR_SET_DUMPABLE, 0)  # host Python in the container's namespaces: no ptrace, no /proc peeking
    _prctl.prctl(_prctl.PR_SET_PDEATHSIG, 0)
    os.umask(0)
    os.setsid()

    if process.get("oomScoreAdj") is not None:
        from ..security import sched  # preloaded, as every import in this module's functions

        _STEP[0] = "setting process.oomScoreAdj"
        sched.apply_oom_score_adj(process["oomScoreAdj"])
    if process.get("apparmorProfile") or process.get("selinuxLabel"):
        from ..security import lsm

        # AppArmor/SELinux labels for the next exec, written now through the host's /proc: the
        # container's /proc could be faked by a mount over it (CVE-2019-16884).
        _STEP[0] = "setting the process's LSM label"
        lsm.apply_exec_labels(process)

    # -- root filesystem (still seeing the host's /proc, which fd-based mounting relies on) ----------
    root_fd = -1
    late_readonly: list[tuple[int, mounts.MountSpec]] = []
    if own_mountns:
        prop = mounts.PROPAGATION.get(linux.get("rootfsPropagation") or "", lib.MS_SLAVE | lib.MS_REC)
        if prop & lib.MS_UNBINDABLE:  # binds of host sources need bindable mounts: set after the pivot
            prop = lib.MS_SLAVE | lib.MS_REC
        _STEP[0] = "making root.path a mount (linux.rootfsPropagation)"
        pivot.make_rootfs_mount(plan.rootfs, prop if prop & lib.MS_REC else prop | lib.MS_REC)
        root_fd = os.open(plan.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        new_cgroupns = "cgroup" in plan.namespaces and not plan.namespaces["cgroup"]
        _STEP[0] = "mounting mounts"
        for i, entry in enumerate(config.get("mounts") or []):
            _AT[0] = f"mounts[{i}]"
            m = mounts.parse(entry, i, plan.bundle, plan.config_file)
            if mounts.deferred_readonly(m):
                late_readonly.append((i, m))
            if m.type == "cgroup":
                mounts.mount_cgroupfs(root_fd, m, {**plan.cgroup_view, **plan.cgroup_paths}, new_cgroupns)
            elif m.type == "proc" and plan.late_pid_fd >= 0:
                _mount_proc_in_joined_pidns(root_fd, m, plan)
            elif m.type == "sysfs" and userns:
                mounts.mount_sysfs_in_userns(root_fd, m)
            else:
                mounts.mount_into(root_fd, m, linux.get("mountLabel"), plan.idmap_trees.get(i, -1))
        _AT[0] = ""
        checkpoint("init:mounted")
        if devices.needs_dev_setup(config):
            _STEP[0] = "creating /dev's device nodes (linux.devices and the defaults)"
            devices.create_devices(root_fd, config, userns)
        _STEP[0] = "making process.cwd"
        _make_cwd(root_fd, process["cwd"])

    if "uts" in plan.namespaces:
        if config.get("hostname"):
            _STEP[0] = "setting hostname"
            socket.sethostname(config["hostname"])
        if config.get("domainname"):
            _STEP[0] = "setting domainname"
            native.setdomainname(config["domainname"])
    if linux.get("sysctl"):  # ipc/net sysctls act on the writer's namespaces, whichever /proc is used
        sysctl_root = root_fd if root_fd >= 0 else os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _write_sysctls(sysctl_root, linux["sysctl"])
        finally:
            if sysctl_root != root_fd:
                os.close(sysctl_root)

    # -- hooks: prestart/createRuntime in the runtime (it answers), then createContainer here -----
    if hooks_cfg.get("prestart") or hooks_cfg.get("createRuntime"):
        chan.send(hooks=True)
        if not (chan.recv() or {}).get("ok"):
            os._exit(1)
    if hooks_cfg.get("createContainer"):
        _STEP[0] = "running hooks.createContainer"
        if root_fd >= 0:  # runc runs them from the rootfs (a hook may use paths relative to it)
            os.fchdir(root_fd)
        hooks.run_all("createContainer", hooks_cfg["createContainer"], _hook_state(plan, "created"))
    start_state = _hook_state(plan, "created") if hooks_cfg.get("startContainer") else None  # host pid: now
    if plan.console_fd >= 0 and plan.late_pid_fd < 0:  # devpts is mounted: the pty becomes stdio, its master goes to the socket
        from .. import console

        _STEP[0] = "attaching the terminal (process.terminal)"
        pty_root = root_fd if root_fd >= 0 else os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        console.attach_pty(pty_root, plan.console_fd, process)
        if pty_root != root_fd:
            os.close(pty_root)
        else:  # a rootfs of its own: /dev/console is the pty (runtime-spec's default devices; runc)
            _STEP[0] = "bind-mounting the terminal on /dev/console"
            devices.bind_console(root_fd, 0)

    if root_fd >= 0:
        for i, m in late_readonly:  # read-only tmpfs and /dev, now that what goes in them is made
            _AT[0] = f"mounts[{i}]"
            mounts.remount_deferred(root_fd, m)
        _AT[0] = ""
        _STEP[0] = "masking linux.maskedPaths"
        for p in linux.get("maskedPaths") or []:
            paths.mask(root_fd, p)
        _STEP[0] = "making linux.readonlyPaths read-only"
        for p in linux.get("readonlyPaths") or []:
            paths.make_readonly(root_fd, p)
        os.close(root_fd)
        _STEP[0] = "entering root.path (" + ("--no-pivot: MS_MOVE and chroot" if plan.no_pivot else "pivot_root") + ")"
        if plan.no_pivot:
            pivot.move_root(plan.rootfs)
        else:
            pivot.pivot(plan.rootfs)
        if linux.get("rootfsPropagation"):
            _STEP[0] = "setting linux.rootfsPropagation"
            pivot.apply_root_propagation(mounts.PROPAGATION[linux["rootfsPropagation"]])
        if (config.get("root") or {}).get("readonly"):
            _STEP[0] = "making root.readonly"
            pivot.remount_root_readonly()
    trace.mark("init:pivot")
    block_imports()
    late_pid = plan.late_pid_fd >= 0
    _STEP[0] = "joining the pid namespace of linux.namespaces"
    pid_pipe = _join_pid_namespace(plan) if late_pid else (-1, -1)
    hooks_fd = -1
    if start_state is not None and plan.listen_fd >= 0 and not late_pid:  # run by the stub after `start`
        hooks_fd = _move_high(stub.hooks_memfd(start_state, hooks_cfg["startContainer"]), 5 + plan.preserve_fds)

    # -- the process: privileged steps while still root, the user change, then the filter last -------
    if not plan.no_new_keyring:
        try:
            native.join_session_keyring(None)
        except OSError:
            pass  # keyrings disabled or not permitted (runc ignores this too)
    if process.get("scheduler") is not None or process.get("ioPriority") is not None:
        from ..security import sched

        _STEP[0] = "setting process.scheduler and process.ioPriority"
        sched.apply_scheduler(process.get("scheduler"))  # real-time policies/negative nice: CAP_SYS_NICE
        sched.apply_io_priority(process.get("ioPriority"))  # IOPRIO_CLASS_RT: CAP_SYS_ADMIN
    if process.get("rlimits"):
        from ..security import rlimits

        _STEP[0] = "setting process.rlimits"
        rlimits.apply(process["rlimits"])  # raising a hard limit needs CAP_SYS_RESOURCE
    env = _environment(process, plan)
    user = process.get("user") or {}
    _STEP[0] = "arranging the process's file descriptors"
    listen_fd = _arrange_fds(plan)  # before any filter: close_range is a syscall old profiles lack
    if hooks_fd >= 0:
        os.set_inheritable(hooks_fd, True)
    seccomp_fd = -1
    if plan.seccomp is not None:
        from ..security import seccomp

        if seccomp.can_load_late(process, plan.cap_sets):
            # Loaded by the stub as the very last step before the program's execve (after `start`'s
            # accept and the startContainer hooks): a profile need not allow any syscall of ours.
            seccomp_fd = _move_high(stub.filter_memfd(plan.seccomp.bpf), 5 + plan.preserve_fds)
            os.set_inheritable(seccomp_fd, True)
        else:
            # Neither no_new_privs nor CAP_SYS_ADMIN kept by the user: load it now, while we still
            # hold CAP_SYS_ADMIN (as runc does). What follows runs under the filter (README: "seccomp").
            _STEP[0] = "loading linux.seccomp"
            seccomp.load(plan.seccomp, chan)
            _STEP[1], _FILTER_ERRNOS[0] = EARLY_FILTER_HINT, plan.seccomp.errnos
    _STEP[0] = "chdir to process.cwd"
    _chdir(process["cwd"])
    _STEP[0] = "switching to process.user"
    identity.switch_user(user, plan.cap_sets, setgroups_allowed=setgroups_ok)
    _STEP[0] = "chdir to process.cwd as process.user"
    _chdir(process["cwd"])  # again as the user: the cwd may be reachable only for them
    _STEP[0] = "checking process.cwd (getcwd)"
    check_cwd_inside(process["cwd"])  # CVE-2024-21626
    _STEP[0] = "looking up process.args[0]"
    path = find_executable(process["args"][0], env)
    if process.get("noNewPrivileges"):
        _STEP[0] = "setting process.noNewPrivileges (prctl)"
        _prctl.prctl(_prctl.PR_SET_NO_NEW_PRIVS, 1)
    if linux.get("personality") is not None:
        from ..security import personality

        _STEP[0] = "setting linux.personality"
        personality.apply(linux["personality"])
    if linux.get("memoryPolicy") is not None:
        from ..security import numa

        _STEP[0] = "setting linux.memoryPolicy"
        numa.apply(linux["memoryPolicy"])
    os.umask(user.get("umask", 0o022))
    if log.debugging():
        chan.send(debug="init: closing the pipe to signal completion (the init waits for start)")
    if late_pid:
        hooks_fd = _fork_into_pid_namespace(plan, chan, pid_pipe, start_state)
    trace.mark("init:ready")
    _STEP[0] = "telling the runtime the container is ready"
    if trace.FILE is not None:
        chan.send(ready=True, trace=[m for m in trace.MARKS if m[0].startswith("init:")])
    else:
        chan.send(ready=True)
    flags = plan.seccomp.flags if seccomp_fd >= 0 else 0
    argv = ["pyruntime-init", stub.stub_fds_arg(listen_fd, hooks_fd, seccomp_fd, flags), path, *process["args"]]
    _STEP[0] = "executing the init stub (execveat)"
    os.execve(plan.stub_fd, argv, env)


def _mount_proc_in_joined_pidns(root_fd: int, m: mounts.MountSpec, plan: InitPlan) -> None:
    """procfs shows the pid namespace of the process that mounts it, and we join ours only after
    pivot_root: a child first chroots into the rootfs (so it never has the host's root or cwd), then
    enters the pid namespace and forks the process that mounts procfs on its cwd, the target."""
    mounts._check_ordinary_dir(root_fd, m)
    target = resolve.mkdirs_in_root(root_fd, m.destination)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                caps.last_cap()  # read (and cached) from the host's /proc, before the chroot
                os.fchdir(target)
                os.chroot(plan.rootfs)
                # What the mounter, visible in the pid namespace, holds: no fd but its target and no
                # capability but CAP_SYS_ADMIN (a process there that hijacked it would gain nothing).
                os.closerange(3, min(target, plan.late_pid_fd))
                os.closerange(min(target, plan.late_pid_fd) + 1, max(target, plan.late_pid_fd))
                os.closerange(max(target, plan.late_pid_fd) + 1, 1 << 20)
                admin = caps.CAPS["CAP_SYS_ADMIN"]
                caps.drop_bounding({"bounding": {admin}})
                native.capset({admin}, {admin}, set())
                native.setns(plan.late_pid_fd, lib.CLONE_NEWPID)
                os.close(plan.late_pid_fd)
                mounter = os.fork()
                if mounter == 0:
                    try:
                        native.mount(m.source, ".", "proc", m.flags & ~lib.MS_REMOUNT, m.data or None)
                        os._exit(0)
                    except OSError as e:
                        os._exit(e.errno or 1)
                    except BaseException:  # noqa: BLE001
                        os._exit(1)
                code = os.waitstatus_to_exitcode(os.waitpid(mounter, 0)[1])
            except OSError as e:
                code = e.errno or 1
            finally:
                os._exit(code if 0 <= code < 256 else 1)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if code:
            raise RuntimeFailure(f"mount proc on {m.destination}: {os.strerror(code).lower()}")
    finally:
        os.close(target)


def _join_pid_namespace(plan: InitPlan) -> tuple[int, int]:
    """Enter the configured pid namespace for our children, now that our root and cwd are the
    container's (before, its processes, another container's, maybe with CAP_SYS_PTRACE, could have
    opened /proc/<pid>/root of a process whose root was the host's). We ourselves stay invisible to
    them: the init is forked into it only once it holds no more than the container's privileges
    (_fork_into_pid_namespace). Returns a pipe that tells the init its pid as the runtime sees it."""
    r, w = os.pipe2(os.O_CLOEXEC)
    r, w = _move_high(r, 5 + plan.preserve_fds), _move_high(w, 5 + plan.preserve_fds)
    native.setns(plan.late_pid_fd, lib.CLONE_NEWPID)
    os.close(plan.late_pid_fd)
    plan.late_pid_fd = -1
    return r, w


def _fork_into_pid_namespace(plan: InitPlan, chan: Channel, pid_pipe: tuple[int, int],
                             start_state: dict[str, Any] | None) -> int:
    """Fork the init into the joined pid namespace, after the user change and the filter: a process
    there that hijacked it (ptrace) would gain nothing the container does not have. This process
    reports the init's pid and exits. In the init: a session of its own, the terminal, and the
    startContainer hooks' state with its pid; returns the hooks' memfd (or -1)."""
    r, w = pid_pipe
    pid = os.fork()
    if pid:
        os.close(r)
        chan.send(pid=pid)
        os.write(w, str(pid).encode())
        os._exit(0)
    os.close(w)
    host_pid = int(os.read(r, 32) or b"0")
    os.close(r)
    os.setsid()
    if plan.console_fd >= 0:
        from .. import console

        root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            console.attach_pty(root, plan.console_fd, plan.config["process"])
        finally:
            os.close(root)
    if start_state is None or plan.listen_fd < 0:
        return -1
    start_state["pid"] = host_pid
    hooks_fd = _move_high(stub.hooks_memfd(start_state, plan.config["hooks"]["startContainer"]), 5 + plan.preserve_fds)
    os.set_inheritable(hooks_fd, True)
    return hooks_fd


def describe(e: BaseException) -> str:
    if isinstance(e, RuntimeFailure):
        return str(e)
    if isinstance(e, OSError):
        why = (e.strerror or str(e)).lower()
        return f"{e.filename}: {why}" if e.filename else why
    return f"{type(e).__name__}: {e}"


def _hook_state(plan: InitPlan, status: str) -> dict[str, Any]:
    # The pid as the host sees it: /proc is still the host's here (before pivot_root), so /proc/self is.
    state = {"ociVersion": "1.3.0", "id": plan.container_id, "status": status, "pid": int(os.readlink("/proc/self")),
             "bundle": plan.bundle}
    if plan.config.get("annotations"):
        state["annotations"] = plan.config["annotations"]
    return state


def _write_sysctls(root_fd: int, sysctls: dict[str, str]) -> None:
    from ..security import sysctl

    for key, value in sysctls.items():
        rel = "proc/sys/" + sysctl.proc_path(key)
        try:
            fd = native.openat2(root_fd, rel, os.O_WRONLY,  # no O_TRUNC: checked to be procfs first
                                lib.RESOLVE_IN_ROOT | lib.RESOLVE_NO_SYMLINKS | lib.RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            raise RuntimeFailure(f"sysctl {key}: {e.strerror.lower()}") from None
        try:
            if lib.pr_fs_type(fd) != lib.PROC_SUPER_MAGIC:  # a mount over /proc/sys would swallow it
                raise RuntimeFailure(f"sysctl {key}: /{rel} is not on procfs (something is mounted over it)")
            os.write(fd, value.encode())
        except OSError as e:
            raise RuntimeFailure(f"sysctl {key}={value}: {e.strerror.lower()}") from None
        finally:
            os.close(fd)


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "allow"
    except OSError:
        return True


def _environment(process: dict[str, Any], plan: InitPlan) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in process.get("env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    env.update(plan.extra_env)
    if "HOME" not in env:  # runc: the user's home in the container's /etc/passwd, else /
        env["HOME"] = _passwd_home((process.get("user") or {}).get("uid", 0))
    return env


def _passwd_home(uid: int) -> str:
    """Read after pivot_root, so the file is the container's: hostile, so only a regular file, a
    bounded read, and an absolute home are accepted."""
    try:
        fd = os.open("/etc/passwd", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return "/"
    try:
        data = os.read(fd, 1 << 20) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        data = b""
    finally:
        os.close(fd)
    for line in data.split(b"\n"):
        fields = line.split(b":")
        if len(fields) >= 6 and fields[2] == str(uid).encode() and fields[5].startswith(b"/"):
            return fields[5].decode(errors="replace")
    return "/"


def _make_cwd(root_fd: int, cwd: str) -> None:
    """A missing cwd is created inside the rootfs, after the mounts (it may be in one), as runc does."""
    try:
        os.close(resolve.mkdirs_in_root(root_fd, cwd))
    except OSError as e:
        raise RuntimeFailure(f"process.cwd {cwd!r}: {(e.strerror or str(e)).lower()}") from None


def check_cwd_inside(cwd: str) -> None:
    """After chdir: a cwd outside our root (reached through a leaked fd or a magic link) is named
    "(unreachable)..." by the kernel, which glibc's getcwd() reports as ENOENT."""
    try:
        here = os.getcwd()
    except FileNotFoundError:
        here = "(unreachable)"
    except OSError as e:
        raise RuntimeFailure(f"process.cwd {cwd!r}: getcwd: {(e.strerror or str(e)).lower()}") from None
    if here.startswith("(unreachable)") or not here.startswith("/"):
        raise RuntimeFailure(f"process.cwd {cwd!r} is outside the container")


def _chdir(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except PermissionError:
        pass  # tried again after the user change
    except OSError as e:
        raise RuntimeFailure(f"process.cwd {cwd!r}: {e.strerror.lower()}") from None


def find_executable(name: str, env: dict[str, str]) -> str:
    """runc's lookup, with the messages podman classifies into exit codes 126/127."""
    if "/" in name:
        return _check_executable(name, name)
    code: int | None = errno.ENOENT  # what the lookup met, for the seccomp hint (filter_may_explain)
    for d in (env.get("PATH") or DEFAULT_PATH).split(":"):
        candidate = os.path.join(d or ".", name)
        try:
            return _check_executable(name, candidate)
        except RuntimeFailure as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                code = e.errno
            continue
    failure = RuntimeFailure(f'exec: "{name}": executable file not found in $PATH')
    failure.errno = code
    raise failure


def _check_executable(name: str, path: str) -> str:
    try:
        st = os.stat(path)
    except OSError as e:
        failure = RuntimeFailure(f'exec: "{name}": stat {path}: {e.strerror.lower()}')
        failure.errno = e.errno
        raise failure from None
    if stat.S_ISDIR(st.st_mode):
        failure = RuntimeFailure(f'exec: "{name}": {path} is a directory: permission denied')
    elif not os.access(path, os.X_OK):
        failure = RuntimeFailure(f'exec: "{name}": {path}: permission denied')
    else:
        return path
    failure.errno = errno.EACCES  # the file's answer, not a filter's (filter_may_explain)
    raise failure


def _move_high(fd: int, low: int) -> int:
    """Renumber fd to the lowest free number >= low (close-on-exec)."""
    if fd >= low:
        return fd
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low)
    os.close(fd)
    return new


def _arrange_fds(plan: InitPlan) -> int:
    """Keep stdio, LISTEN_FDS/--preserve-fds (3..3+n-1) and the start socket (next number); every other
    fd is closed on exec, so nothing of the runtime's reaches the container."""
    keep = 3 + plan.preserve_fds
    listen_fd = -1
    if plan.listen_fd >= 0:
        listen_fd = keep
        if plan.listen_fd != listen_fd:
            os.dup2(plan.listen_fd, listen_fd, inheritable=True)
        else:
            os.set_inheritable(listen_fd, True)
        keep += 1
    for fd in range(3, 3 + plan.preserve_fds):
        # The caller's fds reached the runtime through an exec, so they are inheritable; a close-on-exec
        # fd in the range is the runtime's own (its --log file, the state dir) and must not get through.
        try:
            if not os.get_inheritable(fd):
                os.close(fd)
        except OSError:
            pass
    native.close_range_cloexec(keep)
    return listen_fd


class _ImportBarrier:
    """A meta path finder that refuses every import: after pivot_root, any file an import would read
    is one the container controls."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        raise ImportError(f"pyruntime: import of {name!r} refused inside the container")


def block_imports() -> None:
    sys.meta_path.insert(0, _ImportBarrier())
    sys.path_importer_cache.clear()
    sys.path[:] = []

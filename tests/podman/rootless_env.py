"""The rootless podman tier's environment (imported by test_podman_rootless.py): a private,
unprivileged user made for the session, and podman run as that user (`runuser`) with pyruntime, and
runc as the control.

What the session makes, and removes at the end (the user and everything of it):
- a user `pyrt-rootless-<hex>` (useradd, a uid far from the usual ones, its own group, its home in
  our directory) with a subordinate uid/gid range of 65536 that no /etc/subuid or /etc/subgid entry
  uses (usermod --add-subuids/--add-subgids);
- under one temporary directory: its XDG_RUNTIME_DIR (mode 700, its own), its HOME, its podman
  configuration (containers.conf with `netns = "none"`: slirp4netns is not needed), its storage
  (overlay, native rootless overlay of this kernel: graphroot/runroot/static dir/tmp_dir there) and
  the busybox image imported from bundles/busybox/rootfs (no registry);
- podman's rootless "pause" process (it holds the user namespace that podman, conmon and the
  runtime join), conmons and containers: all ended by pid (the processes of the user's uid, and
  those in podman's user namespace; never another process that only shares a subordinate uid).

The runtime must be readable and executable by that user, from / down. When it is not (a checkout
under /root, mode 700), the session runs a copy of what the runtime imports (pyruntime, click, the
cffi and prctl extension modules) under the temporary directory with the same launcher
(pyruntime/launcher.py); the interpreter itself must be reachable (Debian's /usr/bin/python3.11 is).
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from podman_env import IMAGE, ROOTFS, RUNTIME

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the runtime imports outside the standard library (names in site-packages, globs allowed).
RUNTIME_SITE = ["pyruntime", "click", "_cffi_backend*.so", "_prctl*.so", "prctl.py", "pyroute2"]


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the rootless podman tier makes its user as root"
    for tool in ("podman", "conmon", "runc", "useradd", "userdel", "runuser", "newuidmap", "newgidmap"):
        if not shutil.which(tool):
            return f"{tool} is not installed (make deps: podman conmon runc uidmap passwd util-linux)"
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            return "user namespaces are disabled (user.max_user_namespaces = 0)"
    except (OSError, ValueError):
        pass
    if not (ROOTFS / "bin" / "busybox").exists():
        return "bundles/busybox/rootfs is missing (make bundles)"
    return None


def uid_pids(uid: int) -> list[int]:
    """Every process whose real uid is uid (the test user's: podman, its pause process, conmons,
    runtimes; containers run as subordinate uids or as the user itself, mapped to root)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or _state(int(entry)) in ("Z", "X", ""):  # a zombie is no process left
            continue
        try:
            for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if int(line.split()[1]) == uid:
                        found.append(int(entry))
                    break
        except (OSError, ValueError):
            continue
    return found


def userns_pids(userns: str) -> list[int]:
    """Processes in the user namespace podman made (its pause process holds it): a container's,
    whatever subordinate uid it runs as. Never a process of anyone else that only shares a uid."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _state(int(entry)) not in ("Z", "X", ""):
            try:
                if os.readlink(f"/proc/{entry}/ns/user") == userns:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{p}/status") and _state(p) not in ("Z", "X", "") for p in pids) \
            and time.monotonic() < deadline:
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return ""
    return data[data.rindex(b")") + 2:].split()[0].decode()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "gone"


def subid_range(path: str, user: str) -> tuple[int, int] | None:
    for line in Path(path).read_text().splitlines():
        parts = line.split(":")
        if len(parts) == 3 and parts[0] == user:
            return int(parts[1]), int(parts[2])
    return None


def free_subid_range() -> int:
    """The start of 65536 ids no /etc/subuid or /etc/subgid entry uses, above the ranges useradd
    allocates (SUB_UID_MAX 600100000) and other tests pick."""
    taken = []
    for f in ("/etc/subuid", "/etc/subgid"):
        for line in Path(f).read_text().splitlines():
            parts = line.split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                taken.append((int(parts[1]), int(parts[1]) + int(parts[2])))
    while True:
        first = 700_000_000 + random.randrange(10000) * 65536
        if all(first + 65536 <= lo or first >= hi for lo, hi in taken):
            return first


class RootlessUser:
    """useradd/userdel of a private test user; never touches an existing one."""

    def __init__(self, home: Path) -> None:
        self.name = f"pyrt-rootless-{uuid.uuid4().hex[:6]}"
        self.home = home
        self.created_files: list[str] = []
        self.uid = self.gid = -1
        self.subuid: tuple[int, int] | None = None

    def create(self) -> None:
        try:
            pwd.getpwnam(self.name)
            raise RuntimeError(f"user {self.name} exists already: refusing to touch it")
        except KeyError:
            pass
        for f in ("/etc/subuid", "/etc/subgid"):  # usermod --add-subuids needs them
            if not os.path.exists(f):
                Path(f).touch(0o644)
                self.created_files.append(f)
        # A uid far from 1000 (tests run containers as 1000, 1001...) and from the subordinate ranges,
        # so that ending this user's processes by uid can never touch anybody else's.
        uid = 350000 + random.randrange(50000)
        while subprocess.run(["getent", "passwd", str(uid)], capture_output=True, timeout=30).returncode == 0:
            uid += 1
        subprocess.run(["useradd", "--uid", str(uid), "--no-create-home", "--home-dir", str(self.home),
                        "--shell", "/usr/sbin/nologin", "--user-group", self.name],
                       check=True, capture_output=True, timeout=60)
        entry = pwd.getpwnam(self.name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        first = free_subid_range()
        subprocess.run(["usermod", "--add-subuids", f"{first}-{first + 65535}",
                        "--add-subgids", f"{first}-{first + 65535}", self.name],
                       check=True, capture_output=True, timeout=60)
        self.subuid = subid_range("/etc/subuid", self.name)
        if self.subuid is None or subid_range("/etc/subgid", self.name) is None:
            raise RuntimeError(f"usermod gave {self.name} no /etc/subuid or /etc/subgid range")

    def remove(self) -> list[str]:
        """userdel (its subordinate ranges and group go with it); returns what was left."""
        left = []
        if self.uid < 0:
            return left
        subprocess.run(["userdel", self.name], capture_output=True, timeout=60)
        subprocess.run(["groupdel", self.name], capture_output=True, timeout=60)  # if userdel kept it
        for f in ("/etc/subuid", "/etc/subgid"):
            if os.path.exists(f) and subid_range(f, self.name) is not None:
                subprocess.run(["sed", "-i", f"/^{self.name}:/d", f], timeout=30)
        for f in self.created_files:
            if os.path.exists(f) and not Path(f).read_text().strip():
                os.unlink(f)
        try:
            pwd.getpwnam(self.name)
            left.append(f"user {self.name}")
        except KeyError:
            pass
        for f in ("/etc/subuid", "/etc/subgid", "/etc/group"):
            if os.path.exists(f) and any(ln.startswith(self.name + ":") for ln in Path(f).read_text().splitlines()):
                left.append(f"{f} entry")
        return left


def reachable_runtime(user: str, base: Path) -> str:
    """RUNTIME if the user can run it; else a copy of what it imports under base (see the module doc)."""
    probe = ["runuser", "-u", user, "--", "env", "-i", f"PATH={PATH}"]
    if subprocess.run([*probe, RUNTIME, "--version"], capture_output=True, timeout=60).returncode == 0:
        return RUNTIME
    python = os.path.realpath(sys.executable)
    if subprocess.run([*probe, python, "-c", "pass"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip(f"the interpreter {python} is not executable by an unprivileged user "
                    "(use Debian's /usr/bin/python3.11, as the Makefile does)")
    if os.environ.get("PYRUNTIME_BIN"):
        pytest.skip(f"PYRUNTIME_BIN={RUNTIME} is not executable by an unprivileged user")
    site = Path(sysconfig.get_path("platlib"))
    copy = base / "runtime-site"
    copy.mkdir()
    for pattern in RUNTIME_SITE:
        for src in site.glob(pattern):
            if src.is_dir():
                shutil.copytree(src, copy / src.name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, copy / src.name)
    launcher = base / "pyruntime"
    launcher.write_text(f"#!{python} -IS\n# a readable copy for the rootless tier (tests/podman/rootless_env.py)\n"
                        f"import sys\nsys.path += [{str(copy)!r}]\nfrom pyruntime.__main__ import main\nmain()\n")
    for root, dirs, files in os.walk(base / "runtime-site"):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    launcher.chmod(0o755)
    proc = subprocess.run([*probe, str(launcher), "--version"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"the readable copy of the runtime does not start: {proc.stderr.strip()}")
    return str(launcher)


class RootlessPodman:
    """The session's environment: `podman` run as the test user, bound to one runtime per call."""

    image = IMAGE

    def __init__(self, base: Path, user: RootlessUser, runtime_path: str) -> None:
        self.base, self.user, self.runtime_path = base, user, runtime_path
        self.xdg = base / "xdg"
        self.env = {
            "PATH": PATH, "HOME": str(user.home), "USER": user.name, "LOGNAME": user.name,
            "XDG_RUNTIME_DIR": str(self.xdg), "TMPDIR": str(base / "tmp"),
            "CONTAINERS_CONF": str(base / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(base / "registries.conf"),
        }

    def argv(self, *args: str) -> list[str]:
        env = [f"{k}={v}" for k, v in self.env.items()]
        return ["runuser", "-u", self.user.name, "--", "env", "-i", *env, "podman", *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(self.argv(*args), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                  timeout=timeout, cwd="/")
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def write_config(self) -> None:
        b = self.base
        for d in ("xdg", "home", "storage", "runroot", "tmp", "volumes"):
            (b / d).mkdir()
        (b / "xdg").chmod(0o700)
        (b / "containers.conf").write_text(f"""# tests/podman/rootless_env.py: a private rootless podman configuration
[containers]
# no slirp4netns: containers get a network namespace with lo only
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime_supports_json = ["crun", "runc", "pyruntime"]
# the exit command (podman container cleanup) reads no containers.conf: static_dir must be
# graphroot/libpod, where it looks by default
static_dir = "{b}/storage/libpod"
tmp_dir = "{b}/tmp"
volume_path = "{b}/volumes"
lock_type = "file"
num_locks = 128

[engine.runtimes]
pyruntime = ["{self.runtime_path}"]
runc = ["{shutil.which('runc')}"]
""")
        # rootless podman ignores graphroot: rootless_storage_path is the one it uses
        (b / "storage.conf").write_text(f"""[storage]
driver = "overlay"
graphroot = "{b}/storage"
runroot = "{b}/runroot"
rootless_storage_path = "{b}/storage"
""")
        (b / "registries.conf").write_text("unqualified-search-registries = []\n")
        for root, dirs, files in os.walk(b):
            for name in dirs + files:
                os.chown(os.path.join(root, name), self.user.uid, self.user.gid, follow_symlinks=False)
            dirs[:] = [d for d in dirs if d != "runtime-site"]

    def import_image(self) -> None:
        tar = self.base / "tmp" / "rootfs.tar"
        with tarfile.open(tar, "w") as t:
            t.add(ROOTFS, arcname=".")
        os.chown(tar, self.user.uid, self.user.gid)
        self("import", "-q", str(tar), IMAGE, timeout=120)
        tar.unlink()

    def pause_pid(self) -> int | None:
        try:
            return int((self.base / "tmp" / "pause.pid").read_text())
        except (OSError, ValueError):
            return None


def mounts_under(base: str) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        if target == base or target.startswith(base + "/"):
            points.append(target)
    return list(reversed(points))


@pytest.fixture(scope="session", name="rootless_env")
def rootless_env_fixture() -> Iterator[RootlessPodman]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="pyrt-rootless-", dir="/tmp"))
    base.chmod(0o755)  # the user traverses it; what is its own below is its alone
    user = RootlessUser(base / "home")
    env: RootlessPodman | None = None
    try:
        user.create()
        env = RootlessPodman(base, user, reachable_runtime(user.name, base))
        env.write_config()
        env.import_image()
        yield env
    finally:
        left: list[str] = []
        pause = env.pause_pid() if env is not None else None  # (system reset removes its pid file)
        try:
            userns = os.readlink(f"/proc/{pause}/ns/user") if pause else ""
        except OSError:
            userns = ""
        if env is not None and user.uid >= 0:
            for args in (("rm", "-a", "-f", "-t", "0"), ("system", "reset", "-f")):
                try:
                    env(*args, check=False, timeout=120)
                except subprocess.TimeoutExpired:
                    left.append(f"podman {' '.join(args)} timed out")
        if user.uid >= 0:
            for _ in range(3):  # podman's pause process (expected), and anything else of the user's
                pids = sorted(set(uid_pids(user.uid) + (userns_pids(userns) if userns else [])))
                if not pids:
                    break
                left += [f"process {p} ({_comm(p)})" for p in pids if p != pause]
                kill_all(pids)
        for m in mounts_under(str(base)):
            subprocess.run(["umount", "-l", m], capture_output=True, timeout=30)
            left.append(f"mount {m}")
        shutil.rmtree(base, ignore_errors=True)
        left += user.remove()
        if os.path.exists(base):
            left.append(f"directory {base}")
    assert not left, f"the rootless session left: {left}"

"""The docker tier's fixtures (imported by test_docker.py, not a conftest.py, which would shadow the
top-level conftest module): a private dockerd on a private containerd, a `docker` caller bound to one
runtime (pyruntime as `pyrt`, and docker's built-in `runc` as the control), and leak checks.

Nothing of the host's docker state is used: dockerd gets its own --config-file (daemon.json with the
`runtimes` entry the README documents), --data-root, --exec-root, --pidfile, socket, trust key, cgroup
parent and containerd (own root, state and socket, via --containerd); no iptables, no IP forwarding
change, no bridge (--bridge=none: containers get a loopback only). The docker CLI gets DOCKER_HOST and
its own DOCKER_CONFIG. /var/lib/docker, /run/docker.sock and /etc/docker are never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "containerd"))
from private import PrivateContainerd, PrivateDir, pids_naming, stop_pid, wait_for, wait_for_text  # noqa: E402
from pyruntime_tests_conftest import ROOTFS, RUNTIME, cgroup_dirs  # noqa: E402

IMAGE = "pyrt-busybox:latest"
RUNTIMES = {"pyruntime": "pyrt", "runc": "runc"}  # our runtime name -> docker's runtime name
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
SHIM = ("containerd-shim-runc-v2",)


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the docker tier runs as root"
    for tool in ("dockerd", "docker", "containerd", "ctr", "runc", "containerd-shim-runc-v2"):
        if not shutil.which(tool):
            return f"{tool} is not installed (make deps installs docker.io)"
    if not (ROOTFS / "bin" / "busybox").exists():
        return "bundles/busybox/rootfs is missing (make bundles)"
    return None


class DockerEnv:
    def __init__(self, base: Path, tag: str) -> None:
        self.base, self.tag = base, tag
        self.sock = str(base / "docker.sock")
        self.exec_root = base / "exec"
        self.data_root = base / "data"
        self.namespace = f"pyrt-dk-{tag}"
        self.cgroup_parent = f"/pyrt-docker-{tag}"
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=str(base / "cli"))
        self.daemon: subprocess.Popen | None = None

    @property
    def state_root(self) -> Path:
        """The runtime's --root: the v2 shim's options.Root (dockerd: <exec-root>/runtime-runc for every
        runtime) plus the containerd namespace."""
        return self.exec_root / "runtime-runc" / self.namespace

    def state_ids(self) -> set[str]:
        root = self.state_root
        return {n for n in os.listdir(root) if _HEX64.match(n)} if root.is_dir() else set()

    def cgroups(self) -> list[Path]:
        """Container cgroups under our parent (the parent itself excluded)."""
        return [d for d in cgroup_dirs(self.cgroup_parent) if d.name != self.cgroup_parent.lstrip("/")]

    def shims(self) -> list[int]:
        """The runc v2 shims of our containerd (their -address names our directory)."""
        return pids_naming(str(self.base), SHIM)

    def docker(self, *args: str, check: bool = True, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess:
        """docker ARGS; output through files (a container may inherit the client's stdio)."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            kw.setdefault("stdin", subprocess.DEVNULL)
            proc = subprocess.run(["docker", *args], stdout=out, stderr=err, env=self.env, timeout=timeout,
                                  cwd="/", **kw)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc


def _start(denv: DockerEnv) -> None:
    base = denv.base
    (base / "cli").mkdir()
    # daemon.json: the `runtimes` entry as documented in the README (only the path differs).
    (base / "daemon.json").write_text(json.dumps({
        "runtimes": {"pyrt": {"path": RUNTIME}},
        "deprecated-key-path": str(base / "key.json"),  # else /etc/docker/key.json is created
    }))
    argv = ["dockerd", "--config-file", str(base / "daemon.json"), "--data-root", str(denv.data_root),
            "--exec-root", str(denv.exec_root), "--pidfile", str(base / "docker.pid"),
            "-H", f"unix://{denv.sock}", "--containerd", str(base / "containerd.sock"),
            "--containerd-namespace", denv.namespace, "--containerd-plugins-namespace", f"{denv.namespace}-p",
            "--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none",
            "--userland-proxy=false", "--cgroup-parent", denv.cgroup_parent, "--storage-driver", "overlay2",
            "--exec-opt", "native.cgroupdriver=cgroupfs"]
    log_path = base / "dockerd.log"
    with open(log_path, "ab") as log:
        denv.daemon = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                       start_new_session=True, env=denv.env)
    wait_for(lambda: denv.daemon.poll() is not None or denv.docker("version", check=False, timeout=30).returncode == 0,
             90, "dockerd", log_path)
    if denv.daemon.poll() is not None:
        raise RuntimeError(f"dockerd exited {denv.daemon.returncode}: {log_path.read_text()[-3000:]}")
    # the image: the busybox rootfs as one layer (no registry)
    with tarfile.open(base / "rootfs.tar", "w") as tar:
        tar.add(str(ROOTFS), arcname=".")
    denv.docker("import", "-c", f"ENV {PATH_ENV}", str(base / "rootfs.tar"), IMAGE)
    (base / "rootfs.tar").unlink()


@pytest.fixture(scope="session", name="docker_env")
def docker_env_fixture() -> Iterator[DockerEnv]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    pdir = PrivateDir("pyrt-docker-")
    denv = DockerEnv(pdir.path, uuid.uuid4().hex[:8])
    containerd = PrivateContainerd(pdir.path)
    try:
        containerd.start()
        _start(denv)
    except BaseException:
        if denv.daemon is not None:
            stop_pid(denv.daemon.pid, denv.daemon)
        containerd.stop()
        pdir.cleanup()
        raise
    yield denv
    left = denv.docker("ps", "-aq", check=False).stdout.split()
    if left:
        denv.docker("rm", "-f", *left, check=False)
    stop_pid(denv.daemon.pid, denv.daemon)
    containerd.stop()
    shims = denv.shims()
    leftover_cgroups = denv.cgroups()
    # what a daemon leaves mounted after a clean stop (its overlay2 home) is not a leak; a
    # container's rootfs or a network namespace file is
    container_mounts = [m for m in Path("/proc/self/mountinfo").read_text().splitlines()
                        if str(denv.base) in m.split()[4] and (" - overlay " in m or " - nsfs " in m)]
    left = pdir.cleanup()
    for d in cgroup_dirs(denv.cgroup_parent):
        try:
            d.rmdir()
        except OSError:
            pass
    remaining = cgroup_dirs(denv.cgroup_parent)
    assert not shims, f"containerd shims left after the session: {shims}"
    assert not left["processes"], f"processes left after the session: {left['processes']}"
    assert not container_mounts, f"container mounts left after the daemons stopped: {container_mounts}"
    assert not leftover_cgroups and not remaining, f"cgroups left: {leftover_cgroups or remaining}"
    assert not pdir.path.exists()


class Docker:
    """docker with `--runtime NAME` on run/create; other commands as they are."""

    image = IMAGE

    def __init__(self, runtime: str, denv: DockerEnv) -> None:
        self.runtime, self.denv = runtime, denv
        self.name = RUNTIMES[runtime]

    def __call__(self, *args: str, **kw: Any) -> subprocess.CompletedProcess:
        if args and args[0] in ("run", "create"):
            args = (args[0], "--runtime", self.name, *args[1:])
        return self.denv.docker(*args, **kw)

    def argv(self, *args: str) -> list[str]:
        if args and args[0] in ("run", "create"):
            args = (args[0], "--runtime", self.name, *args[1:])
        return ["docker", *args]

    def runtime_state(self, cid: str) -> dict[str, Any]:
        """`RUNTIME --root <the shim's root> state ID`, called with this runtime's own binary."""
        binary = RUNTIME if self.runtime == "pyruntime" else shutil.which("runc")
        proc = subprocess.run([binary, "--root", str(self.denv.state_root), "state", cid], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def run_d(self, *args: str, **kw: Any) -> str:
        return self("run", "-d", *args, **kw).stdout.strip()

    def inspect(self, cid: str, fmt: str) -> str:
        return self("inspect", "--format", fmt, cid).stdout.strip()

    def cgroup_file(self, cid: str, controller: str, v1_name: str, v2_name: str) -> Path:
        base = Path("/sys/fs/cgroup")
        rel = f"{self.denv.cgroup_parent.lstrip('/')}/{cid}"
        if (base / controller / "cgroup.procs").exists():
            return base / controller / rel / v1_name
        return base / rel / v2_name

    def wait_log(self, cid: str, text: str, timeout: float = 20) -> str:
        return wait_for_text(lambda: self("logs", cid).stdout, text, timeout)


def _settled(check: Any, timeout: float = 10.0) -> Any:
    """What check() returns once empty, or after timeout (a shim exits a moment after its task)."""
    deadline = time.monotonic() + timeout
    while (value := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def check_leaks(d: Docker, request: pytest.FixtureRequest, failed_before: int, states_before: set[str]) -> None:
    denv = d.denv
    left = denv.docker("ps", "-aq", "--no-trunc", check=False).stdout.split()
    if left:
        denv.docker("rm", "-f", *left, check=False)
    leaked_states = sorted(_settled(lambda: denv.state_ids() - states_before))
    for cid in leaked_states:
        binary = RUNTIME if d.runtime == "pyruntime" else shutil.which("runc")
        subprocess.run([binary, "--root", str(denv.state_root), "delete", "--force", cid], capture_output=True,
                       timeout=60)
    leaked_cgroups = [str(c) for c in _settled(denv.cgroups)]
    for c in sorted(leaked_cgroups, key=lambda p: -p.count("/")):
        try:
            os.rmdir(c)
        except OSError:
            pass
    shims = _settled(denv.shims)
    if request.session.testsfailed != failed_before:
        return
    assert not left, f"test left docker containers: {left}"
    assert not leaked_states, f"runtime state left in {denv.state_root}: {leaked_states}"
    assert not leaked_cgroups, f"cgroups left: {leaked_cgroups}"
    assert not shims, f"shims left: {shims}"


@pytest.fixture(params=list(RUNTIMES), name="docker")
def docker_fixture(request: pytest.FixtureRequest, docker_env: DockerEnv) -> Iterator[Docker]:
    d = Docker(request.param, docker_env)
    failed_before, states_before = request.session.testsfailed, docker_env.state_ids()
    yield d
    check_leaks(d, request, failed_before, states_before)


@pytest.fixture(name="dockers")
def dockers_fixture(request: pytest.FixtureRequest, docker_env: DockerEnv) -> Iterator[dict[str, Docker]]:
    """Both runtimes in one test, for side-by-side comparisons."""
    both = {name: Docker(name, docker_env) for name in RUNTIMES}
    failed_before, states_before = request.session.testsfailed, docker_env.state_ids()
    yield both
    check_leaks(both["pyruntime"], request, failed_before, states_before)

"""The buildah tier's fixtures (imported by test_buildah.py; not a conftest.py): a private containers
environment made by tests/podman/setup.sh (its own storage with localhost/pyrt-busybox, containers.conf,
registries.conf, network config), shared by buildah and `podman build`, plus a private TMPDIR where
buildah writes its bundles. A `buildah` caller is bound to one runtime (pyruntime, runc as control).

Leak checks after every test: no new buildah container (working containers), no runtime state
`buildah-*` in the runtime's default root (buildah passes no --root), no `buildah-*` cgroup.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "containerd"))
sys.path.insert(0, str(REPO / "tests" / "podman"))
from podman_env import libpod_cgroups, remove_cgroup_dir  # noqa: E402  (`podman build` makes podman's parent)
from private import default_root_restorer, remove_new_plain_cgroup_dirs, unmount_under  # noqa: E402
from pyruntime_tests_conftest import ROOTFS, RUNTIME  # noqa: E402

IMAGE = "localhost/pyrt-busybox"
STATE_ROOTS = {"pyruntime": "/run/pyruntime", "runc": "/run/runc"}
CGROUP_BASE = Path("/sys/fs/cgroup")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the buildah tier runs as root"
    for tool in ("buildah", "podman", "runc"):
        if not shutil.which(tool):
            return f"{tool} is not installed (make deps)"
    if not (ROOTFS / "bin" / "busybox").exists():
        return "bundles/busybox/rootfs is missing (make bundles)"
    return None


def buildah_cgroups() -> set[str]:
    """cgroups of buildah's containers (named buildah-<bundle>) wherever the runtime placed them."""
    found: set[str] = set()
    for hierarchy in CGROUP_BASE.iterdir():
        for pattern in ("buildah-*", "*/buildah-*"):
            found.update(str(p) for p in hierarchy.glob(pattern) if p.is_dir())
    return found


def state_ids(runtime: str) -> set[str]:
    root = STATE_ROOTS[runtime]
    return {n for n in os.listdir(root) if n.startswith("buildah-")} if os.path.isdir(root) else set()


class BuildahEnv:
    def __init__(self, directory: str, env: dict[str, str]) -> None:
        self.dir, self.env = directory, env

    def run(self, argv: list[str], check: bool = True, timeout: float = 180, **kw: Any) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            kw.setdefault("stdin", subprocess.DEVNULL)
            proc = subprocess.run(argv, stdout=out, stderr=err, env=self.env, timeout=timeout, cwd="/", **kw)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-3000:]}")
        return proc

    def containers(self) -> set[str]:
        return set(self.run(["buildah", "containers", "-a", "-q", "--notruncate"], check=False).stdout.split())


@pytest.fixture(scope="session", name="buildah_env")
def buildah_env_fixture() -> Iterator[BuildahEnv]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    directory = tempfile.mkdtemp(prefix="pyrt-buildah-", dir="/tmp")
    tag = uuid.uuid4().hex[:8]
    env = dict(os.environ, PYRT_PODMAN_BRIDGE=f"pyrb{tag}", PYRT_PODMAN_SUBNET=f"10.232.{int(tag[:2], 16)}")
    try:
        subprocess.run(["sh", str(REPO / "tests" / "podman" / "setup.sh"), directory, RUNTIME], check=True,
                       env=env, capture_output=True, timeout=120)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"tests/podman/setup.sh failed: {e.stderr.decode().strip()}") from None
    os.makedirs(f"{directory}/buildah-tmp")
    env.update(CONTAINERS_CONF=f"{directory}/containers.conf", CONTAINERS_STORAGE_CONF=f"{directory}/storage.conf",
               CONTAINERS_REGISTRIES_CONF=f"{directory}/registries.conf", TMPDIR=f"{directory}/buildah-tmp")
    benv = BuildahEnv(directory, env)
    cgroups_before = buildah_cgroups()
    libpod_before = libpod_cgroups()
    tops_before = set(os.listdir(CGROUP_BASE))
    restore_root = default_root_restorer(STATE_ROOTS["pyruntime"])
    yield benv
    left = benv.containers()
    if left:
        benv.run(["buildah", "rm", *left], check=False)
    subprocess.run(["sh", str(REPO / "tests" / "podman" / "teardown.sh"), directory], env=env,
                   capture_output=True, timeout=300)
    mounts = unmount_under(directory)
    shutil.rmtree(directory, ignore_errors=True)
    # `podman build` leaves /libpod_parent and /libpod_parent/conmon behind: what we caused, if empty
    for d in sorted(libpod_cgroups() - libpod_before, key=lambda p: -p.count("/")):
        remove_cgroup_dir(d)
    remove_new_plain_cgroup_dirs(tops_before)
    restore_root()
    left_cgroups = sorted(buildah_cgroups() - cgroups_before)
    assert not mounts, f"mounts left under {directory}: {mounts}"
    assert not left_cgroups, f"cgroups left after the session: {left_cgroups}"


class Buildah:
    image = IMAGE

    def __init__(self, runtime: str, benv: BuildahEnv) -> None:
        self.runtime, self.benv = runtime, benv
        self.path = RUNTIME if runtime == "pyruntime" else shutil.which(runtime) or runtime

    def __call__(self, *args: str, **kw: Any) -> subprocess.CompletedProcess:
        """buildah ARGS, with --runtime and --isolation oci added to bud/build and run."""
        if args and args[0] in ("bud", "build", "run"):
            args = (args[0], "--runtime", self.path, "--isolation", "oci", *args[1:])
        return self.benv.run(["buildah", *args], **kw)

    def podman(self, *args: str, **kw: Any) -> subprocess.CompletedProcess:
        """podman --runtime NAME ARGS (NAME: a key of the private containers.conf's [engine.runtimes])."""
        return self.benv.run(["podman", "--runtime", self.runtime, *args], **kw)

    def context(self, tmp_path: Path, containerfile: str) -> Path:
        ctx = tmp_path / "ctx"
        ctx.mkdir(parents=True, exist_ok=True)
        (ctx / "Containerfile").write_text(containerfile)
        return ctx

    def tag(self, name: str) -> str:
        return f"localhost/pyrt-{name}-{self.runtime}-{uuid.uuid4().hex[:6]}"


def _settled(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while (value := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


@pytest.fixture(params=list(STATE_ROOTS), name="buildah")
def buildah_fixture(request: pytest.FixtureRequest, buildah_env: BuildahEnv) -> Iterator[Buildah]:
    b = Buildah(request.param, buildah_env)
    failed_before = request.session.testsfailed
    containers_before, states_before, cgroups_before = buildah_env.containers(), state_ids(b.runtime), buildah_cgroups()
    yield b
    left = sorted(buildah_env.containers() - containers_before)
    if left:
        buildah_env.run(["buildah", "rm", *left], check=False)
    leaked_states = sorted(_settled(lambda: state_ids(b.runtime) - states_before))
    for cid in leaked_states:
        subprocess.run([b.path, "delete", "--force", cid], capture_output=True, timeout=60)
    leaked_cgroups = sorted(_settled(lambda: buildah_cgroups() - cgroups_before))
    for d in sorted(leaked_cgroups, key=lambda p: -p.count("/")):
        try:
            os.rmdir(d)
        except OSError:
            pass
    if request.session.testsfailed != failed_before:
        return
    assert not left, f"test left buildah containers: {left}"
    assert not leaked_states, f"runtime state left in {STATE_ROOTS[b.runtime]}: {leaked_states}"
    assert not leaked_cgroups, f"cgroups left: {leaked_cgroups}"


STEP_OUTPUT = re.compile(r"^(STEP \d+/\d+|COMMIT|Getting image|Copying|Writing manifest|Storing signatures|-->|"
                         r"Successfully tagged|[0-9a-f]{64}$|time=)")


def run_output(build_stdout: str) -> list[str]:
    """The lines the RUN steps printed (buildah's own progress lines removed)."""
    return [line for line in build_stdout.splitlines() if not STEP_OUTPUT.match(line)]

"""containerd 1.6 with its runc v2 shim driving pyruntime (`ctr run --runc-binary`), on a private
containerd (its own root, state, socket and namespace) and a locally built busybox image."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import oci_image  # noqa: E402
from pyruntime_tests_conftest import ROOTFS, RUNTIME, cgroup_dirs, valid_id  # noqa: E402

pytestmark = pytest.mark.skipif(not shutil.which("containerd") or not shutil.which("ctr"),
                                reason="containerd is not installed")
IMAGE = "localhost/busybox:latest"


class Ctr:
    def __init__(self, sock: str, namespace: str, cgroup_parent: str) -> None:
        self.sock, self.namespace, self.cgroup_parent = sock, namespace, cgroup_parent

    def __call__(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ctr", "-a", self.sock, "-n", self.namespace, *args], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: exit {proc.returncode}: {proc.stderr}")
        return proc

    def run(self, cid: str, *cmd: str, detach: bool = False, check: bool = True) -> subprocess.CompletedProcess:
        flags = ["-d"] if detach else ["--rm"]
        return self(("run"), "--runc-binary", RUNTIME, "--cgroup", f"{self.cgroup_parent}/{cid}", *flags,
                    IMAGE, cid, *cmd, check=check)

    def task_status(self, cid: str) -> str:
        for line in self("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[-1]
        return "absent"


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    base = Path(tempfile.mkdtemp(prefix="prt-ctd-", dir="/tmp"))
    sock = str(base / "containerd.sock")
    (base / "config.toml").write_text(
        f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n')
    log = open(base / "containerd.log", "w")
    daemon = subprocess.Popen(["containerd", "--config", str(base / "config.toml")], stdout=log, stderr=log)
    namespace = f"prt{uuid.uuid4().hex[:8]}"
    cgroup_parent = f"/pyruntime-test-ctd-{namespace}"
    ctr = Ctr(sock, namespace, cgroup_parent)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["ctr", "-a", sock, "version"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, (base / "containerd.log").read_text()
            time.sleep(0.1)
        oci_image.build(ROOTFS, base / "image.tar", IMAGE)
        ctr("images", "import", str(base / "image.tar"))
        yield ctr
    finally:
        for line in ctr("task", "ls", check=False).stdout.splitlines()[1:]:
            cid = line.split()[0]
            ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
            ctr("task", "rm", "-f", cid, check=False)
        for line in ctr("containers", "ls", "-q", check=False).stdout.split():
            ctr("containers", "rm", line, check=False)
        ctr("images", "rm", IMAGE, check=False)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            target = line.split()[4]
            if target.startswith(str(base)):
                subprocess.run(["umount", "-l", target], check=False)
        shutil.rmtree(base, ignore_errors=True)
        state_root = Path("/run/containerd/runc") / namespace
        left = sorted(n for n in os.listdir(state_root) if valid_id(n)) if state_root.exists() else []
        shutil.rmtree(state_root, ignore_errors=True)
        for d in cgroup_dirs(cgroup_parent):
            d.rmdir()
        assert not left, f"containerd test left pyruntime state behind: {left}"


def test_ctr_run_foreground_output(containerd):
    proc = containerd.run("c-echo", "sh", "-c", "echo hi from containerd; exit 0")
    assert "hi from containerd" in proc.stdout


def test_ctr_task_exec_pause_kill_delete(containerd):
    cid = "c-life"
    containerd.run(cid, "sleep", "300", detach=True)
    try:
        assert containerd.task_status(cid) == "RUNNING"
        out = containerd("task", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo exec-ok; cat /proc/1/cmdline")
        assert out.stdout.startswith("exec-ok")
        assert "sleep" in out.stdout
        failing = containerd("task", "exec", "--exec-id", "e2", cid, "sh", "-c", "exit 3", check=False)
        assert failing.returncode == 3
        ps = json.loads(subprocess.run([RUNTIME, "--root", f"/run/containerd/runc/{containerd.namespace}", "ps",
                                        "--format", "json", cid], capture_output=True, text=True).stdout)
        assert len(ps) >= 1
        containerd("task", "pause", cid)
        assert containerd.task_status(cid) == "PAUSED"
        containerd("task", "resume", cid)
        assert containerd.task_status(cid) == "RUNNING"
        containerd("task", "kill", "-s", "SIGKILL", cid)
        deadline = time.monotonic() + 20
        while containerd.task_status(cid) != "STOPPED":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        containerd("task", "rm", "-f", cid, check=False)
        containerd("containers", "rm", cid, check=False)
    assert containerd.task_status(cid) == "absent"
    assert not list(Path(f"/run/containerd/runc/{containerd.namespace}").glob(cid))

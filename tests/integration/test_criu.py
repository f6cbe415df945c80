"""checkpoint/restore with CRIU, for real: needs a kernel on which `criu check` passes.

This host's kernel does not (CRIU 3.17 on 6.18): these tests skip here and run inside the qemu guest
of tests/vm/test_criu_vm.py (Debian's 6.1 kernel, CRIU's modules loaded, lo up), one host test per
guest case. The container's stdio are pipes (as runc's checkpoint.bats uses): CRIU cannot dump a
file opened outside the container's mount namespace, and restore hands its own stdio to the
restored process in their place (descriptors.json).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from _termutil import ConsoleReceiver
from pyruntime_tests_conftest import cgroup_dirs, wait_until

SLOW = float(os.environ.get("PYRUNTIME_TEST_SLOWDOWN", "1"))
COUNTER = ["sh", "-c", "i=0; while :; do echo $i; i=$((i+1)); sleep 0.2; done"]


def criu_works() -> bool:
    return bool(shutil.which("criu")) and subprocess.run(["criu", "check"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not criu_works(), reason="CRIU cannot work on this kernel (`criu check` fails): "
                                "tests/vm/test_criu_vm.py runs these in a guest where it does")


class Pipes:
    """A container's stdio: stdin and stdout+stderr pipes whose other ends the test holds."""

    def __init__(self) -> None:
        self.stdin_r, self.stdin_w = os.pipe()
        self.out_r, self.out_w = os.pipe()
        self.buf = b""

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        """Run a runtime command whose stdio (inherited by the container) are these pipes."""
        proc = subprocess.run(argv, stdin=self.stdin_r, stdout=self.out_w, stderr=self.out_w, timeout=timeout)
        os.close(self.stdin_r)
        os.close(self.out_w)  # the container holds its own copy: EOF here once it is gone
        self.stdin_r = self.out_w = -1
        return proc

    def read_for(self, seconds: float) -> bytes:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if not select.select([self.out_r], [], [], left)[0]:
                break
            data = os.read(self.out_r, 65536)
            if not data:
                break
            self.buf += data
        return self.buf

    def read_to_eof(self, timeout: float) -> bytes:
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0 and select.select([self.out_r], [], [], left)[0]:
            data = os.read(self.out_r, 65536)
            if not data:
                return self.buf
            self.buf += data
        raise AssertionError(f"no EOF on the old stdout within {timeout} s: {self.buf[-200:]!r}")

    def numbers(self) -> list[int]:
        return [int(x) for x in self.buf.split() if x.isdigit()]

    def close(self) -> None:
        for fd in (self.stdin_r, self.stdin_w, self.out_r, self.out_w):
            if fd >= 0:
                os.close(fd)


@pytest.fixture
def pipes():  # noqa: ANN201
    made: list[Pipes] = []

    def make() -> Pipes:
        made.append(Pipes())
        return made[-1]

    yield make
    for p in made:
        p.close()


def start_counter(rt, make_bundle, cid: str, pipes, edit=None) -> tuple[Path, Pipes]:  # noqa: ANN001
    bundle = make_bundle(COUNTER, edit=edit, name=f"b-{cid}")
    p = pipes()
    proc = p.run(rt.argv("run", "-d", "-b", str(bundle), cid), timeout=60 * SLOW)
    assert proc.returncode == 0, p.read_for(1).decode(errors="replace")
    wait_until(lambda: len(p.read_for(0.5).split()) >= 3, timeout=30 * SLOW, what="the counter's first lines")
    return bundle, p


def restore(rt, pipes, bundle: Path, cid: str, *args: str) -> Pipes:  # noqa: ANN001
    p = pipes()
    proc = p.run(rt.argv("restore", "-d", "-b", str(bundle), *args, cid), timeout=120 * SLOW)
    assert proc.returncode == 0, p.read_for(1).decode(errors="replace")
    return p


def assert_goes_on(before: Pipes, after: Pipes) -> None:
    """The restored counter goes on from where the checkpoint stopped it (not from 0)."""
    last = before.numbers()[-1]
    wait_until(lambda: after.read_for(0.5) and after.numbers(), timeout=30 * SLOW, what="output after restore")
    first = after.numbers()[0]
    assert last < first <= last + 2, f"counted to {last} before the checkpoint, {first} after the restore"


def cleanup(rt, cid: str) -> None:  # noqa: ANN001
    rt("delete", "--force", cid)


def test_checkpoint_and_restore_goes_on_counting(rt, make_bundle, cid, pipes, tmp_path, cgroup_parent):
    hook_log = tmp_path / "hooks"

    def prestart_hook(config):  # noqa: ANN001, ANN202 - records the state each prestart hook is given
        config["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat >> {hook_log}; echo >> {hook_log}"]}]}

    bundle, before = start_counter(rt, make_bundle, cid, pipes, edit=prestart_hook)
    image = tmp_path / "image"
    rt("checkpoint", "--image-path", str(image), "--work-path", str(tmp_path / "work"), cid, timeout=120 * SLOW)
    assert rt.ids() == [], "runc destroys a checkpointed container"
    assert (image / "descriptors.json").exists() and (tmp_path / "work" / "dump.log").exists()
    before.read_to_eof(30 * SLOW)
    after = restore(rt, pipes, bundle, cid, "--image-path", str(image), "--work-path", str(tmp_path / "work"))
    st = rt.state(cid)
    assert st["status"] == "running" and st["pid"] > 0
    assert_goes_on(before, after)
    hook_states = [json.loads(line) for line in hook_log.read_text().splitlines() if line.strip()]
    assert len(hook_states) == 2 and hook_states[1]["pid"] == st["pid"], "prestart runs at restore with its pid"
    assert rt("exec", cid, "sh", "-c", "echo in-restored").stdout.strip() == "in-restored"
    procs = [int(p) for d in cgroup_dirs(f"{cgroup_parent}/b-{cid}") for p in (d / "cgroup.procs").read_text().split()]
    assert st["pid"] in procs, "the restored init is in the container's cgroup"
    rt("kill", cid, "KILL")
    wait_until(lambda: rt.state(cid)["status"] == "stopped", timeout=30 * SLOW, what="stopped")
    rt("delete", cid)
    assert not cgroup_dirs(f"{cgroup_parent}/b-{cid}")


def test_leave_running(rt, make_bundle, cid, pipes, tmp_path):
    _, before = start_counter(rt, make_bundle, cid, pipes)
    rt("checkpoint", "--image-path", str(tmp_path / "image"), "--leave-running", cid, timeout=120 * SLOW)
    assert rt.state(cid)["status"] == "running"
    seen = len(before.numbers())
    wait_until(lambda: len(before.read_for(0.5).split()) > seen + 2, timeout=30 * SLOW, what="counting on")
    assert (tmp_path / "image" / "inventory.img").exists()
    cleanup(rt, cid)


def test_pre_dump_then_dump(rt, make_bundle, cid, pipes, tmp_path):
    bundle, before = start_counter(rt, make_bundle, cid, pipes)
    rt("checkpoint", "--pre-dump", "--image-path", str(tmp_path / "parent"), cid, timeout=120 * SLOW)
    assert rt.state(cid)["status"] == "running"
    rt("checkpoint", "--parent-path", "../parent", "--image-path", str(tmp_path / "image"), cid, timeout=120 * SLOW)
    assert rt.ids() == []
    before.read_to_eof(30 * SLOW)
    after = restore(rt, pipes, bundle, cid, "--image-path", str(tmp_path / "image"))
    assert_goes_on(before, after)
    cleanup(rt, cid)


def test_restore_into_a_new_container_id(rt, make_bundle, cid, pipes, tmp_path):
    bundle, before = start_counter(rt, make_bundle, cid, pipes)
    rt("checkpoint", "--image-path", str(tmp_path / "image"), cid, timeout=120 * SLOW)
    before.read_to_eof(30 * SLOW)
    after = restore(rt, pipes, bundle, f"{cid}-new", "--image-path", str(tmp_path / "image"))
    assert rt.ids() == [f"{cid}-new"]
    assert rt.state(f"{cid}-new")["status"] == "running"
    assert_goes_on(before, after)
    cleanup(rt, f"{cid}-new")


def read_master(fd: int, seconds: float) -> bytes:
    out = b""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0 and select.select([fd], [], [], left)[0]:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    return out


def test_restore_with_a_console_socket(rt, make_bundle, cid, tmp_path):
    def terminal(config):  # noqa: ANN001, ANN202
        config["process"]["terminal"] = True

    bundle = make_bundle(COUNTER, edit=terminal, name=f"b-{cid}")
    sockdir = tempfile.mkdtemp(dir="/tmp")  # sockets do not work on the guest's 9p share
    receivers: list[ConsoleReceiver] = []
    try:
        first = ConsoleReceiver(os.path.join(sockdir, "first.sock"), timeout=30 * SLOW)
        receivers.append(first)
        rt("run", "-d", "--console-socket", first.path, "-b", str(bundle), cid, timeout=60 * SLOW)
        master = first.wait(30 * SLOW)
        seen = [b""]
        wait_until(lambda: len(seen.append(read_master(master, 0.5)) or b"".join(seen).split()) >= 3,
                   timeout=30 * SLOW, what="output on the terminal")
        rt("checkpoint", "--image-path", str(tmp_path / "image"), cid, timeout=120 * SLOW)
        seen.append(read_master(master, 1))
        last = [int(x) for x in b"".join(seen).split() if x.isdigit()][-1]
        second = ConsoleReceiver(os.path.join(sockdir, "second.sock"), timeout=30 * SLOW)
        receivers.append(second)
        rt("restore", "-d", "--console-socket", second.path, "--image-path", str(tmp_path / "image"),
           "-b", str(bundle), cid, timeout=120 * SLOW)
        restored = second.wait(30 * SLOW)
        assert rt.state(cid)["status"] == "running"
        out = [b""]
        wait_until(lambda: len(out.append(read_master(restored, 0.5)) or b"".join(out).split()) >= 2,
                   timeout=30 * SLOW, what="output on the restored terminal")
        first_after = [int(x) for x in b"".join(out).split() if x.isdigit()][0]
        assert last < first_after <= last + 2, f"{last} on the old terminal, {first_after} on the restored one"
    finally:
        for receiver in receivers:
            receiver.close()
        shutil.rmtree(sockdir, ignore_errors=True)
    cleanup(rt, cid)


def test_restore_from_a_missing_image_path_leaves_nothing(rt, make_bundle, cid, tmp_path, cgroup_parent):
    bundle = make_bundle(COUNTER, name=f"b-{cid}")
    missing = tmp_path / "no-such-image"
    proc = rt("restore", "-d", "--image-path", str(missing), "-b", str(bundle), cid, check=False)
    assert proc.returncode == 1 and str(missing) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert rt.ids() == [] and not missing.exists()
    assert not cgroup_dirs(f"{cgroup_parent}/b-{cid}")


def test_checkpoint_error_leaves_the_container_running(rt, make_bundle, cid, pipes, tmp_path):
    """An --image-path that cannot be made (under a regular file): one line, nothing made, untouched."""
    start_counter(rt, make_bundle, cid, pipes)
    (tmp_path / "file").write_text("")
    bad = tmp_path / "file" / "image"
    proc = rt("checkpoint", "--image-path", str(bad), cid, check=False)
    assert proc.returncode == 1 and str(bad) in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert rt.state(cid)["status"] == "running"
    cleanup(rt, cid)


def test_failed_restore_names_criu_log_and_leaves_nothing(rt, make_bundle, cid, pipes, tmp_path, cgroup_parent):
    """CRIU itself fails (a truncated image): the error names CRIU's log; no state, no cgroup left."""
    bundle, before = start_counter(rt, make_bundle, cid, pipes)
    image = tmp_path / "image"
    rt("checkpoint", "--image-path", str(image), "--leave-running", cid, timeout=120 * SLOW)
    cleanup(rt, cid)
    for f in image.glob("pstree.img"):
        f.write_bytes(b"")
    p = pipes()
    proc = p.run(rt.argv("restore", "-d", "-b", str(bundle), "--image-path", str(image), cid), timeout=120 * SLOW)
    err = p.read_for(2).decode(errors="replace")
    assert proc.returncode == 1 and str(image / "restore.log") in err, err
    assert rt.ids() == []
    assert not cgroup_dirs(f"{cgroup_parent}/b-{cid}")

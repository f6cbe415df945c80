"""checkpoint/restore: on a host where CRIU cannot work (this CI kernel), both commands fail with
CRIU's own reason and leave the container untouched."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def criu_works() -> bool:
    return bool(shutil.which("criu")) and subprocess.run(["criu", "check"], capture_output=True).returncode == 0


@pytest.mark.skipif(criu_works(), reason="CRIU works on this host: the failure path does not apply")
def test_checkpoint_reports_why_criu_cannot_work_and_leaves_container_running(rt, make_bundle, cid, tmp_path):
    bundle = make_bundle(["sleep", "60"])
    rt("run", "-d", "-b", str(bundle), cid)
    proc = rt("checkpoint", "--image-path", str(tmp_path / "img"), "--leave-running", cid, check=False)
    assert proc.returncode == 1
    assert "CRIU" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert rt.state(cid)["status"] == "running"
    assert str(tmp_path / "img" / "dump.log") in proc.stderr  # CRIU's log is named
    restore = rt("restore", "-d", "--image-path", str(tmp_path / "img"), "-b", str(bundle), "r-" + cid, check=False)
    assert restore.returncode == 1 and "CRIU" in restore.stderr, restore.stderr
    assert str(tmp_path / "img" / "restore.log") in restore.stderr
    assert rt.ids() == [cid]
    rt("delete", "--force", cid)


def test_checkpoint_of_unknown_container(rt):
    proc = rt("checkpoint", "nosuch", check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr


def test_criu_binary_from_the_global_flag(rt, make_bundle, cid, tmp_path):
    rt("run", "-d", "-b", str(make_bundle(["sleep", "60"])), cid)
    missing = str(tmp_path / "no-criu-here")
    proc = rt("--criu", missing, "checkpoint", "--image-path", str(tmp_path / "img"), cid, check=False)
    assert proc.returncode == 1 and f"{missing} not found" in proc.stderr
    assert rt.state(cid)["status"] == "running"
    rt("delete", "--force", cid)


def test_parent_path_must_be_relative_and_exist(rt, make_bundle, cid, tmp_path):
    """runc's checkpoint.bats 'bad --parent-path': refused before CRIU runs, naming the flag."""
    rt("run", "-d", "-b", str(make_bundle(["sleep", "60"])), cid)
    image = tmp_path / "img"
    for parent in (str(tmp_path / "parent"), "parent"):  # absolute; relative but missing
        proc = rt("checkpoint", "--image-path", str(image), "--parent-path", parent, cid, check=False)
        assert proc.returncode == 1 and "--parent-path" in proc.stderr, proc.stderr
        assert rt.state(cid)["status"] == "running"
    rt("delete", "--force", cid)

"""Resource exhaustion (issue 8): a full state filesystem, an unwritable pid file, few fds. Each is
one clear line and exit 1 (or success), with nothing left behind."""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

import pytest
from leaks import assert_clean, new_tag, tag_config, tagged_env
from pyruntime_tests_conftest import Runtime


def _one_line(proc):
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr


@pytest.fixture
def full_root(tmp_path: Path):
    """A state root on a tiny tmpfs that is already full."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    try:
        fd = os.open(mnt / "fill", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        yield mnt / "root"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_full_state_filesystem(rt, full_root, make_bundle, cid, cgroup_parent, tmp_path):
    tag = new_tag()
    bundle = make_bundle(["sleep", "1000"], edit=lambda c: tag_config(c, tag))
    full = Runtime(rt.binary, str(full_root))
    proc = full("create", "--bundle", str(bundle), cid, env=tagged_env(tag), check=False)
    assert proc.returncode == 1
    _one_line(proc)
    assert "no space left on device" in proc.stderr, proc.stderr
    assert full.ids() == []
    assert_clean(full, tag, cgroup_parent, bundle)  # (the tiny tmpfs itself is mounted under tmp_path)


def test_unwritable_pid_file(rt, make_bundle, cid, cgroup_parent, tmp_path):
    tag = new_tag()
    bundle = make_bundle(["sleep", "1000"], edit=lambda c: tag_config(c, tag))
    proc = rt("create", "--pid-file", str(tmp_path / "no" / "such" / "pid"), "--bundle", str(bundle), cid,
              env=tagged_env(tag), check=False)
    assert proc.returncode == 1
    _one_line(proc)
    assert "--pid-file" in proc.stderr
    assert_clean(rt, tag, cgroup_parent, tmp_path)


@pytest.mark.parametrize("nofile", [8, 10, 16])
def test_few_file_descriptors(rt, make_bundle, cid, cgroup_parent, tmp_path, nofile):
    tag = new_tag()
    bundle = make_bundle(["sleep", "1000"], edit=lambda c: tag_config(c, tag))

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = rt("run", "--detach", "--bundle", str(bundle), cid, env=tagged_env(tag), check=False, preexec_fn=limit)
    if proc.returncode != 0:
        assert proc.returncode == 1
        _one_line(proc)
        assert rt.ids() == []
    else:
        rt("delete", "--force", cid)
    assert_clean(rt, tag, cgroup_parent, tmp_path)

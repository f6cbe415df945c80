"""Compiled seccomp filters are kept between calls (pyruntime/security/seccomp_cache.py): the same
profile is built once and then read back; a different profile never gets another's filter; a cache
directory that is not safely the caller's is not used."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

CACHE = Path("/run/pyruntime-cache/seccomp")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the host root's cache")


def _deny(*names: str) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": list(names), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]}


def _edit(profile: dict):  # noqa: ANN202
    def edit(c: dict) -> None:
        c["linux"]["seccomp"] = profile
    return edit


@pytest.fixture
def new_entries():  # noqa: ANN201 - the cache files a test adds are removed after it
    before = set(os.listdir(CACHE)) if CACHE.is_dir() else set()
    yield lambda: sorted(set(os.listdir(CACHE)) - before) if CACHE.is_dir() else []
    for name in set(os.listdir(CACHE)) - before if CACHE.is_dir() else ():
        (CACHE / name).unlink(missing_ok=True)


SCRIPT = "mkdir /tmp/d 2>&1; echo mkdir=$?; touch /tmp/f 2>&1; echo touch=$?"


def test_the_same_profile_is_built_once_and_enforced_each_time(rt, make_bundle, cid, new_entries):
    marker = f"mkdirat-{cid}"  # an unknown name makes this profile's key new: skipped by libseccomp, as runc does
    profile = _deny("mkdir", "mkdirat", marker)
    outs = []
    for n in range(2):
        bundle = make_bundle(["sh", "-c", SCRIPT], edit=_edit(profile))
        outs.append(rt("run", "--bundle", str(bundle), f"{cid}-{n}").stdout)
        if n == 0:
            added = new_entries()
            assert len(added) == 1, added
            data = (CACHE / added[0]).read_bytes()
            assert marker.encode() in data  # the key: every input of the build
            stamp = (CACHE / added[0]).stat().st_mtime_ns
    assert new_entries() == added and (CACHE / added[0]).stat().st_mtime_ns == stamp  # read, not rebuilt
    for out in outs:
        assert "mkdir=1" in out and "Permission denied" in out and "touch=0" in out, out


def test_a_different_profile_never_gets_another_filter(rt, make_bundle, cid, new_entries):
    first = _deny("mkdir", "mkdirat", f"first-{cid}")
    second = _deny("openat", "open", "creat", f"second-{cid}")  # touch fails, mkdir works
    rt("run", "--bundle", str(make_bundle(["sh", "-c", SCRIPT], edit=_edit(first))), f"{cid}-a")
    out = rt("run", "--bundle", str(make_bundle(["sh", "-c", SCRIPT], edit=_edit(second))), f"{cid}-b").stdout
    assert "mkdir=0" in out and "touch=1" in out, out
    assert len(new_entries()) == 2


def test_a_cache_directory_open_to_others_is_not_used(rt, make_bundle, cid, new_entries):
    CACHE.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = CACHE.stat().st_mode & 0o777
    os.chmod(CACHE, 0o777)
    try:
        profile = _deny("mkdir", "mkdirat", f"open-{cid}")
        out = rt("run", "--bundle", str(make_bundle(["sh", "-c", SCRIPT], edit=_edit(profile))), cid).stdout
        assert "mkdir=1" in out, out
        assert new_entries() == []
    finally:
        os.chmod(CACHE, mode)


def test_no_cache_means_the_filter_is_built(rt, make_bundle, cid, tmp_path, new_entries):
    """The cache's parent moved away (a fresh /run): the filter is built and the cache made again."""
    parent = CACHE.parent
    moved = tmp_path / "moved"
    if parent.exists():
        shutil.move(str(parent), moved)
    try:
        profile = _deny("mkdir", "mkdirat", f"fresh-{cid}")
        out = rt("run", "--bundle", str(make_bundle(["sh", "-c", SCRIPT], edit=_edit(profile))), cid).stdout
        assert "mkdir=1" in out, out
        assert CACHE.is_dir() and (parent.stat().st_mode & 0o777) == 0o700
    finally:
        shutil.rmtree(parent, ignore_errors=True)
        if moved.exists():
            shutil.move(str(moved), parent)

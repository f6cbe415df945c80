"""Compiled seccomp filters are kept between calls (pyruntime/security/seccomp_cache.py), in the state
root: the same profile is built once and then read back; a different profile never gets another's
filter; a cache directory that is not safely the caller's is not used; `list` never shows it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pyruntime.state import SECCOMP_CACHE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates containers")

SCRIPT = "mkdir /tmp/d 2>&1; echo mkdir=$?; touch /tmp/f 2>&1; echo touch=$?"


def _deny(*names: str) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": list(names), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]}


def _run(rt, make_bundle, cid: str, profile: dict) -> str:  # noqa: ANN001
    def edit(c: dict) -> None:
        c["linux"]["seccomp"] = profile
    return rt("run", "--bundle", str(make_bundle(["sh", "-c", SCRIPT], edit=edit)), cid).stdout


def _entries(rt) -> list[str]:  # noqa: ANN001
    cache = Path(rt.root, SECCOMP_CACHE)
    return sorted(os.listdir(cache)) if cache.is_dir() else []


def test_the_same_profile_is_built_once_and_enforced_each_time(rt, make_bundle, cid):
    profile = _deny("mkdir", "mkdirat")
    first = _run(rt, make_bundle, f"{cid}-0", profile)
    entries = _entries(rt)
    assert len(entries) == 1, entries
    kept = Path(rt.root, SECCOMP_CACHE, entries[0])
    assert b"mkdirat" in kept.read_bytes()  # the key: every input of the build
    stamp = kept.stat().st_mtime_ns
    second = _run(rt, make_bundle, f"{cid}-1", profile)
    assert _entries(rt) == entries and kept.stat().st_mtime_ns == stamp  # read back, not built again
    for out in (first, second):
        assert "mkdir=1" in out and "Permission denied" in out and "touch=0" in out, out
    listed = rt("list", "-q").stdout.split()
    assert SECCOMP_CACHE not in listed and rt.ids() == [] and sorted(os.listdir(rt.root)) == [SECCOMP_CACHE]


def test_a_different_profile_never_gets_another_filter(rt, make_bundle, cid):
    _run(rt, make_bundle, f"{cid}-a", _deny("mkdir", "mkdirat"))
    out = _run(rt, make_bundle, f"{cid}-b", _deny("openat", "open", "creat"))  # touch fails, mkdir works
    assert "mkdir=0" in out and "touch=1" in out, out
    assert len(_entries(rt)) == 2


def test_a_cache_directory_open_to_others_is_not_used(rt, make_bundle, cid):
    cache = Path(rt.root, SECCOMP_CACHE)
    cache.mkdir(parents=True)
    os.chmod(cache, 0o777)
    out = _run(rt, make_bundle, cid, _deny("mkdir", "mkdirat"))
    assert "mkdir=1" in out, out
    assert _entries(rt) == []


def test_a_new_root_gets_a_private_cache(rt, make_bundle, cid):
    _run(rt, make_bundle, cid, _deny("mkdir", "mkdirat"))
    cache = Path(rt.root, SECCOMP_CACHE)
    assert cache.is_dir() and not cache.is_symlink() and (cache.stat().st_mode & 0o777) == 0o700

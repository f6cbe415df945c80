"""Compiled seccomp filters kept between calls. libseccomp takes ~12 ms of CPU to build podman's
default profile (three architectures, ~400 rules), and every container an engine creates carries
the same profile: runc pays it too, in its init. A filter is kept under the exact inputs of the
build (libseccomp's version, the default action, the architectures, every rule) and used again only
when they match to the byte.

Where: state.SECCOMP_CACHE in the state root (--root), so it lives and goes with the root; a
directory of the caller's own, mode 0700, never through a symbolic link, at most MAX_ENTRIES files
(the oldest go first). A file is the key's length (8 bytes), the key, then the BPF program; it is
replaced by rename, so a reader sees a whole one or none.
"""

from __future__ import annotations

import os
import stat

MAX_ENTRIES = 32


def _directory(root: str, create: bool) -> int:
    """An fd of the cache directory in root, or -1 when there is none that is safely ours."""
    from ..state import SECCOMP_CACHE

    if create:
        try:
            os.mkdir(os.path.join(root, SECCOMP_CACHE), 0o700)
        except OSError:
            pass
    try:
        fd = os.open(os.path.join(root, SECCOMP_CACHE), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return -1
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
        os.close(fd)
        return -1
    return fd


def _name(key: bytes) -> str:
    import zlib

    return f"{zlib.crc32(key):08x}-{len(key)}"


def lookup(root: str, key: bytes) -> bytes | None:
    dfd = _directory(root, create=False)
    if dfd < 0:
        return None
    try:
        fd = os.open(_name(key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return None
    finally:
        os.close(dfd)
    try:
        with open(fd, "rb") as f:
            data = f.read()
    except OSError:
        return None
    size = int.from_bytes(data[:8], "little")
    if size != len(key) or data[8:8 + size] != key or len(data) == 8 + size:
        return None
    return data[8 + size:]


def store(root: str, key: bytes, bpf: bytes) -> None:
    """Keep a filter; a cache that cannot be written is no failure."""
    dfd = _directory(root, create=True)
    if dfd < 0:
        return
    name = _name(key)
    tmp = f".{name}.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            os.write(fd, len(key).to_bytes(8, "little") + key + bpf)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        entries = [e for e in os.listdir(dfd) if not e.startswith(".")]
        if len(entries) > MAX_ENTRIES:
            by_age = sorted(entries, key=lambda e: os.stat(e, dir_fd=dfd, follow_symlinks=False).st_mtime_ns)
            for old in by_age[:len(entries) - MAX_ENTRIES]:
                os.unlink(old, dir_fd=dfd)
    except OSError:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
    finally:
        os.close(dfd)

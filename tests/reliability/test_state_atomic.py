"""state.json is replaced by rename: an unlocked reader (state, list) never sees half of it."""

from __future__ import annotations

import os
import threading

from pyruntime import state


def test_unlocked_readers_never_see_a_partial_state(tmp_path):
    root = str(tmp_path)
    c = state.create(root, "atomic")
    c.bundle = "/b"
    c.config = {"big": ["x" * 100] * 600}  # ~60 KB: a non-atomic write would be seen half-done
    c.save()
    stop = threading.Event()
    bad: list[str] = []

    def writer():
        n = 0
        while not stop.is_set():
            n += 1
            c.pid = n
            c.save()

    def reader():
        for _ in range(500):
            r = state.load(root, "atomic", lock=False)
            try:
                if not r.complete or r.bundle != "/b":
                    bad.append(f"partial read (pid {r.pid})")
            finally:
                r.close()

    w = threading.Thread(target=writer)
    w.start()
    try:
        reader()
    finally:
        stop.set()
        w.join()
    assert not bad, bad[:3]
    assert not [n for n in (tmp_path / "atomic").iterdir() if n.name not in ("state.json",)], \
        "temporary files left in the state dir"
    c.remove()


def test_create_starts_over_when_a_delete_removes_its_new_dir(tmp_path, monkeypatch):
    """Between create's mkdir and its lock, a `delete` of the same ID can take the empty directory for
    one a killed create left and remove it (seen under load: "create: ...: no such file or
    directory"). The removal is real (rmdir, as delete does it), made at that moment on purpose;
    create must start over and end holding a directory that exists."""
    import fcntl

    from pyruntime import state

    root = tmp_path / "root"
    real_flock = fcntl.flock
    removed = []

    def flock_after_a_delete(fd, op):
        if not removed:
            os.rmdir(root / "racy")  # the other process's delete, before this create holds the lock
            removed.append(True)
        return real_flock(fd, op)

    monkeypatch.setattr(state.fcntl, "flock", flock_after_a_delete)
    c = state.create(str(root), "racy")
    try:
        assert removed and (root / "racy").is_dir()
        assert os.fstat(c.dir_fd).st_ino == os.stat(root / "racy").st_ino
    finally:
        os.close(c.dir_fd)

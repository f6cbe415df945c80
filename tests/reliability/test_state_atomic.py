"""state.json is replaced by rename: an unlocked reader (state, list) never sees half of it."""

from __future__ import annotations

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

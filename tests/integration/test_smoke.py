"""The two-command promise in miniature: run a container, see its output and exit code."""

from __future__ import annotations


def test_run_foreground_passes_output_and_exit_code(rt, make_bundle, cid):
    bundle = make_bundle(["sh", "-c", "echo hi; exit 7"])
    proc = rt("run", "--bundle", str(bundle), cid, check=False)
    assert proc.stdout == "hi\n"
    assert proc.returncode == 7
    assert rt.ids() == []


def test_create_start_state_delete(rt, make_bundle, cid):
    bundle = make_bundle(["sleep", "100"])
    rt("create", "--bundle", str(bundle), cid)
    st = rt.state(cid)
    assert st["status"] == "created" and st["pid"] > 0 and st["id"] == cid
    rt("start", cid)
    assert rt.state(cid)["status"] == "running"
    proc = rt("delete", cid, check=False)
    assert proc.returncode == 1 and "not stopped" in proc.stderr
    rt("kill", cid, "KILL")
    rt("delete", cid)
    assert rt.ids() == []

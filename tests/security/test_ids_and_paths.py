"""Names and paths the runtime itself uses: container IDs, --root, --pid-file, --console-socket and
hook paths must not let anyone write (or delete) outside where they should. Plus the capability
sets after exec (crun CVE-2022-27650) and an exact `exec --user` (crun CVE-2026-30892)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from _attack import host_untouched  # noqa: F401 - fixtures

BAD_IDS = ["../x", "../../etc", "/abs", "/tmp/x", "a/b", ".", "..", "x" * 256, "", " lead", "new\nline",
           "tab\tid", "nul\x00", "ä", "a*b", "~root", "$(id)"]


def _files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.exists() else set()


def _refused(proc) -> None:  # noqa: ANN001
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2, proc.stderr


def test_traversal_in_container_ids(rt, make_bundle):
    """create refuses every bad ID with one line; the other commands refuse the worst ones;
    nothing appears around --root (no ../x state dir, no /abs, no a/ directory)."""
    base = Path(tempfile.mkdtemp(prefix="prt-ids-", dir="/run"))
    try:
        _traversal(type(rt)(rt.binary, str(base / "a" / "root")), make_bundle, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _traversal(rt, make_bundle, base: Path) -> None:  # noqa: ANN001
    parent = Path(rt.root).parent
    Path(rt.root).mkdir(parents=True)
    before = _files_under(base)
    bundle = make_bundle(["true"])
    for bad in BAD_IDS:
        if "\x00" in bad:
            continue  # argv cannot carry NUL
        _refused(rt("create", "--bundle", str(bundle), "--", bad, check=False))
    _refused(rt("run", "--bundle", str(bundle), "--", "../x", check=False))
    for bad in ("../x", "/abs", ".."):
        for args in (["start"], ["state"], ["kill"], ["delete"], ["delete", "--force"], ["pause"], ["resume"],
                     ["ps"], ["events", "--stats"]):
            _refused(rt(*args, "--", bad, check=False))
        _refused(rt("exec", "--", bad, "true", check=False))
    assert _files_under(base) == before
    assert rt.ids() == []
    assert not Path("/abs").exists() and not (parent / "x").exists()


def test_id_naming_another_containers_state_is_refused(rt, make_bundle, cid, tmp_path):
    """A second --root next to ours holds a container; IDs climbing into it are refused, it survives."""
    other_root = Path(rt.root + "-other")
    try:
        rt2 = type(rt)(rt.binary, str(other_root))
        rt2("create", "--bundle", str(make_bundle(["sleep", "30"])), cid)
        try:
            rel = f"../{other_root.name}/{cid}"
            for args in (["kill", rel, "KILL"], ["delete", "--force", rel], ["state", rel]):
                proc = rt(*args, check=False)
                assert proc.returncode == 1 and "invalid container ID" in proc.stderr, proc.stderr
            assert rt2.state(cid)["status"] == "created"
        finally:
            rt2("delete", "--force", cid)
    finally:
        os.rmdir(other_root) if other_root.exists() else None


def test_pid_file_symlink_is_replaced_not_followed(rt, make_bundle, tmp_path, cid):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    pid_file = tmp_path / "pid"
    pid_file.symlink_to(victim)
    rt("create", "--bundle", str(make_bundle(["true"])), "--pid-file", str(pid_file), cid)
    try:
        pid = rt.state(cid)["pid"]
        assert victim.read_text() == "precious"
        assert not pid_file.is_symlink() and pid_file.read_text() == str(pid)
    finally:
        rt("delete", "--force", cid)


@pytest.mark.parametrize("plant", ["hardlink", "symlink", "fifo"])
def test_pid_file_temporary_name_planted(rt, make_bundle, tmp_path, cid, plant):
    """Someone who can write in the pid file's directory plants the runtime's temporary name as a
    hard link to, or a symlink to, a file they want clobbered (or a fifo to hang it)."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    pid_file = tmp_path / "pid"
    tmp_name = tmp_path / ".pid.pyruntime-tmp"
    if plant == "hardlink":
        os.link(victim, tmp_name)
    elif plant == "symlink":
        tmp_name.symlink_to(victim)
    else:
        os.mkfifo(tmp_name)
    proc = rt("create", "--bundle", str(make_bundle(["true"])), "--pid-file", str(pid_file), cid, check=False,
              timeout=30)
    try:
        assert victim.read_text() == "precious"
        if proc.returncode == 0:
            assert pid_file.read_text() == str(rt.state(cid)["pid"])
        else:
            assert "Traceback" not in proc.stderr and rt.ids() == []
    finally:
        if proc.returncode == 0:
            rt("delete", "--force", cid)


def test_console_socket_paths_create_nothing(rt, make_bundle, tmp_path, cid):
    """--console-socket naming a regular file, a missing path or a directory: one line, no file made,
    no container left."""
    regular = tmp_path / "regular"
    regular.write_text("precious")
    bundle = make_bundle(["true"], edit=lambda c: c["process"].update(terminal=True))
    for path in (regular, tmp_path / "missing" / "sock", tmp_path, tmp_path / "dangling"):
        if path.name == "dangling":
            path.symlink_to(tmp_path / "nowhere")
        before = _files_under(tmp_path)
        proc = rt("create", "--bundle", str(bundle), "--console-socket", str(path), cid, check=False)
        assert proc.returncode == 1 and "console socket" in proc.stderr and "Traceback" not in proc.stderr
        assert _files_under(tmp_path) == before
        assert regular.read_text() == "precious"
        assert rt.ids() == []


@pytest.mark.parametrize("path", ["relative/hook", "hook", "./hook", "../hook"])
def test_relative_hook_paths_are_refused(rt, make_bundle, cid, path):
    bundle = make_bundle(["true"], edit=lambda c: c.update(hooks={"prestart": [{"path": path}]}))
    proc = rt("run", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 1 and "hooks.prestart[0].path" in proc.stderr, proc.stderr
    assert rt.ids() == []


def test_root_that_is_a_file_or_unwritable_fails_cleanly(rt, make_bundle, tmp_path, cid):
    f = tmp_path / "file"
    f.write_text("precious")
    for root in (f, f / "sub"):
        proc = rt.__class__(rt.binary, str(root))("create", "--bundle", str(make_bundle(["true"])), cid, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f.read_text() == "precious"


# -- capabilities after exec ----------------------------------------------------------------------

def _caps(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2), 16) for m in re.finditer(r"^Cap(\w+):\s+([0-9a-f]+)$", text, re.M)}


def test_inheritable_set_is_empty_unless_asked(rt, make_bundle, cid):
    """crun CVE-2022-27650 gave every process the full inheritable set, so a file with inheritable
    file capabilities gained them. Here: empty after run and after exec (also exec --cap), and
    exactly what config.json asks when it asks."""
    rt("run", "--detach", "--bundle", str(make_bundle(["sleep", "30"])), cid)
    try:
        proc = rt("exec", cid, "cat", "/proc/self/status")
        caps = _caps(proc.stdout)
        assert caps["Inh"] == 0 and caps["Amb"] == 0, caps
        assert caps["Eff"] == caps["Prm"] and caps["Bnd"] == caps["Prm"]
        proc = rt("exec", "--cap", "CAP_NET_RAW", cid, "cat", "/proc/self/status")
        caps = _caps(proc.stdout)
        assert caps["Inh"] == 0 and caps["Amb"] == 0 and caps["Prm"] & (1 << 13), caps
    finally:
        rt("delete", "--force", cid)
    proc = rt("run", "--bundle", str(make_bundle(["cat", "/proc/self/status"])), f"{cid}-r")
    assert _caps(proc.stdout)["Inh"] == 0

    def asked(config: dict) -> None:
        config["process"]["capabilities"]["inheritable"] = ["CAP_KILL"]

    proc = rt("run", "--bundle", str(make_bundle(["cat", "/proc/self/status"], edit=asked)), f"{cid}-a")
    assert _caps(proc.stdout)["Inh"] == 1 << 5


BAD_USERS = ["0x10", "1000abc", " 1", "1 ", "root", "1:", ":1", "-1", "4294967295", "1:2:3", "1:-1", "+1", "1e3",
             "\uff11", "0:0x0", ""]


def test_exec_user_is_parsed_exactly(rt, make_bundle, cid):
    """crun CVE-2026-30892: a lenient --user turned garbage into uid 0. Each is refused, nothing runs."""
    rt("run", "--detach", "--bundle", str(make_bundle(["sleep", "30"])), cid)
    try:
        for user in BAD_USERS:
            proc = rt("exec", "--user", user, cid, "sh", "-c", "echo RAN as $(id -u)", check=False)
            assert proc.returncode == 255 and "RAN" not in proc.stdout, (user, proc.stdout)
            assert "--user" in proc.stderr and "Traceback" not in proc.stderr, (user, proc.stderr)
        proc = rt("exec", "--user", "1000:1000", cid, "id", "-u")  # control: a good one runs
        assert proc.stdout.strip() == "1000"
    finally:
        rt("delete", "--force", cid)


def test_state_dir_planted_as_a_symlink(rt, tmp_path, cid):
    """Someone who can write in --root plants <root>/<id> as a symlink to a directory of theirs with
    a state.json naming a pid and cgroups: no command follows it; delete removes nothing there."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "state.json").write_text('{"id": "x", "bundle": "/", "pid": 1, "start_time": 0, "created": "", '
                                       '"cgroup_paths": {"/sys/fs/cgroup/pids": "/sys/fs/cgroup/pids"}}')
    (victim / "precious").write_text("precious")
    Path(rt.root).mkdir(parents=True, exist_ok=True)
    link = Path(rt.root) / cid
    link.symlink_to(victim)
    try:
        for args in (["state", cid], ["kill", cid, "KILL"], ["delete", cid], ["delete", "--force", cid],
                     ["start", cid], ["exec", cid, "true"]):
            proc = rt(*args, check=False)
            assert "Traceback" not in proc.stderr, proc.stderr
            assert proc.returncode != 0 or args[:2] == ["delete", "--force"], (args, proc.stdout)
        rt("list")
        assert sorted(os.listdir(victim)) == ["precious", "state.json"]
        assert os.path.exists("/proc/1")
    finally:
        link.unlink()

"""The lifecycle commands and state transitions of runtime-spec 1.3 "Operations", end to end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from pyruntime_tests_conftest import bind_mount, cgroup_dirs, wait_until

COMMANDS = ["create", "start", "run", "state", "kill", "delete", "list", "spec", "features"]


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _stopped(rt, cid):
    return rt.state(cid)["status"] == "stopped"


def _cgroup_procs(cgroup_parent: str, name: str) -> list[int]:
    # the pids hierarchy of a v1/hybrid host, the unified one of a pure cgroup v2 host (the VM tiers)
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    with open(f"/sys/fs/cgroup{'' if v2 else '/pids'}{cgroup_parent}/{name}/cgroup.procs") as f:
        return [int(x) for x in f.read().split()]


# -- create / start / state -----------------------------------------------------------------------

def test_state_transitions_and_fields(rt, make_bundle, cid):
    def annotate(c):
        c["annotations"] = {"org.example.key": "value", "empty": ""}

    bundle = make_bundle(["sleep", "100"], edit=annotate)
    rt("create", "--bundle", str(bundle), cid)
    st = rt.state(cid)
    assert set(st) >= {"ociVersion", "id", "status", "pid", "bundle", "annotations"}
    assert st["ociVersion"].startswith("1.")
    assert (st["id"], st["status"], st["bundle"]) == (cid, "created", str(bundle))
    assert st["annotations"] == {"org.example.key": "value", "empty": ""}
    pid = st["pid"]
    # The init waits as PID 1 of its own pid namespace, running the stub, not the user's program yet.
    status = _proc_status(pid)
    assert status["NSpid"].split()[-1] == "1"
    assert os.readlink(f"/proc/{pid}/exe") != "/bin/busybox"
    assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"pyruntime-init\x00")
    assert int(status["PPid"]) != os.getpid()

    rt("start", cid)
    st = rt.state(cid)
    assert (st["status"], st["pid"]) == ("running", pid)
    wait_until(lambda: Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00100\x00", what="the user's program")

    again = rt("start", cid, check=False)
    assert again.returncode == 1 and "running" in again.stderr

    rt("kill", cid, "KILL")
    wait_until(lambda: _stopped(rt, cid), what="stopped")
    st = rt.state(cid)
    assert st["status"] == "stopped" and st["pid"] == 0
    assert rt("start", cid, check=False).returncode == 1
    rt("delete", cid)
    assert rt.ids() == []


def test_state_without_annotations_omits_them_or_is_empty(rt, make_bundle, cid):
    rt("create", "--bundle", str(make_bundle(["true"])), cid)
    st = rt.state(cid)
    assert st.get("annotations", {}) == {}
    rt("delete", cid)


def test_bundle_defaults_to_cwd(rt, make_bundle, cid):
    bundle = make_bundle(["true"])
    rt("create", cid, cwd=str(bundle))
    assert rt.state(cid)["bundle"] == str(bundle)
    rt("delete", cid)


# -- kill -----------------------------------------------------------------------------------------

def _trap_bundle(make_bundle, tmp_path: Path, sig: str):
    """A container whose shell records the signal it traps in <tmp_path>/tmp/out/got."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    script = f'trap "echo {sig} > /tmp/out/got; exit 0" {sig}; touch /tmp/out/ready; while :; do sleep 0.05; done'

    def edit(c):
        c["mounts"].append(bind_mount(out, "/tmp/out"))

    return make_bundle(["sh", "-c", script], edit=edit), out


@pytest.mark.parametrize("how", [None, "TERM", "SIGTERM", "15", "USR1", str(int(signal.SIGUSR1)), "sigusr1"])
def test_kill_signal_by_name_number_and_default(rt, make_bundle, cid, tmp_path, how):
    expected = "USR1" if how and "USR1" in how.upper() or how == str(int(signal.SIGUSR1)) else "TERM"
    bundle, out = _trap_bundle(make_bundle, tmp_path, expected)
    rt("create", "--bundle", str(bundle), cid)
    rt("start", cid)
    wait_until(lambda: (out / "ready").exists(), what="the trap to be set")
    rt("kill", cid, *([how] if how else []))
    wait_until(lambda: (out / "got").exists(), what="the signal to arrive")
    assert (out / "got").read_text().strip() == expected
    wait_until(lambda: _stopped(rt, cid), what="stopped")
    rt("delete", cid)


def test_kill_invalid_signal(rt, make_bundle, cid):
    rt("create", "--bundle", str(make_bundle(["true"])), cid)
    for bad in ("NOPE", "999", "-1"):  # 0 is valid: it probes (runc, kill(1))
        proc = rt("kill", cid, bad, check=False)
        assert proc.returncode == 1, bad
        assert "Traceback" not in proc.stderr
    assert rt.state(cid)["status"] == "created"
    rt("delete", cid)


def test_kill_created_container(rt, make_bundle, cid):
    rt("create", "--bundle", str(make_bundle(["sleep", "100"])), cid)
    rt("kill", cid, "KILL")
    wait_until(lambda: _stopped(rt, cid), what="stopped")
    proc = rt("kill", cid, "KILL", check=False)
    assert proc.returncode == 1 and "not running" in proc.stderr
    rt("delete", cid)


def test_kill_all_signals_every_process(rt, make_bundle, cid, cgroup_parent):
    bundle = make_bundle(["sh", "-c", "sleep 100 & sleep 100 & sleep 100"], name="all")
    rt("create", "--bundle", str(bundle), cid)
    rt("start", cid)
    procs = wait_until(lambda: len(_cgroup_procs(cgroup_parent, "all")) >= 3 and _cgroup_procs(cgroup_parent, "all"),
                       what="three processes")
    rt("kill", "--all", cid, "KILL")
    wait_until(lambda: not _cgroup_procs(cgroup_parent, "all"), what="every process to die")
    for pid in procs:
        assert not os.path.exists(f"/proc/{pid}") or _proc_status(pid)["State"].startswith("Z")
    wait_until(lambda: _stopped(rt, cid), what="stopped")
    rt("delete", cid)


# -- delete ---------------------------------------------------------------------------------------

def test_delete_refuses_running_and_force_kills(rt, make_bundle, cid, cgroup_parent):
    rt("create", "--bundle", str(make_bundle(["sleep", "100"], name="d")), cid)
    rt("start", cid)
    pid = rt.state(cid)["pid"]
    proc = rt("delete", cid, check=False)
    assert proc.returncode == 1 and "running" in proc.stderr
    assert rt.state(cid)["status"] == "running"
    rt("delete", "--force", cid)
    assert rt.ids() == []
    assert not os.path.exists(f"/proc/{pid}") or _proc_status(pid)["State"].startswith("Z")
    assert cgroup_dirs(f"{cgroup_parent}/d") == []


def test_delete_created_container(rt, make_bundle, cid, cgroup_parent):
    rt("create", "--bundle", str(make_bundle(["sleep", "100"], name="d")), cid)
    pid = rt.state(cid)["pid"]
    assert cgroup_dirs(f"{cgroup_parent}/d")  # the cgroup exists in every hierarchy while it lives
    rt("delete", cid)
    assert rt.ids() == []
    assert not os.path.exists(f"/proc/{pid}") or _proc_status(pid)["State"].startswith("Z")
    assert cgroup_dirs(f"{cgroup_parent}/d") == []
    proc = rt("state", cid, check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr


def test_delete_force_of_missing_container_succeeds(rt):
    assert rt("delete", "--force", "never-was").returncode == 0


# -- IDs ------------------------------------------------------------------------------------------

def test_second_create_of_same_id_fails_and_leaves_first_intact(rt, make_bundle, cid):
    rt("create", "--bundle", str(make_bundle(["sleep", "100"])), cid)
    first = rt.state(cid)
    proc = rt("create", "--bundle", str(make_bundle(["sleep", "100"])), cid, check=False)
    assert proc.returncode == 1 and "already exists" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert rt.state(cid) == first
    rt("start", cid)
    assert rt.state(cid)["status"] == "running"
    rt("delete", "--force", cid)


@pytest.mark.parametrize("command", [["state"], ["start"], ["kill"], ["delete"], ["kill", "--all"]])
def test_unknown_id_does_not_exist(rt, command):
    proc = rt(*command, "no-such-container", check=False)
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# -- list -----------------------------------------------------------------------------------------

def test_list_formats(rt, make_bundle, cid):
    assert rt("list").stdout.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert json.loads(rt("list", "--format", "json").stdout) in ([], None)
    assert rt("list", "-q").stdout == ""

    b1, b2 = make_bundle(["sleep", "100"]), make_bundle(["sleep", "100"])
    rt("create", "--bundle", str(b1), f"{cid}-a")
    rt("create", "--bundle", str(b2), f"{cid}-b")
    rt("start", f"{cid}-b")
    pid_a = rt.state(f"{cid}-a")["pid"]

    lines = rt("list").stdout.splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {f"{cid}-a", f"{cid}-b"}
    assert rows[f"{cid}-a"][1:4] == [str(pid_a), "created", str(b1)]
    assert rows[f"{cid}-b"][2:4] == ["running", str(b2)]

    items = {i["id"]: i for i in json.loads(rt("list", "--format", "json").stdout)}
    assert items[f"{cid}-a"]["status"] == "created" and items[f"{cid}-a"]["pid"] == pid_a
    assert items[f"{cid}-b"]["status"] == "running" and items[f"{cid}-b"]["bundle"] == str(b2)
    assert all(i["created"] and i["owner"] for i in items.values())

    assert rt("list", "-q").stdout.split() == sorted([f"{cid}-a", f"{cid}-b"])
    rt("delete", "--force", f"{cid}-a")
    rt("delete", "--force", f"{cid}-b")
    assert rt("list", "-q").stdout == ""


# -- spec / features / version / help ---------------------------------------------------------------

def test_spec_writes_runc_like_config_and_refuses_overwrite(rt, tmp_path):
    rt("spec", "--bundle", str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert {"ociVersion", "process", "root", "hostname", "mounts", "linux"} <= set(config)
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert config["process"]["args"] == ["sh"] and config["process"]["terminal"] is True
    assert [m["destination"] for m in config["mounts"]][:2] == ["/proc", "/dev"]
    # a cgroup namespace only on a pure cgroup v2 host, as runc (on hybrid hosts exec'd processes
    # would otherwise see "/" as their cgroup, unlike runc's)
    cgroupns = {"cgroup"} if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else set()
    assert {n["type"] for n in config["linux"]["namespaces"]} == {"pid", "network", "ipc", "uts", "mount"} | cgroupns
    if shutil.which("runc"):  # runc is in the Makefile's packages; compare with its default
        (tmp_path / "runc").mkdir()
        subprocess.run(["runc", "spec", "--bundle", str(tmp_path / "runc")], check=True, capture_output=True)
        ref = json.loads((tmp_path / "runc" / "config.json").read_text())
        assert set(ref) <= set(config)
        assert set(ref["process"]) <= set(config["process"])
        assert [m["destination"] for m in ref["mounts"]] == [m["destination"] for m in config["mounts"]]
        assert ref["linux"]["maskedPaths"] == config["linux"]["maskedPaths"]
        assert ref["linux"]["readonlyPaths"] == config["linux"]["readonlyPaths"]
        assert ref["process"]["capabilities"]["bounding"] == config["process"]["capabilities"]["bounding"]
        assert ref["linux"]["namespaces"] == config["linux"]["namespaces"]

    before = (tmp_path / "config.json").read_bytes()
    proc = rt("spec", "--bundle", str(tmp_path), check=False)
    assert proc.returncode == 1 and "exists" in proc.stderr
    assert (tmp_path / "config.json").read_bytes() == before


def test_spec_output_is_valid_for_create(rt, tmp_path, cid, cgroup_parent):
    """The default spec with the busybox rootfs and no terminal runs as is."""
    from pyruntime_tests_conftest import ROOTFS

    rt("spec", "--bundle", str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "echo spec-ok; hostname"]
    config["root"]["path"] = str(ROOTFS)
    config["linux"]["cgroupsPath"] = f"{cgroup_parent}/spec"
    (tmp_path / "config.json").write_text(json.dumps(config))
    proc = rt("run", "--bundle", str(tmp_path), cid)
    assert proc.stdout.split() == ["spec-ok", config["hostname"]]


def test_features_document(rt):
    doc = json.loads(rt("features").stdout)
    assert doc["ociVersionMin"] == "1.0.0" and doc["ociVersionMax"].startswith("1.3.")
    assert set(doc["hooks"]) == {"prestart", "createRuntime", "createContainer", "startContainer",
                                 "poststart", "poststop"}
    assert {"ro", "rbind", "nosuid", "rprivate"} <= set(doc["mountOptions"])
    assert set(doc["linux"]["namespaces"]) >= {"pid", "network", "ipc", "uts", "mount", "cgroup", "time"}
    assert "CAP_SYS_ADMIN" in doc["linux"]["capabilities"]
    # what the code accepts is listed: recursive attributes, idmapped mounts, netDevices
    assert {"rro", "rnosuid", "idmap", "ridmap"} <= set(doc["mountOptions"])
    assert doc["linux"]["mountExtensions"]["idmap"]["enabled"] and doc["linux"]["netDevices"]["enabled"]


def test_version(rt):
    out = rt("--version").stdout
    assert out.startswith("pyruntime version ") and "spec: 1.3" in out
    # what runc's version.bats reads, without claiming to be a runc release (go-runc reads the prefix)
    assert "(runc version 1.1.5 compatible)" in out.splitlines()[0] and out.splitlines()[1].startswith("commit:")


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help(rt, command):
    proc = rt(*([command] if command else []), "--help")
    # runc's layout first (NAME: and the runc command it stands for), then click's usage and options
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert proc.returncode == 0 and lines[0] == "NAME:" and lines[2].startswith("Usage: pyruntime")
    assert f"runc {command}" in lines[1] if command else "runc - Open Container Initiative runtime" in lines[1]
    if command is None:
        for c in COMMANDS:
            assert c in proc.stdout


# -- run --------------------------------------------------------------------------------------------

def test_run_detach(rt, make_bundle, cid):
    proc = rt("run", "--detach", "--bundle", str(make_bundle(["sleep", "100"])), cid, timeout=20)
    assert proc.returncode == 0 and proc.stdout == ""
    st = rt.state(cid)
    assert st["status"] == "running"
    wait_until(lambda: Path(f"/proc/{st['pid']}/cmdline").read_bytes() == b"sleep\x00100\x00", what="sleep")
    rt("kill", cid, "KILL")
    wait_until(lambda: _stopped(rt, cid), what="stopped")
    rt("delete", cid)


@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_run_foreground_exit_code(sh, code):
    proc = sh(f"echo out; echo err >&2; exit {code}", check=False)
    assert proc.returncode == code
    assert proc.stdout == "out\n" and proc.stderr == "err\n"


def test_run_foreground_forwards_signals(rt, make_bundle, cid, tmp_path):
    """SIGTERM to `run` reaches the container's process (which traps it here)."""
    bundle, out = _trap_bundle(make_bundle, tmp_path, "TERM")
    with open(tmp_path / "stdout", "wb") as so, open(tmp_path / "stderr", "wb") as se:
        runner = subprocess.Popen(rt.argv("run", "--bundle", str(bundle), cid), stdout=so, stderr=se,
                                  stdin=subprocess.DEVNULL)
        try:
            wait_until(lambda: (out / "ready").exists(), what="the trap to be set")
            runner.send_signal(signal.SIGTERM)
            assert runner.wait(timeout=20) == 0
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
    assert (out / "got").read_text().strip() == "TERM"
    assert rt.ids() == []


def test_run_forwards_a_signal_that_arrives_while_start_runs(rt, make_bundle, cid, tmp_path):
    """A SIGTERM to a foreground `run` once the program runs but before `start` has returned (here from
    a poststart hook, which `start` waits for) is forwarded: it never kills `run` and leaves the
    container behind (it did when the forwarding was set up only after start)."""
    out = tmp_path / "out"
    out.mkdir()
    script = 'trap "echo TERM > /tmp/out/got; exit 0" TERM; touch /tmp/out/ready; while :; do sleep 0.05; done'
    hook = (f"while [ ! -e {out}/ready ] || [ ! -s {out}/runpid ]; do sleep 0.05; done; "
            f"kill -TERM $(cat {out}/runpid)")

    def edit(c):
        c["mounts"].append(bind_mount(out, "/tmp/out"))
        c["hooks"] = {"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", hook], "timeout": 20}]}

    bundle = make_bundle(["sh", "-c", script], edit=edit)
    with open(tmp_path / "stderr", "wb") as err:  # a file: the container may hold a pipe open
        runner = subprocess.Popen(rt.argv("run", "--bundle", str(bundle), cid), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=err)
    try:
        (out / "runpid.tmp").write_text(str(runner.pid))
        (out / "runpid.tmp").rename(out / "runpid")
        assert runner.wait(timeout=30) == 0, (tmp_path / "stderr").read_text()
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert (out / "got").read_text().strip() == "TERM"
    if rt.ids():
        rt("delete", "--force", cid)
    assert rt.ids() == []


# -- pid file, log --------------------------------------------------------------------------------

def test_pid_file_is_bare_pid(rt, make_bundle, cid, tmp_path):
    pid_file = tmp_path / "sub" / "pidfile"
    pid_file.parent.mkdir()
    rt("create", "--bundle", str(make_bundle(["true"])), "--pid-file", str(pid_file), cid)
    data = pid_file.read_bytes()
    assert data.isdigit() and not data.endswith(b"\n")
    assert int(data) == rt.state(cid)["pid"]
    assert os.listdir(pid_file.parent) == ["pidfile"]  # no temporary left
    rt("delete", cid)


def test_pid_file_relative_path(rt, make_bundle, cid, tmp_path):
    rt("create", "--bundle", str(make_bundle(["true"])), "--pid-file", "rel.pid", cid, cwd=str(tmp_path))
    assert int((tmp_path / "rel.pid").read_bytes()) == rt.state(cid)["pid"]
    rt("delete", cid)


def test_log_json_on_failure(rt, make_bundle, cid, tmp_path):
    log = tmp_path / "log.json"
    bundle = make_bundle(["/no/such/program"])
    proc = rt("--log", str(log), "--log-format", "json", "create", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 1
    lines = log.read_text().splitlines()
    assert lines
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    for e in entries:
        assert set(e) >= {"level", "msg", "time"}
        assert e["time"].endswith("Z") and e["time"][:4].isdigit()
    errors = [e for e in entries if e["level"] == "error"]
    assert errors and "/no/such/program" in errors[-1]["msg"]
    assert proc.stderr.strip().count("\n") == 0 and "/no/such/program" in proc.stderr
    assert rt.ids() == []


def test_log_text_format(rt, tmp_path):
    log = tmp_path / "log.txt"
    rt("--log", str(log), "state", "missing-one", check=False)
    text = log.read_text()
    assert 'level=error' in text and "does not exist" in text and "time=" in text


# -- ociVersion -----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1", "1.3.0", "1.3.7"])
def test_oci_versions_accepted(sh, version):
    def edit(c):
        c["ociVersion"] = version

    assert sh("echo ok", edit=edit).stdout == "ok\n"


@pytest.mark.parametrize("version", ["2.0.0", "0.9.0", "1.4.0", "1", "banana", ""])
def test_oci_versions_refused(rt, make_bundle, cid, version):
    def edit(c):
        c["ociVersion"] = version

    proc = rt("create", "--bundle", str(make_bundle(["true"], edit=edit)), cid, check=False)
    assert proc.returncode == 1 and "ociVersion" in proc.stderr
    assert rt.ids() == []


def test_run_foreground_exit_code_of_a_killed_container(rt, make_bundle, cid, tmp_path):
    """A container killed by a signal makes `run` exit 128+N, as a shell reports it."""
    bundle = make_bundle(["sleep", "100"])
    with open(tmp_path / "stdout", "wb") as so, open(tmp_path / "stderr", "wb") as se:
        runner = subprocess.Popen(rt.argv("run", "--bundle", str(bundle), cid), stdout=so, stderr=se,
                                  stdin=subprocess.DEVNULL)
        try:
            wait_until(lambda: cid in rt.ids() and rt.state(cid)["status"] == "running", what="running")
            rt("kill", cid, "KILL")
            assert runner.wait(timeout=20) == 128 + signal.SIGKILL
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
    assert rt.ids() == []


def test_run_with_pid_file_and_keep(rt, make_bundle, cid, tmp_path):
    proc = rt("run", "--keep", "--pid-file", str(tmp_path / "pid"), "--bundle", str(make_bundle(["true"])), cid)
    assert proc.returncode == 0
    assert (tmp_path / "pid").read_bytes().isdigit()
    assert rt.state(cid)["status"] == "stopped"  # --keep: still there after it exited
    rt("delete", cid)


def test_detached_container_that_exits_reads_stopped(rt, make_bundle, cid):
    rt("run", "--detach", "--bundle", str(make_bundle(["true"])), cid)
    wait_until(lambda: rt.state(cid)["status"] == "stopped", what="stopped")
    assert rt.state(cid)["pid"] == 0
    items = json.loads(rt("list", "--format", "json").stdout)
    assert [(i["id"], i["status"]) for i in items] == [(cid, "stopped")]
    rt("delete", cid)


def test_delete_kills_what_the_init_left_behind(rt, make_bundle, cid, cgroup_parent):
    """Without a pid namespace, children outlive the init: delete of the stopped container kills them
    and removes the cgroup."""
    def edit(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]

    bundle = make_bundle(["sh", "-c", "sleep 100 & exit 0"], edit=edit, name="orphans")
    rt("run", "--detach", "--bundle", str(bundle), cid)
    wait_until(lambda: rt.state(cid)["status"] == "stopped", what="stopped")
    left = wait_until(lambda: _cgroup_procs(cgroup_parent, "orphans"), what="the orphan in the cgroup")
    rt("delete", cid)
    assert cgroup_dirs(f"{cgroup_parent}/orphans") == []
    for pid in left:
        wait_until(lambda pid=pid: not os.path.exists(f"/proc/{pid}") or _proc_status(pid)["State"].startswith("Z"),
                   what=f"orphan {pid} to die")


def test_default_cgroup_is_ours_and_removed_with_the_last_container(rt, make_bundle, cid):
    """Without cgroupsPath the container goes to /pyruntime/<id> from the hierarchy root (never under the
    caller's own v1 memory cgroup), and the default parent goes away with its last container."""
    parent_existed = os.path.isdir("/sys/fs/cgroup/memory/pyruntime")
    bundle = make_bundle(["sleep", "60"], edit=lambda c: c["linux"].pop("cgroupsPath"))
    rt("create", "-b", str(bundle), cid)
    pid = rt.state(cid)["pid"]
    memory_line = next(line for line in open(f"/proc/{pid}/cgroup").read().splitlines() if ":memory:" in line)
    assert memory_line.endswith(f":memory:/pyruntime/{cid}")
    rt("delete", "--force", cid)
    assert not os.path.exists(f"/sys/fs/cgroup/memory/pyruntime/{cid}")
    if not parent_existed:
        assert not os.path.exists("/sys/fs/cgroup/memory/pyruntime")

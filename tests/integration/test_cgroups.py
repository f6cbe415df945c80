"""cgroups: linux.resources enforced (not just written), and pause/resume/update/events/ps.

Version-agnostic on purpose: the same tests run on this hybrid (v1) host and, through tests/vm/,
inside a qemu guest with a real cgroup v2 hierarchy. Usage is read through `events --stats`, so the
runtime's own stats are checked too; kernel files are read only where a test needs one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from pyruntime_tests_conftest import wait_until

V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
SLOW = float(os.environ.get("PYRUNTIME_TEST_SLOWDOWN", "1"))  # the VM tier is 15-20x slower
MiB = 1 << 20


def resources(**res: Any):  # noqa: ANN201 - a make_bundle edit function
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["resources"] = res
    return edit


def add_caps(*caps: str):  # noqa: ANN201
    def edit(config: dict[str, Any]) -> None:
        for k in ("bounding", "effective", "permitted"):
            config["process"]["capabilities"][k] += list(caps)
    return edit


def both(*edits):  # noqa: ANN001, ANN201
    def edit(config: dict[str, Any]) -> None:
        for e in edits:
            e(config)
    return edit


def stats(rt, cid: str) -> dict[str, Any]:  # noqa: ANN001
    ev = json.loads(rt("events", "--stats", cid).stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    return ev["data"]


def container_file(pid: int, path: str) -> str | None:
    """A file inside a running container, read through its root (e.g. its private /tmp)."""
    try:
        return Path(f"/proc/{pid}/root{path}").read_text()
    except OSError:
        return None


def started(rt, make_bundle, cid: str, args: list[str], edit=None) -> int:  # noqa: ANN001
    rt("create", "--bundle", str(make_bundle(args, edit=edit)), cid)
    rt("start", cid)
    return rt.state(cid)["pid"]


def finish(rt, cid: str) -> None:  # noqa: ANN001
    rt("delete", "--force", cid)


# -- memory ------------------------------------------------------------------------------------
def test_memory_limit_oom_kills_and_events_reports_it(rt, make_bundle, cid):
    script = "dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd-exit=$? > /tmp/dd; sleep 1000"
    bundle = make_bundle(["sh", "-c", script], edit=resources(memory={"limit": 24 * MiB, "swap": 24 * MiB}))
    rt("create", "--bundle", str(bundle), cid)
    with tempfile.TemporaryFile() as out:
        events = subprocess.Popen(rt.argv("events", "--interval", "200ms", cid), stdout=out,
                                  stderr=subprocess.DEVNULL)
        try:
            def lines() -> list[dict[str, Any]]:
                out.seek(0)
                return [json.loads(x) for x in out.read().decode().splitlines() if x.strip()]

            wait_until(lambda: any(e["type"] == "stats" for e in lines()), 10 * SLOW, "a first stats event")
            rt("start", cid)
            pid = rt.state(cid)["pid"]
            wait_until(lambda: any(e["type"] == "oom" for e in lines()), 20 * SLOW, "an oom event")
            wait_until(lambda: container_file(pid, "/tmp/dd"), 10 * SLOW, "dd to end")
            assert container_file(pid, "/tmp/dd").strip() == "dd-exit=137"  # SIGKILLed by the OOM killer
            st = [e for e in lines() if e["type"] == "stats"][-1]["data"]
            assert st["memory"]["usage"]["limit"] == 24 * MiB
            finish(rt, cid)
            events.wait(timeout=10 * SLOW)  # the stream ends with the container
        finally:
            if events.poll() is None:
                events.kill()
                events.wait()



def test_events_reports_no_oom_when_the_container_is_deleted(rt, make_bundle, cid):
    """Removing the memory cgroup signals the v1 OOM eventfd too: that is no OOM kill, and the
    stream ends cleanly with the container."""
    started(rt, make_bundle, cid, ["sleep", "1000"], edit=resources(memory={"limit": 64 * MiB}))
    with tempfile.TemporaryFile() as out:
        events = subprocess.Popen(rt.argv("events", "--interval", "200ms", cid), stdout=out,
                                  stderr=subprocess.STDOUT)
        try:
            def lines() -> list[dict[str, Any]]:
                out.seek(0)
                return [json.loads(x) for x in out.read().decode().splitlines() if x.strip()]

            wait_until(lambda: any(e["type"] == "stats" for e in lines()), 10 * SLOW, "a first stats event")
            finish(rt, cid)
            assert events.wait(timeout=10 * SLOW) == 0  # the stream ends with the container
            assert [e for e in lines() if e["type"] != "stats"] == []
        finally:
            if events.poll() is None:
                events.kill()
                events.wait()


def test_events_stats_reports_memory_and_pids(rt, make_bundle, cid):
    started(rt, make_bundle, cid, ["sh", "-c", "sleep 1000 & sleep 1001 & wait"],
            edit=resources(memory={"limit": 64 * MiB}, pids={"limit": 20}))
    try:
        st = wait_until(lambda: (s := stats(rt, cid))["pids"].get("current") == 3 and s, 10 * SLOW, "3 tasks")
        assert st["pids"]["limit"] == 20
        assert st["memory"]["usage"]["limit"] == 64 * MiB
        assert 0 < st["memory"]["usage"]["usage"] < 64 * MiB
        assert st["cpu"]["usage"]["total"] > 0
    finally:
        finish(rt, cid)


# -- pids, cpu, cpuset -------------------------------------------------------------------------
def test_pids_limit_stops_forks(sh):
    script = "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait; echo done"
    proc = sh(script, edit=resources(pids={"limit": 5}), check=False)
    assert "can't fork" in proc.stderr or "Resource temporarily unavailable" in proc.stderr, proc.stderr
    free = sh(script)  # without the limit the same script forks all eight
    assert "fork" not in free.stderr and free.stdout.strip() == "done"


def test_cpu_quota_throttles(rt, make_bundle, cid):
    started(rt, make_bundle, cid, ["sh", "-c", "while :; do :; done"],
            edit=resources(cpu={"quota": 20000, "period": 100000}))
    try:
        first = stats(rt, cid)
        t0 = time.monotonic()
        wait_until(lambda: stats(rt, cid)["cpu"]["throttling"].get("throttledPeriods", 0) >= 5, 20 * SLOW,
                   "throttled periods")
        time.sleep(0.5)
        last = stats(rt, cid)
        elapsed = time.monotonic() - t0
        used = (last["cpu"]["usage"]["total"] - first["cpu"]["usage"]["total"]) / 1e9
        # the loop would use a whole CPU; the quota grants 20%: generous bound, never flaky upward
        assert 0 < used / elapsed < 0.35, (used, elapsed)
        assert last["cpu"]["throttling"]["throttledTime"] > 0
    finally:
        finish(rt, cid)


def test_cpuset_pins(sh):
    cpu = "1" if (os.cpu_count() or 1) > 1 else "0"
    proc = sh("grep Cpus_allowed_list /proc/self/status", edit=resources(cpu={"cpus": cpu, "mems": "0"}))
    assert proc.stdout.split() == ["Cpus_allowed_list:", cpu]


# -- devices -----------------------------------------------------------------------------------
# `true >` not `: >`: a failed redirection on a special builtin would end the shell
KMSG = "mknod /dev/k c 1 11 && { true > /dev/k && echo OPEN || echo DENIED; }; true > /dev/null && echo NULL-OK"


@pytest.mark.parametrize("rules,expect", [
    ([], "DENIED"),  # only the default allow-list: /dev/kmsg (1:11) is not on it
    ([{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}], "OPEN"),
    ([{"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"},
      {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rw"}], "DENIED"),  # a later rule wins
], ids=["default-deny", "allowed", "allowed-then-denied"])
def test_device_rules_are_enforced(sh, rules, expect):
    proc = sh(KMSG, edit=both(resources(devices=rules), add_caps("CAP_MKNOD")))
    assert proc.stdout.split() == [expect, "NULL-OK"], proc.stderr


# -- pause / resume, update, ps ----------------------------------------------------------------
COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done"


def test_pause_stops_processes_and_resume_restarts_them(rt, make_bundle, cid):
    pid = started(rt, make_bundle, cid, ["sh", "-c", COUNTER])
    try:
        wait_until(lambda: int(container_file(pid, "/tmp/n") or 0) > 2, 10 * SLOW, "the counter to run")
        rt("pause", cid)
        assert rt.state(cid)["status"] == "paused"
        frozen = container_file(pid, "/tmp/n")
        time.sleep(0.5 * SLOW)
        assert container_file(pid, "/tmp/n") == frozen  # nothing runs while frozen
        if V2:  # the kernel reports the whole cgroup frozen
            cg = Path(f"/proc/{pid}/cgroup").read_text().strip().split("::", 1)[1]
            assert "frozen 1" in Path(f"/sys/fs/cgroup{cg}/cgroup.events").read_text()
        else:  # the v1 freezer shows its tasks in D (uninterruptible, frozen) state
            assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "D"
        assert rt("pause", cid, check=False).returncode == 1
        rt("resume", cid)
        assert rt.state(cid)["status"] == "running"
        wait_until(lambda: container_file(pid, "/tmp/n") != frozen, 10 * SLOW, "the counter to move again")
        assert rt("resume", cid, check=False).returncode == 1
        rt("pause", cid)
        rt("kill", "--all", cid, "KILL")  # a paused container can be killed (cgroup.kill or thaw + signal)
        wait_until(lambda: rt.state(cid)["status"] == "stopped", 10 * SLOW, "the container to stop")
    finally:
        finish(rt, cid)


def test_update_changes_limits_of_a_running_container(rt, make_bundle, cid):
    script = ("while [ ! -e /tmp/go ]; do sleep 0.05; done; "
              "for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done; echo > /tmp/done; wait")
    pid = started(rt, make_bundle, cid, ["sh", "-c", script], edit=resources(pids={"limit": 3}))
    try:
        assert stats(rt, cid)["pids"]["limit"] == 3
        rt("update", "--pids-limit", "20", "--memory", "96m", cid)
        rt("update", "--resources", "-", cid, input=json.dumps({"cpu": {"quota": 50000, "period": 100000}}).encode(),
           stdin=None)
        st = stats(rt, cid)
        assert st["pids"]["limit"] == 20 and st["memory"]["usage"]["limit"] == 96 * MiB
        Path(f"/proc/{pid}/root/tmp/go").write_text("")
        wait_until(lambda: container_file(pid, "/tmp/done"), 20 * SLOW, "the forks")
        assert stats(rt, cid)["pids"]["current"] == 9  # sh + 8 sleeps: more than the old limit of 3
        bad = rt("update", "--cpuset-cpus", "64-70", cid, check=False)
        assert bad.returncode == 1 and "cpuset.cpus" in bad.stderr and "64-70" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    finally:
        finish(rt, cid)


def test_ps_lists_the_container_processes(rt, make_bundle, cid):
    pid = started(rt, make_bundle, cid, ["sh", "-c", "sleep 1000 & sleep 1001 & wait"])
    try:
        pids = wait_until(lambda: len(p := json.loads(rt("ps", "--format", "json", cid).stdout)) == 3 and p,
                          10 * SLOW, "three processes")
        assert pid in pids
        table = rt("ps", cid).stdout.splitlines()
        assert table[0].split()[:2] == ["UID", "PID"] and len(table) == 4
        assert any("sleep 1001" in line for line in table)
        custom = rt("ps", cid, "-o", "pid,comm").stdout.split()
        assert custom[:2] == ["PID", "COMMAND"] and sorted(int(x) for x in custom[2::2]) == sorted(pids)
    finally:
        finish(rt, cid)


# -- bad values --------------------------------------------------------------------------------
def test_rejected_value_names_file_and_value_and_leaves_nothing(rt, make_bundle, cid):
    bundle = make_bundle(["true"], edit=resources(cpu={"cpus": "99"}))
    proc = rt("create", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 1
    assert "linux.resources.cpu.cpus" in proc.stderr and "cpuset.cpus" in proc.stderr and "'99'" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert rt.ids() == []  # and cgroup_parent checks no cgroup is left


def test_unified_keys(sh, rt, make_bundle, cid):
    if V2:
        def edit(config: dict[str, Any]) -> None:
            config["linux"]["resources"] = {"unified": {"pids.max": "7"}}
            config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys/fs/cgroup"] + [
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}]  # (a second: EBUSY)

        # the container's own cgroup, seen through its cgroup namespace and cgroup2 mount
        proc = sh("cat /sys/fs/cgroup/pids.max /proc/self/cgroup", edit=edit)
        assert proc.stdout.split() == ["7", "0::/"]
        for key in ("../pids.max", "cgroup.procs", "nonexistent.file"):
            bad = rt("create", "--bundle", str(make_bundle(["true"], edit=resources(unified={key: "1"}))),
                     cid, check=False)
            assert bad.returncode == 1 and "linux.resources.unified" in bad.stderr, bad.stderr
    else:
        bad = rt("create", "--bundle", str(make_bundle(["true"], edit=resources(unified={"pids.max": "7"}))),
                 cid, check=False)
        assert bad.returncode == 1 and "cgroup v1" in bad.stderr
    assert rt.ids() == []


def test_oom_killed_container_cgroup_removed_on_delete(rt, make_bundle, cid, cgroup_parent):
    bundle = make_bundle(["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
                         edit=resources(memory={"limit": 16 * MiB, "swap": 16 * MiB}))
    proc = rt("run", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 128 + signal.SIGKILL
    assert rt.ids() == []  # run deleted it, cgroups included (checked by cgroup_parent)


def test_bpf_device_program_enforces_rules(cgroup_parent):
    """The v2 device program on its own, in whatever cgroup2 hierarchy this host has (on this hybrid
    host: /sys/fs/cgroup/unified, which still runs cgroup BPF programs): the defaults are dropped here
    so /dev/null can be denied, and r/w access bits are told apart."""
    import sys

    from pyruntime.cgroups import devices, hierarchies

    mount_point = hierarchies().get("unified")
    if mount_point is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    d = Path(mount_point + cgroup_parent)
    d.mkdir()
    try:
        rules = [devices.Rule(False, "a", -1, -1, "rwm"), devices.Rule(True, "c", 1, 5, "r"),
                 devices.Rule(True, "c", 1, 3, "rw"), devices.Rule(False, "c", 1, 3, "w")]
        devices.apply_v2(str(d), rules)
        probe = ("import os, sys\n"
                 "open(sys.argv[1] + '/cgroup.procs', 'w').write('0')\n"
                 "for path, flag in (('/dev/zero', os.O_RDONLY), ('/dev/zero', os.O_WRONLY),"
                 " ('/dev/null', os.O_RDONLY), ('/dev/null', os.O_WRONLY), ('/dev/full', os.O_RDONLY)):\n"
                 "    try:\n        os.close(os.open(path, flag)); print('ok')\n"
                 "    except PermissionError:\n        print('denied')\n")
        out = subprocess.run([sys.executable, "-c", probe, str(d)], capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["ok", "denied", "ok", "denied", "denied"]
    finally:
        d.rmdir()

"""The cgroup v2 tier: tests/integration/test_cgroups.py run inside a qemu guest with a real cgroup2
hierarchy (every controller), because this hybrid host's cgroup2 has none.

The VM boots ONCE per run (a module fixture, ~8 s + the tests; Python is 15-20x slower inside).
The guest's root is this host's / (read-only + tmpfs overlay), so it runs this very checkout with
the project's venv; the checkout is shared read-write (results come back through it). Each guest test becomes one
test here, so a failure names the v2 case that failed.

On a pure cgroup v2 host no VM is needed: run tests/integration/test_cgroups.py directly (this
module then skips). PYRUNTIME_SKIP_VM=1 skips it too (e.g. on a machine without qemu).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("run-in-vm.sh")
GUEST_TESTS = "tests/integration/test_cgroups.py"
# the cases the v2 tier must run (each also runs on the v1 host): enforcement of every controller
# we can see in the guest, the commands, and the error paths
EXPECTED = [
    "test_memory_limit_oom_kills_and_events_reports_it",
    "test_events_stats_reports_memory_and_pids",
    "test_pids_limit_stops_forks",
    "test_cpu_quota_throttles",
    "test_cpuset_pins",
    "test_device_rules_are_enforced[default-deny]",
    "test_device_rules_are_enforced[allowed]",
    "test_device_rules_are_enforced[allowed-then-denied]",
    "test_pause_stops_processes_and_resume_restarts_them",
    "test_update_changes_limits_of_a_running_container",
    "test_ps_lists_the_container_processes",
    "test_rejected_value_names_file_and_value_and_leaves_nothing",
    "test_unified_keys",
    "test_oom_killed_container_cgroup_removed_on_delete",
    "test_bpf_device_program_enforces_rules",
    "test_events_reports_no_oom_when_the_container_is_deleted",
]

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def guest_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("this host has cgroup v2 itself: tests/integration/test_cgroups.py covers v2 natively")
    if os.environ.get("PYRUNTIME_SKIP_VM") == "1":
        pytest.skip("PYRUNTIME_SKIP_VM=1")
    if os.geteuid() != 0:
        pytest.skip("the VM tier runs as root")
    if platform.machine() != "x86_64":
        pytest.skip("the VM tier boots an amd64 guest on the host's own binaries: x86_64 only")
    host_side = tmp_path_factory.mktemp("vm")
    # The checkout itself is the guest's read-write share (at the same path): the guest's /tmp is a
    # tmpfs, so a checkout (and its venv) under /tmp would otherwise be invisible there.
    shared = REPO / ".vm-results"
    shared.mkdir(exist_ok=True)
    junit = shared / f"results-{os.getpid()}.xml"
    # the guest: same checkout, same venv interpreter (never a pyenv shim), state and temp in tmpfs
    guest_cmd = (f"cd {REPO} && PYRUNTIME_TEST_SLOWDOWN=15 {sys.executable} -P -m pytest -q -p no:cacheprovider "
                 f"-p no:hypothesispytest --basetemp=/tmp/pt --durations=0 --junitxml={junit} {GUEST_TESTS} 2>&1 | tail -60")
    env = dict(os.environ, VM_ARCH="x86_64", VM_RW=str(REPO), VM_TIMEOUT="720",
               VM_CONSOLE=str(host_side / "console.log"))
    try:
        proc = subprocess.run([str(RUNNER), guest_cmd], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=780)
        output = proc.stdout + proc.stderr
        if not junit.exists():
            pytest.fail(f"the VM did not produce test results (exit {proc.returncode}):\n{output[-4000:]}")
        cases = list(ET.parse(junit).getroot().iter("testcase"))
    finally:
        junit.unlink(missing_ok=True)
        try:
            shared.rmdir()
        except OSError:
            pass
    results: dict[str, str] = {}
    for case in cases:
        status = "passed"
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                status = f"{tag}: {(node.get('message') or '')[:300]}\n{(node.text or '')[-3000:]}"
                break
        results[case.get("name", "")] = status
    results["__output__"] = output
    return results


@pytest.mark.parametrize("name", EXPECTED)
def test_cgroup_v2_in_vm(guest_results: dict[str, str], name: str) -> None:
    assert name in guest_results, f"{name} did not run in the VM:\n{guest_results['__output__'][-3000:]}"
    assert guest_results[name] == "passed", f"{name} in the cgroup v2 VM: {guest_results[name]}"

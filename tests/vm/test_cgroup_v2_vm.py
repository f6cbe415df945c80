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

import pytest
from vm_guest import run_guest_tests, skip_unless_vm_possible

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
    skip_unless_vm_possible()
    return run_guest_tests(GUEST_TESTS, "results", tmp_path_factory.mktemp("vm"))


@pytest.mark.parametrize("name", EXPECTED)
def test_cgroup_v2_in_vm(guest_results: dict[str, str], name: str) -> None:
    assert name in guest_results, f"{name} did not run in the VM:\n{guest_results['__output__'][-3000:]}"
    assert guest_results[name] == "passed", f"{name} in the cgroup v2 VM: {guest_results[name]}"

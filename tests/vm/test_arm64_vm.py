"""The arm64 tier: the unit tier and a chosen part of the integration tier, run inside an emulated
arm64 machine (qemu -M virt under TCG, Debian's arm64 kernel and userland: tests/vm/arm64-image.sh),
with pyruntime pip-installed there from this checkout (its cffi extension and init stub compiled by
the guest's gcc for aarch64) and an arm64 busybox-static bundle (tests/vm/arm64-guest.sh).

Not part of `make test` (8-12 minutes: Python runs 10-20x slower under emulation): it runs
with `make test-arm64` (PYRUNTIME_TEST_ARM64=1; `.ci/run` runs it when PYRUNTIME_CI_ARM64=1).
The guest boots once (a module fixture); each guest test file is one test here, which fails naming
every guest case that failed, and ARM64_REQUIRED names the cases that must have run and passed (so a
silent skip of what the tier is for cannot pass unnoticed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("run-in-vm.sh")
GUEST = Path(__file__).with_name("arm64-guest.sh")

# The tier: every unit test, and the integration cases that exercise what can differ between
# architectures (syscall names and numbers, struct layouts, ioctls, signal numbers, the static stub,
# libseccomp's architecture handling, the BPF device program) across the lifecycle, every namespace,
# mounts and pivot_root, user/capabilities/rlimits, seccomp, cgroup v2 limits, exec and terminals.
# A subset, because Python runs 10-20x slower under emulation: about 150 integration cases.
# Left out: what the guest cannot have (runc as a reference, host network devices, CRIU), tests
# of error paths that stop before any architecture-specific code runs, and test_mounts' cgroup-mount
# cases, which assume a cgroup v1 host (the guest is pure cgroup v2).
IT = "tests/integration/"
GUEST_TESTS = [
    "tests/unit",
    IT + "test_smoke.py",
    IT + "test_seccomp_arches.py",
    IT + "test_namespaces.py",
    *(IT + "test_lifecycle.py::" + t for t in (
        "test_state_transitions_and_fields", "test_kill_signal_by_name_number_and_default",
        "test_kill_all_signals_every_process", "test_delete_refuses_running_and_force_kills", "test_run_detach",
        "test_run_foreground_exit_code", "test_run_foreground_forwards_signals", "test_pid_file_is_bare_pid",
        "test_run_foreground_exit_code_of_a_killed_container", "test_detached_container_that_exits_reads_stopped",
        "test_delete_kills_what_the_init_left_behind", "test_features_document", "test_spec_output_is_valid_for_create")),
    *(IT + "test_mounts.py::" + t for t in (
        "test_standard_mount_types", "test_tmpfs_options", "test_bind_ro_is_read_only", "test_bind_rw_writes_reach_host",
        "test_bind_is_not_recursive_rbind_is", "test_rbind_ro_applies_to_the_top_mount", "test_bind_of_a_file",
        "test_mqueue_is_usable", "test_readonly_root", "test_masked_paths", "test_readonly_paths",
        "test_default_devices", "test_dev_symlinks_ptmx_and_shm", "test_linux_devices",
        "test_destination_symlink_to_absolute_host_path_stays_inside", "test_no_pivot",
        "test_rootfs_propagation[rslave-None]", "test_rootfs_propagation[shared-shared:]")),
    IT + "test_userns.py",
    *(IT + "test_process.py::" + t for t in (
        "test_user_uid_gid_additional_gids", "test_umask", "test_non_root_user_cannot_write_root_owned_files",
        "test_cwd", "test_env_is_exactly_the_configured_one", "test_args_are_passed_verbatim", "test_rlimits_set",
        "test_raising_a_hard_limit_fails_clearly", "test_stdin_passthrough", "test_preserve_fds",
        "test_without_preserve_fds_only_stdio_reaches_the_container", "test_listen_fds",
        "test_signal_dispositions_and_mask_are_default")),
    *(IT + "test_security_process.py::" + t for t in (
        "test_capability_sets_of_root", "test_capabilities_of_a_non_root_user_are_the_ambient_set",
        "test_no_capabilities_for_a_user_without_ambient", "test_seccomp_denied_syscall_returns_the_configured_errno",
        "test_seccomp_without_no_new_privs_for_a_non_root_user_is_loaded_before_the_user_change",
        "test_seccomp_default_errno_and_an_argument_filter", "test_seccomp_every_action",
        "test_seccomp_notify_listener_gets_the_fd_and_answers", "test_seccomp_notify_listener_gets_the_exec_process_state",
        "test_seccomp_notify_listener_unreachable_fails_create_cleanly", "test_bad_seccomp_profiles_are_refused",
        "test_namespaced_sysctls_are_set", "test_oom_score_adj", "test_rlimits", "test_personality_linux32",
        "test_scheduler_batch_with_nice", "test_scheduler_deadline", "test_io_priority", "test_memory_policy",
        "test_exec_cpu_affinity_initial_then_final", "test_new_session_keyring_unless_no_new_keyring")),
    *(IT + "test_cgroups.py::" + t for t in (
        "test_memory_limit_oom_kills_and_events_reports_it", "test_events_stats_reports_memory_and_pids",
        "test_pids_limit_stops_forks", "test_cpu_quota_throttles", "test_device_rules_are_enforced",
        "test_pause_stops_processes_and_resume_restarts_them", "test_update_changes_limits_of_a_running_container",
        "test_unified_keys", "test_bpf_device_program_enforces_rules")),
    *(IT + "test_exec.py::" + t for t in (
        "test_foreground_output_and_exit_code", "test_exit_by_signal_gives_128_plus_n", "test_env_cwd_user_and_groups",
        "test_namespaces_and_cgroup_are_the_inits", "test_detached_exec_pid_file_and_quick_return",
        "test_exec_process_runs_the_containers_binary_never_a_host_file",
        "test_shebang_proc_self_exe_reexecutes_the_stub_not_the_runtime",
        "test_capabilities_inheritable_empty_and_cap_flag", "test_rlimits_and_no_new_privs_from_the_container",
        "test_only_stdio_and_preserved_fds_reach_the_process", "test_process_file",
        "test_foreground_exec_forwards_signals_and_does_not_hold_the_lock", "test_seccomp_of_the_container_applies_to_exec",
        "test_exec_into_a_user_namespace", "test_namespace_join_falls_back_to_proc_ns_files",
        "test_early_seccomp_with_a_profile_that_lacks_close_range")),
    *(IT + "test_terminal.py::" + t for t in (
        "test_run_foreground_proxies_the_terminal", "test_run_foreground_follows_window_size_changes",
        "test_console_socket_receives_master_with_console_size", "test_exec_tty_foreground",
        "test_exec_tty_detached_with_console_socket", "test_run_terminal_raw_mode_ctrl_c_and_signals")),
]
# cases that must run and pass on arm64: what issue #18 asks the tier to prove
ARM64_REQUIRED = [
    "test_init_stub_is_a_static_executable_for_this_machine",
    "test_native_extension_is_built_for_this_machine",
    "test_seccomp_denied_syscall_returns_the_configured_errno",
    "test_seccomp_default_errno_and_an_argument_filter",
    "test_seccomp_notify_listener_gets_the_fd_and_answers[late]",
    "test_seccomp_profile_naming_other_architectures_syscalls_loads",
    "test_seccomp_allowlist_of_another_architectures_names_still_runs_a_shell",
    "test_memory_limit_oom_kills_and_events_reports_it",
    "test_pids_limit_stops_forks",
    "test_console_socket_receives_master_with_console_size",
    "test_every_namespace_kind_new",
]
# one test here per guest file: its cases' results
GUEST_FILES = sorted({t.split("::")[0] for t in GUEST_TESTS})

pytestmark = pytest.mark.vm


def _enabled() -> bool:
    return os.environ.get("PYRUNTIME_TEST_ARM64") == "1"


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    if not _enabled():
        pytest.skip("the arm64 tier runs with `make test-arm64` (PYRUNTIME_TEST_ARM64=1)")
    if os.geteuid() != 0:
        pytest.skip("the arm64 tier runs as root")
    if not shutil.which("qemu-system-aarch64"):
        pytest.fail("qemu-system-aarch64 is missing: apt-get install qemu-system-arm (make deps-arm64)")
    host_side = tmp_path_factory.mktemp("arm64")
    out = REPO / ".vm-results" / f"arm64-{os.getpid()}"
    cmd = ["bash", str(GUEST), str(REPO), str(out), "-q", "-rfEs", "--durations=15", *GUEST_TESTS]
    env = dict(os.environ, VM_ARCH="arm64", VM_RW=str(REPO), VM_TIMEOUT="1500",
               VM_CONSOLE=str(host_side / "console.log"))
    try:
        # the guest's output goes on as it comes (seen with `pytest -s`, as `make test-arm64` runs it)
        lines: list[str] = []
        with subprocess.Popen([str(RUNNER), *cmd], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:  # ends when the VM is gone (run-in-vm's VM_TIMEOUT bounds it)
                print(line, end="", flush=True)
                lines.append(line)
            rc = proc.wait(timeout=60)
        output = "".join(lines)
        junit = out / "junit.xml"
        if not junit.exists():
            pytest.fail(f"the arm64 guest produced no test results (exit {rc}):\n{output[-4000:]}")
        cases = list(ET.parse(junit).getroot().iter("testcase"))
        build = (out / "build.txt").read_text() if (out / "build.txt").exists() else ""
    finally:
        shutil.rmtree(out, ignore_errors=True)
        try:
            out.parent.rmdir()
        except OSError:
            pass
    results: dict[str, dict[str, str]] = {}
    for case in cases:
        status = "passed"
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                status = f"{tag}: {(node.get('message') or '')[:300]}\n{(node.text or '')[-2000:]}"
                break
        # classname is the module path with dots (tests.integration.test_mounts)
        results.setdefault(case.get("classname", ""), {})[case.get("name", "")] = status
    results["__output__"] = {"text": output, "build": build}
    return results


def _module(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


@pytest.mark.parametrize("path", GUEST_FILES)
def test_arm64_guest_file(guest: dict[str, dict[str, str]], path: str) -> None:
    prefix = _module(path)
    cases = {f"{mod}::{name}": st for mod, byname in guest.items() if mod == prefix or mod.startswith(prefix + ".")
             for name, st in byname.items()}
    assert cases, f"nothing of {path} ran in the arm64 guest:\n{guest['__output__']['text'][-3000:]}"
    bad = {k: v for k, v in cases.items() if not (v == "passed" or v.startswith("skipped"))}
    assert not bad, "on arm64:\n" + "\n\n".join(f"{k}: {v}" for k, v in bad.items())


def test_arm64_required_cases_passed(guest: dict[str, dict[str, str]]) -> None:
    everything = {name: st for mod, byname in guest.items() if mod != "__output__" for name, st in byname.items()}
    missing = [n for n in ARM64_REQUIRED if everything.get(n) != "passed"]
    assert not missing, {n: everything.get(n, "did not run") for n in missing}


def test_arm64_build_is_native(guest: dict[str, dict[str, str]]) -> None:
    """The extension, the stub and the container's busybox were all built for the guest's machine."""
    build = guest["__output__"]["build"]
    assert "machine: aarch64" in build, build
    elf = dict(line.split(": e_machine ", 1) for line in build.splitlines() if ": e_machine " in line)
    assert {"_initstub", "container busybox", "interpreter"} <= elf.keys(), build
    assert len({v.split(",")[0] for v in elf.values()}) == 1, build  # one ELF machine: the interpreter's
    assert elf["_initstub"].endswith("static") and elf["container busybox"].endswith("static"), build

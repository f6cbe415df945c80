"""Running a pytest file of this checkout inside one x86_64 qemu guest (run-in-vm.sh) and reading
its results back: what the cgroup v2 and CRIU tiers share. The guest's root is this host's / (read-only
+ tmpfs overlay) and the checkout is its read-write share at the same path, so the guest runs this
very checkout with the project's venv; results come back as JUnit XML through the checkout."""

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


def skip_unless_vm_possible() -> None:
    if os.environ.get("PYRUNTIME_SKIP_VM") == "1":
        pytest.skip("PYRUNTIME_SKIP_VM=1")
    if os.geteuid() != 0:
        pytest.skip("the VM tier runs as root")
    if platform.machine() != "x86_64":
        pytest.skip("the VM tier boots an amd64 guest on the host's own binaries: x86_64 only")


def run_guest_tests(guest_tests: str, name: str, host_side: Path, before: str = "",
                    env: dict[str, str] | None = None) -> dict[str, str]:
    """{test name: "passed" or the failure}, plus "__output__": the guest's pytest output. `before`
    is a shell command run first in the guest (e.g. `ip link set lo up`); env adds runner variables."""
    # The checkout itself is the guest's read-write share (at the same path): the guest's /tmp is a
    # tmpfs, so a checkout (and its venv) under /tmp would otherwise be invisible there.
    shared = REPO / ".vm-results"
    shared.mkdir(exist_ok=True)
    junit = shared / f"{name}-{os.getpid()}.xml"
    # the guest: same checkout, same venv interpreter (never a pyenv shim), state and temp in tmpfs
    guest_cmd = (f"{before + ' && ' if before else ''}cd {REPO} && PYRUNTIME_TEST_SLOWDOWN=15 {sys.executable} -P "
                 f"-m pytest -q -p no:cacheprovider -p no:hypothesispytest --basetemp=/tmp/pt --durations=0 "
                 f"--junitxml={junit} {guest_tests} 2>&1 | tail -60")
    run_env = dict(os.environ, VM_ARCH="x86_64", VM_RW=str(REPO), VM_TIMEOUT="720",
                   VM_CONSOLE=str(host_side / "console.log"), **(env or {}))
    try:
        proc = subprocess.run([str(RUNNER), guest_cmd], cwd=REPO, env=run_env, capture_output=True, text=True,
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

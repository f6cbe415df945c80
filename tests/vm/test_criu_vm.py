"""The CRIU tier: tests/integration/test_criu.py (checkpoint/restore for real) run inside a qemu guest,
because this host's kernel fails `criu check` with Debian's CRIU 3.17 while the guest's Debian 6.1
kernel passes it once CRIU's modules are loaded and loopback is up.

The VM boots ONCE per run (a module fixture); the guest's root is this host's / (read-only + tmpfs
overlay), so it runs this very checkout with the project's venv and the host's criu; results come
back through the checkout (shared read-write). Each guest case is one test here.

Modules: CRIU probes the sock_diag families (netlink, unix, inet/tcp/udp, packet), nf_tables and
crc32c; nf_conntrack_netlink is what dumping a container's own network namespace needs (without
it nfnetlink answers CRIU's conntrack request with EINVAL: "-22 reported by netlink"). The guest
cannot load modules itself (its /lib/modules is the host's), so they go into the initramfs.

On a host where `criu check` passes, test_criu.py runs directly and this module skips.
PYRUNTIME_SKIP_VM=1 skips it too.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from vm_guest import run_guest_tests, skip_unless_vm_possible

GUEST_TESTS = "tests/integration/test_criu.py"
CRIU_MODULES = ("crc32c_generic nf_tables netlink_diag unix_diag inet_diag tcp_diag udp_diag af_packet_diag "
                "nf_conntrack_netlink")
EXPECTED = [
    "test_checkpoint_and_restore_goes_on_counting",
    "test_leave_running",
    "test_pre_dump_then_dump",
    "test_restore_into_a_new_container_id",
    "test_restore_with_a_console_socket",
    "test_restore_from_a_missing_image_path_leaves_nothing",
    "test_checkpoint_error_leaves_the_container_running",
    "test_failed_restore_names_criu_log_and_leaves_nothing",
]

pytestmark = pytest.mark.vm


def _criu_works_here() -> bool:
    return bool(shutil.which("criu")) and subprocess.run(["criu", "check"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def guest_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    skip_unless_vm_possible()
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 is missing (apt-get install qemu-system-x86): no CRIU guest")
    if not shutil.which("criu"):
        pytest.skip("criu is missing (apt-get install criu)")
    if _criu_works_here():
        pytest.skip("CRIU works on this host: tests/integration/test_criu.py runs natively")
    return run_guest_tests(GUEST_TESTS, "criu-results", tmp_path_factory.mktemp("vm"), before="ip link set lo up",
                           env={"VM_MODS_EXTRA": CRIU_MODULES})


@pytest.mark.parametrize("name", EXPECTED)
def test_criu_in_vm(guest_results: dict[str, str], name: str) -> None:
    assert name in guest_results, f"{name} did not run in the VM:\n{guest_results['__output__'][-3000:]}"
    assert guest_results[name] == "passed", f"{name} in the CRIU VM: {guest_results[name]}"

"""Example: test a web server in a container, with the pyruntime pytest plugin (pyruntime.api), and the
same test through the command line for comparison.

    .venv/bin/python -m pytest -q examples/test_httpd.py   # as root; the rootfs: --oci-rootfs DIR
                                                           # (this repository's pyproject.toml sets it)

busybox httpd serves a directory of the host (bound read-only) in the container's own network
namespace; the client is busybox wget, run in the same container (its loopback is its own).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PORT = 8080


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("hello from httpd\n")
    return site


def test_httpd_with_the_api(container, tmp_path):
    site = _site(tmp_path)
    c = container(["httpd", "-f", "-p", f"127.0.0.1:{PORT}", "-h", "/tmp"],
                  edit=lambda config: config.bind(site, "/tmp", readonly=True))
    for _attempt in range(50):  # httpd listens shortly after it starts
        r = c.exec_run(["wget", "-qO-", f"http://127.0.0.1:{PORT}/"], timeout=10)
        if r.returncode == 0:
            break
    assert r.stdout == b"hello from httpd\n"
    c.kill("KILL")
    assert c.wait(timeout=10) == 137
    # the fixture deletes the container; the plugin checks that nothing is left


def test_httpd_with_the_command_line(bundle, oci_root, tmp_path):
    site = _site(tmp_path)
    path = bundle(["httpd", "-f", "-p", f"127.0.0.1:{PORT}", "-h", "/tmp"],
                  edit=lambda config: config.bind(site, "/tmp", readonly=True))
    runtime = [str(Path(sys.executable).parent / "pyruntime"), "--root", oci_root]
    subprocess.run([*runtime, "run", "--detach", "--bundle", str(path), "web"], check=True, timeout=60,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _attempt in range(50):
            r = subprocess.run([*runtime, "exec", "web", "wget", "-qO-", f"http://127.0.0.1:{PORT}/"],
                               capture_output=True, timeout=10)
            if r.returncode == 0:
                break
        assert r.stdout == b"hello from httpd\n"
    finally:
        subprocess.run([*runtime, "delete", "--force", "web"], check=True, timeout=60)

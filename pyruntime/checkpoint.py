"""`checkpoint` and `restore` through CRIU, with runc's flags.

CRIU must work on the host first: every call runs `criu check`, and when it fails the command stops
with CRIU's own reason (on this project's CI kernel CRIU 3.17 cannot read the vDSO:
"kerndat_vdso_fill_symtable failed"), leaving the container untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from .errors import RuntimeFailure
from .state import Container


@dataclass
class CriuOptions:
    image_path: str
    work_path: str | None = None
    leave_running: bool = False
    tcp_established: bool = False
    file_locks: bool = False
    ext_unix_sk: bool = False
    shell_job: bool = False
    manage_cgroups_mode: str | None = None
    auto_dedup: bool = False
    empty_ns: tuple[str, ...] = ()
    lazy_pages: bool = False
    parent_path: str | None = None
    pre_dump: bool = False
    status_fd: int = -1
    page_server: str | None = None


def criu_usable(criu: str = "criu") -> None:
    """Raise RuntimeFailure with CRIU's reason unless `criu check` passes on this host."""
    if not shutil.which(criu):
        raise RuntimeFailure(f"{criu} not found: install CRIU to checkpoint and restore containers")
    proc = subprocess.run([criu, "check"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if "failed" in ln.lower()), lines[-1] if lines else "no output")
        raise RuntimeFailure(f"CRIU cannot work on this kernel (`criu check` failed: {reason.strip()})")


def _common(opts: CriuOptions) -> list[str]:
    unsupported = [flag for flag, on in (("--empty-ns", opts.empty_ns), ("--lazy-pages", opts.lazy_pages),
                                          ("--status-fd", opts.status_fd >= 0), ("--page-server", opts.page_server))
                   if on]
    if unsupported:
        raise RuntimeFailure(f"{', '.join(unsupported)}: not supported by pyruntime's CRIU driver yet")
    args = ["--images-dir", opts.image_path, "--evasive-devices"]
    mode = opts.manage_cgroups_mode or "soft"
    if mode not in ("soft", "full", "strict", "ignore"):
        raise RuntimeFailure(f"--manage-cgroups-mode {mode!r}: expected soft, full, strict or ignore")
    args += ["--manage-cgroups", "--manage-cgroups-mode", mode] if mode != "ignore" else []
    if opts.auto_dedup:
        args.append("--auto-dedup")
    if opts.parent_path:
        args += ["--prev-images-dir", opts.parent_path]
    if opts.work_path:
        args += ["--work-dir", opts.work_path]
    for flag, on in (("--tcp-established", opts.tcp_established), ("--file-locks", opts.file_locks),
                     ("--ext-unix-sk", opts.ext_unix_sk), ("--shell-job", opts.shell_job)):
        if on:
            args.append(flag)
    return args


def checkpoint(c: Container, opts: CriuOptions, criu: str = "criu") -> None:
    if c.status() not in ("running", "paused"):
        raise RuntimeFailure(f"container {c.id} is not running")
    os.makedirs(opts.image_path, exist_ok=True)
    _check_parent_path(opts)
    criu_usable(criu)
    root = os.path.join(c.bundle, (c.config.get("root") or {}).get("path", "rootfs"))
    args = [criu, "pre-dump" if opts.pre_dump else "dump", "--tree", str(c.pid), "--root", root, *_common(opts)]
    if opts.leave_running and not opts.pre_dump:  # a pre-dump always leaves it running
        args.append("--leave-running")
    _run(args, "checkpoint")


def _check_parent_path(opts: CriuOptions) -> None:
    """runc's rule: --parent-path is relative to --image-path (CRIU's --prev-images-dir) and names an
    existing directory (the images of an earlier pre-dump)."""
    if not opts.parent_path:
        return
    if os.path.isabs(opts.parent_path):
        raise RuntimeFailure("--parent-path must be relative (to --image-path)")
    parent = os.path.join(opts.image_path, opts.parent_path)
    if not os.path.isdir(parent):
        why = "not a directory" if os.path.exists(parent) else "no such file or directory"
        raise RuntimeFailure(f"invalid --parent-path: {parent}: {why}")


def _run(args: list[str], what: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise RuntimeFailure(f"{what}: criu exited {proc.returncode}: {tail}")

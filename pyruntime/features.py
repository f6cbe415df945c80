"""`features`: the runtime-spec features document (what this build of pyruntime supports)."""

from __future__ import annotations

from typing import Any

from . import __version__
from .rootfs.mounts import _FLAGS, PROPAGATION
from .security import numa, seccomp
from .security.caps import CAPS


def features() -> dict[str, Any]:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted([*_FLAGS, *PROPAGATION]),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": list(CAPS),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True},
            "seccomp": seccomp.features(),
            # Whether the runtime implements them (labels are applied when the host has the LSM on).
            "apparmor": {"enabled": True},
            "selinux": {"enabled": True},
            "memoryPolicy": {"modes": [m for m, v in numa.MODES.items() if v >= 0],
                             "flags": [f for f, v in numa.FLAGS.items() if v >= 0]},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.pyruntime.version": __version__},
    }

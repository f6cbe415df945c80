"""`features`: the runtime-spec features document (what this build of pyruntime supports).

Every list is derived from the tables the code itself parses with, so it cannot claim what the code
does not accept (or miss what it does).
"""

from __future__ import annotations

from . import __version__
from .rootfs.idmap import RECURSIVE_ATTRS
from .rootfs.mounts import _FLAGS, PROPAGATION
from .security import numa, seccomp
from .security.caps import CAPS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def features() -> dict[str, Any]:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        # "defaults" is accepted as a no-op; tmpcopyup & co. are accepted but ignored, so not listed.
        "mountOptions": sorted([*_FLAGS, *PROPAGATION, *RECURSIVE_ATTRS, "idmap", "ridmap", "defaults"]),
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
            "mountExtensions": {"idmap": {"enabled": True}},  # mounts[].uidMappings (rootfs/idmap.py)
            "netDevices": {"enabled": True},  # linux.netDevices (network.py)
        },
        "annotations": {"org.opencontainers.runtime-spec.features.pyruntime.version": __version__},
    }

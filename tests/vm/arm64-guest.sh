#!/bin/bash
# arm64-guest.sh SRC OUT [PYTEST ARGS...] — runs INSIDE the arm64 guest (run-in-vm-arm64.sh):
# installs pyruntime from the checkout SRC the way a user would (pip, offline: the cffi extension
# and the static init stub are compiled by the guest's own gcc for aarch64), builds the busybox
# bundle from the guest's arm64 busybox-static (bundles/make-rootfs.sh), then runs pytest there.
# OUT (on the host share) receives junit.xml, install.log and build.txt (what was built, for what).
# The checkout is copied to /tmp first: Python over 9p is ~20x slower, and 9p has no sockets.
set -euo pipefail
src=$1 out=$2; shift 2
mkdir -p "$out"
work=/tmp/pyruntime
t0=$(date +%s)
mkdir -p "$work"
tar -C "$src" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='./*.egg-info' \
  --exclude=./bundles/busybox/rootfs --exclude=__pycache__ --exclude='./.stamp-*' --exclude=./.vm-results \
  --exclude='./pyruntime/_native*.so' --exclude=./pyruntime/_initstub --exclude=./.podman -cf - . | tar -C "$work" -xf -
cd "$work"

# pip install of the project: /opt/venv already has its dependencies (aarch64 wheels, python-prctl
# built here from its sdist); setuptools + cffi build _native and _initstub with this machine's cc.
if ! /opt/venv/bin/pip install --no-index --find-links /opt/wheels --no-build-isolation \
     --disable-pip-version-check . > "$out/install.log" 2>&1; then
  tail -40 "$out/install.log"; echo "arm64-guest: pip install failed"; exit 3
fi
/opt/venv/bin/python -I -m pyruntime.launcher >> "$out/install.log"   # what `make setup` does
t1=$(date +%s)
sh bundles/make-rootfs.sh bundles/busybox/rootfs
{
  echo "machine: $(uname -m), kernel $(uname -r)"
  echo "python: $(/opt/venv/bin/python -c 'import platform, sys; print(sys.version.split()[0], platform.machine())')"
  /opt/venv/bin/python -I - <<'EOF'
import glob, os, pyruntime
def elf(path):
    with open(path, "rb") as f:
        h = f.read(64)
    machine = int.from_bytes(h[18:20], "little")
    phoff, phentsize, phnum = int.from_bytes(h[32:40], "little"), int.from_bytes(h[54:56], "little"), int.from_bytes(h[56:58], "little")
    with open(path, "rb") as f:
        f.seek(phoff)
        types = [int.from_bytes(f.read(phentsize)[:4], "little") for _ in range(phnum)]
    return f"e_machine {machine}, {'dynamic (PT_INTERP)' if 3 in types else 'static'}"
d = os.path.dirname(pyruntime.__file__)
for p in sorted(glob.glob(os.path.join(d, "_native*.so"))) + [os.path.join(d, "_initstub")]:
    print(f"{os.path.basename(p)}: {elf(p)}")
print(f"container busybox: {elf(os.path.realpath('bundles/busybox/rootfs/bin/busybox'))}")
print(f"interpreter: {elf(os.path.realpath('/opt/venv/bin/python'))}")
EOF
  echo "install: $((t1 - t0)) s"
} | tee "$out/build.txt"
set +e
PYRUNTIME_TEST_SLOWDOWN=${PYRUNTIME_TEST_SLOWDOWN:-12} /opt/venv/bin/python -P -m pytest -p no:cacheprovider \
  --basetemp=/tmp/pt --junitxml="$out/junit.xml" "$@"
rc=$?
echo "arm64-guest: install $((t1 - t0)) s, tests $(( $(date +%s) - t1 )) s"
exit $rc

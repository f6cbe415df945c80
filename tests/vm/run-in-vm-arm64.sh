#!/bin/bash
# run-in-vm-arm64.sh — run one command as root inside an emulated arm64 machine (qemu -M virt, TCG)
# booted from Debian's arm64 kernel and a cached Debian arm64 root disk (arm64-image.sh builds it on
# first use). Same interface as run-in-vm.sh (which execs this script when VM_ARCH=arm64): prints
# the command's stdout+stderr (a pipe, not a tty), exits with its exit code; 125 = the VM failed.
#
# usage: run-in-vm-arm64.sh CMD ARG...     argv, run as-is in the guest
#        run-in-vm-arm64.sh 'shell line'   one argument = a bash command line
# In the guest: / is the arm64 image (ext4 on virtio, copy-on-write: changes vanish at power-off;
# /tmp is on it too, so idmapped mounts work there on the guest's 6.1 kernel), /run /var/tmp are tmpfs, /sys/fs/cgroup is a real cgroup2 (every controller), $VM_RW is the
# host directory, read-write over 9p at the same path (slow for Python, and no sockets/FIFOs there:
# copy what you run to /tmp), cwd = $PWD. /opt/venv has the project's Python dependencies (aarch64
# wheels, python-prctl built in the guest), /opt/wheels the wheels themselves. No network.
# env:   VM_DIR      cache dir of the image (default /var/cache/pyruntime-arm64-vm)
#        VM_MEM      guest RAM MiB (default 2048)     VM_CPUS  vCPUs (default 2)
#        VM_CPU      qemu -cpu (default max,pauth-impdef=on: plain max emulates pointer
#                    authentication's QARMA and boots ~6 s slower)
#        VM_RW       host dir shared read-write at the same path (default: $PWD)
#        VM_TIMEOUT  seconds before the VM is killed (default 3000)
#        VM_CONSOLE  file for the guest kernel console (default: a temporary file)
# needs (apt): qemu-system-arm, and for the first build mmdebstrap, kmod, e2fsprogs, busybox-static
set -euo pipefail
[ "${1:-}" = "--" ] && shift
[ $# -ge 1 ] || { echo "usage: $0 [--] CMD [ARGS...]" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
export VM_DIR=${VM_DIR:-/var/cache/pyruntime-arm64-vm}
VM_MEM=${VM_MEM:-2048}
VM_CPUS=${VM_CPUS:-2}
VM_CPU=${VM_CPU:-max,pauth-impdef=on}
VM_RW=${VM_RW:-$PWD}
VM_TIMEOUT=${VM_TIMEOUT:-3000}
command -v qemu-system-aarch64 >/dev/null 2>&1 || { echo "run-in-vm-arm64: missing qemu-system-aarch64 (apt-get install qemu-system-arm)" >&2; exit 2; }

"$HERE/arm64-image.sh" || { echo "run-in-vm-arm64: building the arm64 image failed" >&2; exit 125; }

# boot SNAPSHOT CMDFILE RWDIR: one boot running the bash script CMDFILE with RWDIR shared; sets $rc
# (125: no exit code came back). SNAPSHOT=off only for the first-use provisioning below.
boot() {
  local snapshot=$1 script=$2 rwdir=$3 ctl qrc console
  ctl=$(mktemp -d /tmp/run-in-vm-arm64.XXXXXX)
  cp "$script" "$ctl/cmd"
  for v in $(compgen -e | grep -E '^(CI|LANG|LC_[A-Z]+|PYTHON[A-Z_]*|PYTEST_[A-Z_]*|PYRUNTIME_[A-Z_]*|VM_PASS_[A-Z_]*)$' || true); do
    printf 'export %s=%q\n' "$v" "${!v}"; done > "$ctl/env"
  console=${VM_CONSOLE:-$ctl/console.log}
  set +e
  timeout --foreground -k 10 "$VM_TIMEOUT" qemu-system-aarch64 \
    -M virt -accel tcg -cpu "$VM_CPU" -smp "$VM_CPUS" -m "$VM_MEM" \
    -nodefaults -no-reboot -display none -monitor none \
    -kernel "$VM_DIR/vmlinuz" -initrd "$VM_DIR/initrd.cpio.gz" \
    -append "console=ttyAMA0 rdinit=/init quiet loglevel=3 panic=-1 vmrw=$rwdir" \
    -serial "file:$console" \
    -device virtio-serial-pci -chardev stdio,id=out,signal=off -device virtconsole,chardev=out \
    -drive "if=none,id=root,file=$VM_DIR/root.img,format=raw,snapshot=$snapshot" \
    -device virtio-blk-pci,drive=root \
    -virtfs "local,path=$rwdir,mount_tag=hostrw,security_model=none,multidevs=remap" \
    -virtfs "local,path=$ctl,mount_tag=ctl,security_model=none" \
    < /dev/null
  qrc=$?
  set -e
  [ -s "$ctl/out" ] && cat "$ctl/out"          # only when the guest had no virtio console
  if [ -s "$ctl/rc" ]; then
    rc=$(cat "$ctl/rc")
  else
    echo "run-in-vm-arm64: VM did not report an exit code (qemu rc=$qrc); console tail:" >&2
    tail -n 40 "$console" >&2 || true
    rc=125
  fi
  rm -rf "$ctl"
}

tmp=$(mktemp -d /tmp/run-in-vm-arm64.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# ---- first use: /opt/venv with the project's dependencies, made in the guest (offline) ------------
cat > "$tmp/provision" <<'EOF'
set -e
ldconfig
python3.11 -m venv /opt/venv
/opt/venv/bin/pip install -q --no-index --find-links /opt/wheels --disable-pip-version-check \
  setuptools wheel "cffi>=1.15" "click>=8.1" "python-prctl>=1.8" "pytest>=7" "hypothesis>=6" "pyroute2>=0.7"
/opt/venv/bin/python -c 'import cffi, click, prctl, pytest, hypothesis, pyroute2; print("arm64 venv ready")'
sync
EOF
VSUM=$( { ls "$VM_DIR"/image.ok.*; cat "$tmp/provision"; } | md5sum | cut -c1-8)
if [ ! -e "$VM_DIR/venv.ok.$VSUM" ]; then
  exec 9>"$VM_DIR/.provision.lock"
  flock 9
  if [ ! -e "$VM_DIR/venv.ok.$VSUM" ]; then
    echo "run-in-vm-arm64: first use: making /opt/venv in the image" >&2
    mkdir "$tmp/empty"
    boot off "$tmp/provision" "$tmp/empty" >&2
    [ "$rc" = 0 ] || { rm -f "$VM_DIR"/image.ok.*   # written to: rebuild it next time
      echo "run-in-vm-arm64: provisioning the image failed (exit $rc)" >&2; exit 125; }
    rm -f "$VM_DIR"/venv.ok.*; touch "$VM_DIR/venv.ok.$VSUM"
  fi
  exec 9>&-
fi

# ---- the command ------------------------------------------------------------------------------------
{ printf 'cd %q 2>/dev/null || cd /\n' "$PWD"
  if [ $# -eq 1 ]; then printf '%s\n' "$1"; else printf '%q ' "$@"; echo; fi; } > "$tmp/cmd"
boot on "$tmp/cmd" "$VM_RW"
exit "$rc"

#!/bin/bash
# arm64-image.sh — build (once) the cached arm64 guest for run-in-vm-arm64.sh, from Debian's
# packages only, with no emulator on the host and nothing installed on the host:
#   $VM_DIR/vmlinuz        Debian's arm64 kernel (linux-image-arm64), extracted, never installed
#   $VM_DIR/initrd.cpio.gz arm64 busybox-static + the modules that mount the root disk and 9p
#   $VM_DIR/root.img       ext4: Debian bookworm arm64 userland (mmdebstrap --variant=extract: no
#                          maintainer scripts run, so the few things they would do are done here),
#                          python3.11 + gcc + the -dev packages the project builds against, the
#                          kernel's modules (depmod'ed), aarch64 wheels of the Python deps in /opt/wheels
# run-in-vm-arm64.sh then boots it once (read-write) to make /opt/venv with those deps (offline);
# every later boot uses the image copy-on-write (qemu snapshot), so it stays as built.
# usage: arm64-image.sh            (does nothing when the image is up to date with this script)
# env:   VM_DIR (default /var/cache/pyruntime-arm64-vm), VM_APT_SOURCES (a sources.list or deb822
#        file for mmdebstrap; default: the host's Debian sources), VM_IMG_SIZE (default 3G)
# needs (apt): mmdebstrap, kmod (depmod), e2fsprogs (mkfs.ext4 -d), busybox-static (cpio), python3.11
set -euo pipefail
VM_DIR=${VM_DIR:-/var/cache/pyruntime-arm64-vm}
VM_IMG_SIZE=${VM_IMG_SIZE:-3G}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SUM=$(md5sum < "$0" | cut -c1-8)
ISUM=$(cat "$0" "$HERE/arm64-init.sh" | md5sum | cut -c1-8)
[ -e "$VM_DIR/image.ok.$SUM" ] && [ -e "$VM_DIR/initrd.ok.$ISUM" ] && exit 0

need() { command -v "$1" >/dev/null 2>&1 || { echo "arm64-image: missing $1 (apt-get install $2)" >&2; exit 2; }; }
need mmdebstrap mmdebstrap
need depmod kmod
need mkfs.ext4 e2fsprogs
need busybox busybox-static
need python3.11 python3.11
mkdir -p "$VM_DIR"
exec 9>"$VM_DIR/.build.lock"
flock 9
[ -e "$VM_DIR/image.ok.$SUM" ] && [ -e "$VM_DIR/initrd.ok.$ISUM" ] && exit 0   # done while we waited
W="$VM_DIR/build.tmp"
trap 'rm -rf "$W"' EXIT

build_image() {
rm -f "$VM_DIR"/image.ok.* "$VM_DIR"/venv.ok.* "$VM_DIR"/initrd.ok.*
rm -rf "$W"; mkdir -p "$W"
R="$W/root"

# ---- 1. userland + kernel (arm64 .debs, extracted) -----------------------------------------------
# Everything pyruntime's `pip install .` and its tests use in the guest: the compiler and headers the
# cffi extension and the static init stub are built with, busybox-static for the container bundle,
# util-linux/iproute2/procps for the tests, and the kernel whose modules the guest loads.
PKGS="dash bash coreutils util-linux mount findutils grep sed gawk tar gzip procps kmod iproute2 uidmap
      hostname passwd login libpam-modules libpam-runtime base-passwd base-files libc-bin busybox-static
      python3.11 python3.11-venv python3.11-dev libpython3.11-dev
      gcc libc6-dev libffi-dev libseccomp-dev libcap-dev pkg-config make
      linux-image-arm64"
sources=${VM_APT_SOURCES:-}
if [ -z "$sources" ]; then
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -s "$f" ] && { sources=$f; break; }
  done
fi
echo "arm64-image: mmdebstrap (arm64, extract) into $R" >&2
mmdebstrap --quiet --variant=extract --arch=arm64 \
  --setup-hook=/usr/share/mmdebstrap/hooks/merged-usr/setup00.sh \
  --include="$(echo $PKGS | tr ' ' ,)" bookworm "$R" ${sources:+"$sources"}

# what the skipped maintainer scripts would have done, as far as the guest needs it
ln -sf dash "$R/usr/bin/sh"
ln -sf gcc "$R/usr/bin/cc"                       # update-alternatives (setup.py runs `cc`)
ln -sf busybox "$R/usr/bin/cpio" 2>/dev/null || true
cp "$R/usr/share/base-passwd/passwd.master" "$R/etc/passwd"
cp "$R/usr/share/base-passwd/group.master" "$R/etc/group"
sed 's/:.*/:*:19000:0:99999:7:::/' "$R/etc/passwd" > "$R/etc/shadow"      # shadowconfig on
sed 's/:.*/:*::/' "$R/etc/group" > "$R/etc/gshadow"
chmod 640 "$R/etc/shadow" "$R/etc/gshadow"
# pam-auth-update's common-* files (root's `su` to a test user passes pam_rootok in /etc/pam.d/su)
printf 'auth requisite pam_deny.so\n' > "$R/etc/pam.d/common-auth"
printf 'account required pam_permit.so\n' > "$R/etc/pam.d/common-account"
printf 'session required pam_permit.so\n' > "$R/etc/pam.d/common-session"
printf 'session required pam_permit.so\n' > "$R/etc/pam.d/common-session-noninteractive"
printf 'password requisite pam_deny.so\n' > "$R/etc/pam.d/common-password"
printf 'vm\n' > "$R/etc/hostname"
printf '127.0.0.1 localhost vm\n::1 localhost\n' > "$R/etc/hosts"
ln -sf ../proc/self/mounts "$R/etc/mtab"
: > "$R/etc/subuid"; : > "$R/etc/subgid"
mkdir -p "$R/opt/wheels" "$R/run/vmctl" "$R/sys/fs/cgroup"

# the kernel: outside the image (qemu -kernel), its modules inside (depmod, as its postinst would)
KVER=$(ls "$R/usr/lib/modules" | head -1)
[ -n "$KVER" ] && [ -e "$R/boot/vmlinuz-$KVER" ] || { echo "arm64-image: no kernel in the image" >&2; exit 1; }
depmod -b "$R" "$KVER"
cp "$R/boot/vmlinuz-$KVER" "$W/vmlinuz"
rm -rf "$R/boot"/* "$R/var/cache/apt/archives"/*.deb

# byte-compile the standard library now (the host's python3.11 writes the same .pyc format); in the
# guest Python would otherwise compile it on every boot of the copy-on-write image
python3.11 -m compileall -q -j 2 -s "$R" -p / "$R/usr/lib/python3.11" >/dev/null || true

# ---- 2. aarch64 wheels of the Python dependencies (installed offline in the guest) ---------------
# Binary wheels where PyPI has them for aarch64 (cffi), pure-Python wheels otherwise; python-prctl
# has no wheels at all: its sdist is built by the guest's gcc (against libcap-dev).
echo "arm64-image: pip download (aarch64 wheels)" >&2
PIP="$REPO/.venv/bin/pip"; [ -x "$PIP" ] || PIP="python3.11 -m pip"
$PIP download -q -d "$R/opt/wheels" --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
  --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 --platform manylinux_2_34_aarch64 \
  "cffi>=1.15" "click>=8.1" "pytest>=7" "hypothesis>=6" "pyroute2>=0.7" "setuptools>=61" wheel
$PIP download -q -d "$R/opt/wheels" --no-deps --no-binary=:all: "python-prctl>=1.8"

# ---- 3. what the initramfs needs from the image: arm64 busybox, the modules of the disk and 9p -----
I="$W/initrd-src"; mkdir -p "$I"/{bin,proc,sys,dev,newroot,mods}
cp "$R/usr/bin/busybox" "$I/bin/busybox"
MD="$R/usr/lib/modules/$KVER"
: > "$I/mods/order"
addmod() {   # module $1 after its dependencies (modules.dep), decompressed, once
  local m=$1 rel dep
  rel=$(awk -F: -v m="$m" '{n=$1; sub(/.*\//,"",n); sub(/\.ko.*/,"",n); gsub(/-/,"_",n)} n==m {print $1; exit}' "$MD/modules.dep")
  if [ -z "$rel" ]; then
    grep -q "/${m//_/[-_]}\.ko" "$MD/modules.builtin" && return 0
    echo "arm64-image: module $m not found (optional modules are skipped)" >&2; return 0
  fi
  grep -qx "$m" "$I/mods/order" && return 0
  for dep in $(awk -F: -v r="$rel" '$1==r {print $2; exit}' "$MD/modules.dep"); do
    dep=${dep##*/}; dep=${dep%%.ko*}; addmod "${dep//-/_}"
  done
  case $rel in *.xz) xz -dc "$MD/$rel" ;; *.zst) zstd -dcq "$MD/$rel" ;; *.gz) gzip -dc "$MD/$rel" ;; *) cat "$MD/$rel" ;; esac > "$I/mods/$m.ko"
  echo "$m" >> "$I/mods/order"
}
for m in virtio_pci virtio_blk virtio_console crc32c_generic ext4 9pnet_virtio 9p; do addmod "$m"; done

# ---- 4. the root filesystem image ------------------------------------------------------------------
echo "arm64-image: mkfs.ext4 -d ($VM_IMG_SIZE)" >&2
truncate -s "$VM_IMG_SIZE" "$W/root.img"
mkfs.ext4 -q -L pyrt-arm64-root -E root_owner=0:0 -d "$R" "$W/root.img"
rm -rf "$VM_DIR/initrd-src"
mv "$W/vmlinuz" "$W/root.img" "$W/initrd-src" "$VM_DIR/"
echo "$KVER" > "$VM_DIR/kernel-version"
touch "$VM_DIR/image.ok.$SUM"
echo "arm64-image: built $VM_DIR (kernel $KVER)" >&2
}

# ---- 5. the initramfs (rebuilt alone when arm64-init.sh changes) -----------------------------------
build_initrd() {
  rm -f "$VM_DIR"/initrd.ok.*
  rm -rf "$W"; mkdir -p "$W"
  cp -a "$VM_DIR/initrd-src" "$W/initrd"
  cp "$HERE/arm64-init.sh" "$W/initrd/init"; chmod +x "$W/initrd/init"
  (cd "$W/initrd" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$VM_DIR/initrd.cpio.gz"
  touch "$VM_DIR/initrd.ok.$ISUM"
}

[ -e "$VM_DIR/image.ok.$SUM" ] || build_image
[ -e "$VM_DIR/initrd.ok.$ISUM" ] || build_initrd

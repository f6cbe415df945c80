#!/bin/sh
# Undo tests/podman/setup.sh DIR: remove every container, image and network of the private
# environment, the bridge it created, and DIR itself.
set -u
dir=${1:?usage: teardown.sh DIR}
[ -f "$dir/env" ] || exit 0
. "$dir/env"
podman rm -a -f -t 0 >/dev/null 2>&1
podman system reset -f >/dev/null 2>&1
[ -f "$dir/bridge" ] && ip link del "$(cat "$dir/bridge")" 2>/dev/null
# overlay mounts of a storage that podman could not reset are unmounted before removal
grep -o " $dir/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
# host directories podman/CNI created for caches during our use (only if they did not exist before)
if [ -f "$dir/host-dirs" ]; then
  while read -r d; do
    case $d in
      /var/lib/containers) rm -f "$d/cache/blob-info-cache-v1.boltdb"; rmdir "$d/cache" "$d" 2>/dev/null ;;
      /var/lib/cni) rmdir "$d/results" "$d" 2>/dev/null ;;
    esac
  done < "$dir/host-dirs"
fi
rm -rf "$dir"

#!/bin/sh
# Build a minimal rootfs from the host's busybox-static: bundles/<name>/rootfs.
set -eu
dest=$1
busybox=$(command -v busybox || echo /bin/busybox)
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp/bin" "$dest.tmp/sbin" "$dest.tmp/usr/bin" "$dest.tmp/usr/sbin" "$dest.tmp/etc" \
         "$dest.tmp/proc" "$dest.tmp/sys" "$dest.tmp/dev" "$dest.tmp/tmp" "$dest.tmp/root" "$dest.tmp/home"
cp "$busybox" "$dest.tmp/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dest.tmp/bin/$applet"
done
chmod 1777 "$dest.tmp/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nuser:x:1000:1000:user:/home:/bin/sh\n' > "$dest.tmp/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\nuser:x:1000:\n' > "$dest.tmp/etc/group"
rm -rf "$dest"
mv "$dest.tmp" "$dest"

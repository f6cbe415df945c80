#!/bin/busybox sh
# /init of the arm64 guest's initramfs (arm64-image.sh packs it with arm64 busybox-static):
# load virtio/ext4/9p, mount the root disk (/dev/vda, ext4; /tmp stays on it, a disk filesystem as on
# most hosts: 6.1 cannot make idmapped mounts of tmpfs), tmpfs for /run and /var/tmp, a real
# cgroup2 at /sys/fs/cgroup, the control share (9p "ctl") at /run/vmctl and the host directory
# (9p "hostrw", named by vmrw= on the kernel command line) at the same path; then switch_root to
# stage 2, which runs /run/vmctl/cmd and writes its exit code to /run/vmctl/rc.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
die() { echo "VMINIT: $*" > /dev/ttyAMA0; echo "VMINIT: $*" > /dev/hvc0 2>/dev/null; poweroff -f; }
for m in $(cat /mods/order); do insmod /mods/$m.ko || die "insmod $m"; done
n=0; while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
R=/newroot
mount -t ext4 /dev/vda $R || die "mount /dev/vda"
for d in proc sys dev; do mount --move /$d $R/$d; done
mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || die "cgroup2"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
chmod 1777 $R/tmp
for d in run var/tmp; do mount -t tmpfs -o mode=1777 tmpfs $R/$d; done
mkdir -p $R/run/vmctl
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 ctl $R/run/vmctl || die "mount ctl"
rw=$(sed -n 's/.*vmrw=\([^ ]*\).*/\1/p' $R/proc/cmdline)
if [ -n "$rw" ] && [ "$rw" != / ]; then
  mkdir -p $R$rw
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 hostrw $R$rw || die "mount rw $rw"
fi
ln -sf /proc/self/fd $R/dev/fd
cat > $R/run/vmctl-stage2 <<'S2'
#!/bin/sh
# stage 2 (the arm64 userland, pid 1): run the command, report its exit code, power off
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
out=/run/vmctl/out
[ -c /dev/hvc0 ] && { stty -F /dev/hvc0 raw -echo 2>/dev/null; out=/dev/hvc0; }
hostname vm 2>/dev/null
ip link set lo up 2>/dev/null
[ -f /run/vmctl/env ] && . /run/vmctl/env
# pipe through cat so the command sees a pipe, not a tty (no colours, like CI)
{ /bin/bash /run/vmctl/cmd; echo $? > /run/vmctl/rc; } </dev/null 2>&1 | cat > $out
sync
busybox poweroff -f 2>/dev/null; echo o > /proc/sysrq-trigger; sleep 30
S2
chmod +x $R/run/vmctl-stage2
exec switch_root $R /run/vmctl-stage2

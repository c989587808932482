#!/bin/bash
# Build from scratch a Debian bookworm guest for cgroup-v2 testing:
#   rootfs/ (debootstrap) -> rootfs.img (raw ext4, 4 GiB sparse) + vmlinuz + initrd.img
# Usage: build.sh   (as root; about 2 minutes; CG2_DIR=dir for the output, default /var/tmp/cgroup2-guest)
set -euo pipefail
D=${CG2_DIR:-/var/tmp/cgroup2-guest}; mkdir -p "$D"; cd "$D"
# the Debian mirror this machine already uses (the first URIs: line of its apt sources)
MIRROR=${MIRROR:-$(grep -hm1 "^URIs:" /etc/apt/sources.list.d/*.sources 2>/dev/null | awk "{print \$2}")}
[ -n "$MIRROR" ] || MIRROR=$(awk "/^deb / {print \$2; exit}" /etc/apt/sources.list)
command -v qemu-system-x86_64 >/dev/null && command -v debootstrap >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 debootstrap e2fsprogs
rm -rf rootfs rootfs.img vmlinuz initrd.img
PKGS=linux-image-amd64,iproute2,iptables,busybox-static,ca-certificates,procps,util-linux,kmod,containernetworking-plugins,curl
debootstrap --variant=minbase --include=$PKGS bookworm rootfs "$MIRROR"
# PID 1 of the guest: mounts, cgroup2 only, share at /host, runs /host/.cmd, powers off.
cat > rootfs/sbin/cg2init <<'INIT'
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
m() { mountpoint -q "$3" || { mkdir -p "$3"; mount -t "$1" "$2" "$3" "${@:4}"; }; }
m proc proc /proc; m sysfs sysfs /sys; m devtmpfs dev /dev; m devpts devpts /dev/pts
m tmpfs shm /dev/shm; m tmpfs run /run; m tmpfs tmp /tmp
m cgroup2 cgroup2 /sys/fs/cgroup          # the only hierarchy (cgroup_no_v1=all)
mount -o remount,rw /
hostname cg2vm; ip link set lo up
modprobe -a 9p 9pnet_virtio overlay veth bridge br_netfilter nf_conntrack 2>/dev/null
m 9p host /host -o trans=virtio,version=9p2000.L,msize=262144
echo "cg2init: up $(cut -d' ' -f1 /proc/uptime)s"
cd /root; bash /host/.cmd > /host/.out 2>&1 < /dev/null; echo $? > /host/.rc
sync; mount -o remount,ro / 2>/dev/null; busybox poweroff -f
INIT
chmod 755 rootfs/sbin/cg2init
echo cg2vm > rootfs/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 cg2vm\n' > rootfs/etc/hosts
: > rootfs/etc/resolv.conf
rm -rf rootfs/var/cache/apt/archives/*.deb rootfs/var/lib/apt/lists/*
# Small initrd with just what mounts /dev/vda (the default 35 MB one takes ~2 s more to unpack under TCG).
echo MODULES=list > rootfs/etc/initramfs-tools/conf.d/cg2vm
printf '%s\n' virtio_pci virtio_blk ext4 > rootfs/etc/initramfs-tools/modules
chroot rootfs update-initramfs -u -k all
# Kernel + initrd come from the rootfs' own linux-image package.
cp -L rootfs/vmlinuz vmlinuz; cp -L rootfs/initrd.img initrd.img
truncate -s 4G rootfs.img && mkfs.ext4 -q -L root -d rootfs rootfs.img
mkdir -p share
ls -lh --block-size=M vmlinuz initrd.img rootfs.img; du -sh --apparent-size rootfs

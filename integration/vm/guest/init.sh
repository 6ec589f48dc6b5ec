#!/bin/bash
# PID 1 of a test VM after guest-init mounted the payload on /payload: bring up just enough of a
# system for dockerd (cgroups, udev, dm and loop modules), run /payload/run with its output on
# the results port (ttyS1), report its exit code there, and power off.
#
# The last line on ttyS1 is always "DMSIZE-EXIT <rc>"; the host runner treats its absence as a
# VM that never reported back.
export PATH=/payload/guest:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8

mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# The first memory cgroup switches on kernel-memory accounting, a static key: the kernel patches
# its call sites (one is in __alloc_pages) through int3 while the other vCPU runs them. Under
# multi-threaded TCG that livelocked both vCPUs at the first `docker plugin enable` (runc's
# cgroup_mkdir; docs/research/tcg-plugin-enable-hang.md). Flip those keys now, while the guest
# is idle, and keep the cgroup so that they never flip back.
if controllers=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null); then
	for c in $controllers; do echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true; done
	mkdir -p /sys/fs/cgroup/dmsize-warmup
fi
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
hostname dmsize-vm
ip link set lo up

# Modules the engines need; some are built in on newer kernels, so a miss is not fatal here.
for m in dm_mod dm_thin_pool loop xfs ext4 overlay br_netfilter; do
	modprobe "$m" 2>/dev/null || echo "init: modprobe $m failed" >&2
done

# dockerd's devicemapper driver refuses to start without udev sync.
/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add
udevadm settle --timeout=30

# One descriptor for the results port, raw, so the host gets the bytes as written.
exec 3>/dev/ttyS1
stty raw -echo <&3 2>/dev/null || stty -F /dev/ttyS1 raw -echo

# The guest's clock starts at the host's time, which is all the tests need.
echo "init: up in $(cut -d' ' -f1 /proc/uptime)s, kernel $(uname -r), $(nproc) cpus" >&3

rc=1
if [ -x /payload/run ]; then
	# fd 3 closed for the payload: LVM tools complain about leaked descriptors.
	(cd /payload && ./run) >&3 2>&1 3>&-
	rc=$?
else
	echo "init: /payload/run missing" >&3
fi
sync
echo "DMSIZE-EXIT $rc" >&3
sync
umount /payload 2>/dev/null || mount -o remount,ro /payload
poweroff -f

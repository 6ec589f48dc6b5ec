#!/bin/bash
# Assembles the managed plugin's directory without Docker: DIR/config.json and DIR/rootfs with
# the static plugin binary, mkfs for the volume driver, and the few empty directories the
# runtime mounts over.
#
#   rootfs/assemble.sh DIR CONFIG_JSON BINARY
set -euo pipefail
dir=${1:?usage: assemble.sh DIR CONFIG_JSON BINARY} config=${2:?} bin=${3:?}
if file "$bin" 2>/dev/null | grep -q 'dynamically linked'; then
	echo "assemble: $bin is dynamically linked; the plugin rootfs has no libc" >&2
	exit 1
fi
rm -rf "$dir"
mkdir -p "$dir/rootfs"/{dev,proc,sys,tmp,etc,run/docker/plugins,mnt/volumes}
chmod 1777 "$dir/rootfs/tmp"
install -m 0755 "$bin" "$dir/rootfs/dmsize-plugin"
# The volume driver makes filesystems: the build host's mke2fs and mkfs.xfs, with the shared
# libraries they link, at the same paths (Debian: e2fsprogs, xfsprogs).
for tool in mke2fs mkfs.xfs; do
	path=$(command -v "$tool" || true)
	if [ -z "$path" ]; then
		echo "assemble: $tool not found; install e2fsprogs and xfsprogs" >&2
		exit 1
	fi
	install -D -m 0755 "$path" "$dir/rootfs/usr/sbin/$tool"
	for lib in $(ldd "$path" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
		[ -e "$dir/rootfs$lib" ] || install -D -m 0755 "$lib" "$dir/rootfs$lib"
	done
done
# runc wants these to exist to bind the host's versions over them.
: > "$dir/rootfs/etc/hosts"
: > "$dir/rootfs/etc/resolv.conf"
: > "$dir/rootfs/etc/hostname"
# mke2fs looks for mounts of its device here.
ln -s /proc/self/mounts "$dir/rootfs/etc/mtab"
install -m 0644 "$config" "$dir/config.json"
echo "assemble: $dir ($(du -sh "$dir/rootfs" | cut -f1) rootfs)" >&2

#!/bin/bash
# Assembles the managed plugin's directory without Docker: DIR/config.json and DIR/rootfs with
# the static plugin binary and the few empty directories the runtime mounts over.
#
#   rootfs/assemble.sh DIR CONFIG_JSON BINARY
set -euo pipefail
dir=${1:?usage: assemble.sh DIR CONFIG_JSON BINARY} config=${2:?} bin=${3:?}
if file "$bin" 2>/dev/null | grep -q 'dynamically linked'; then
	echo "assemble: $bin is dynamically linked; the plugin rootfs has no libc" >&2
	exit 1
fi
rm -rf "$dir"
mkdir -p "$dir/rootfs"/{dev,proc,sys,tmp,etc,run/docker/plugins}
chmod 1777 "$dir/rootfs/tmp"
install -m 0755 "$bin" "$dir/rootfs/dmsize-plugin"
# runc wants these to exist to bind the host's versions over them.
: > "$dir/rootfs/etc/hosts"
: > "$dir/rootfs/etc/resolv.conf"
: > "$dir/rootfs/etc/hostname"
install -m 0644 "$config" "$dir/config.json"
echo "assemble: $dir ($(du -sh "$dir/rootfs" | cut -f1) rootfs)" >&2

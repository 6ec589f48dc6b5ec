#!/bin/bash
# Assembles a small initramfs: static busybox, an /init script, and the modules (with their
# dependencies, in load order) needed to mount an ext4 root on virtio-blk.
#
#   build-initramfs.sh TREE KVER INIT OUT
set -euo pipefail
tree=$1 kver=$2 init=$3 out=$4
moddir="$tree/lib/modules/$kver"
# crc32c_generic: ext4 asks the crypto API for crc32c, which modules.dep does not record.
wanted="virtio_pci virtio_blk crc32c_generic ext4"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$tree/bin/busybox" "$work/bin/busybox"
cp "$init" "$work/init"
chmod 755 "$work/init" "$work/bin/busybox"

# modules.dep: "kernel/x/a.ko: kernel/y/b.ko kernel/z/c.ko" (dependencies of a, deepest last).
declare -A seen=()
order=()
add() {
	local name=$1 line path deps d
	line=$(grep -E "/${name//_/[_-]}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" || true)
	if [ -z "$line" ]; then
		# Built into this kernel: nothing to load.
		grep -qE "/${name//_/[_-]}\.ko$" "$moddir/modules.builtin" && return 0
		echo "build-initramfs: module $name not found for $kver" >&2
		exit 1
	fi
	path=${line%%:*}
	[ -n "${seen[$path]:-}" ] && return 0
	seen[$path]=1
	deps=${line#*:}
	for d in $deps; do
		d=$(basename "$d")
		add "${d%%.ko*}"
	done
	order+=("$path")
}
for m in $wanted; do add "$m"; done

: > "$work/modules"
for path in "${order[@]}"; do
	base=$(basename "$path")
	case "$base" in
	*.ko) cp "$moddir/$path" "$work/lib/modules/$base" ;;
	*.ko.xz) xz -dc "$moddir/$path" > "$work/lib/modules/${base%.xz}" ;;
	*.ko.zst) zstd -qdc "$moddir/$path" > "$work/lib/modules/${base%.zst}" ;;
	*.ko.gz) gzip -dc "$moddir/$path" > "$work/lib/modules/${base%.gz}" ;;
	*) echo "build-initramfs: unknown module format $base" >&2; exit 1 ;;
	esac
	echo "${base%%.ko*}.ko" >> "$work/modules"
done
(cd "$work" && find . -print0 | cpio --quiet -0 -o -H newc) | gzip -1 > "$out"
echo "initramfs: $(wc -l < "$work/modules") modules, $(du -k "$out" | cut -f1) KiB" >&2

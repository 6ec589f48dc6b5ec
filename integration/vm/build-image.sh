#!/bin/bash
# Builds (or reuses) the test VM image of one profile and prints its directory.
#
#   build-image.sh PROFILE            -> prints CACHE/vm/PROFILE-HASH
#
# CACHE is DMSIZE_CACHE, by default /var/cache/dmsize as root and .cache in the checkout otherwise.
#
# The directory holds vmlinuz, initrd.img (busybox + the few modules needed to mount a virtio
# root) and root.img (an ext4 image of an mmdebstrap tree). HASH covers every file of the
# recipe, so an edited recipe gives a new image and an unchanged one is reused. The image is
# never written to: the runner boots it with snapshot=on.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
profile=${1:?usage: build-image.sh PROFILE}
penv="$here/profiles/$profile.env"
[ -f "$penv" ] || { echo "build-image: no profile '$profile' (have: $(ls "$here/profiles" | sed 's/\.env$//' | tr '\n' ' '))" >&2; exit 2; }
# shellcheck source=/dev/null
. "$penv"
MIRROR=${DMSIZE_MIRROR:-http://deb.debian.org/debian}
# One cache per machine (root) so that every clone, CI's fresh one too, reuses an image whose
# recipe has not changed; per checkout otherwise.
if [ -z "${DMSIZE_CACHE:-}" ]; then
	if [ "$(id -u)" = 0 ]; then DMSIZE_CACHE=/var/cache/dmsize; else DMSIZE_CACHE=$here/../../.cache; fi
fi
cache=$DMSIZE_CACHE
mkdir -p "$cache/vm"
cache=$(cd "$cache" && pwd)

recipe=("$0" "$penv" "$here/build-initramfs.sh" "$here/customize.sh" "$here/initramfs-init" "$here/guest-init")
hash=$( (cat "${recipe[@]}"; echo "$MIRROR") | sha256sum | cut -c1-12)
out="$cache/vm/$profile-$hash"
[ -f "$out/.complete" ] && { echo "$out"; exit 0; }
# One build of a profile at a time: runs started side by side wait for the first one's image.
exec 9>"$cache/vm/$profile.lock"
flock 9
if [ -f "$out/.complete" ]; then
	echo "$out"
	exit 0
fi

log() { echo "build-image[$profile]: $*" >&2; }
start=$(date +%s)
rm -rf "$out" "$cache/vm/$profile-"*.tmp
work="$out.tmp"
tree="$work/tree"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

log "mmdebstrap $SUITE ($MIRROR) -> $tree"
mmdebstrap --mode=root --variant=minbase --quiet \
	--include="$(echo "$PACKAGES" | tr ' ' ',')" \
	--customize-hook="'$here/customize.sh' \"\$1\"" \
	"$SUITE" "$tree" "$MIRROR" >&2

kver=$(ls "$tree/lib/modules" | head -n1)
[ -n "$kver" ] && [ -f "$tree/boot/vmlinuz-$kver" ] || { log "no kernel in the tree"; exit 1; }
cp "$tree/boot/vmlinuz-$kver" "$work/vmlinuz"
echo "$kver" > "$work/kernel-version"

log "initramfs for $kver"
"$here/build-initramfs.sh" "$tree" "$kver" "$here/initramfs-init" "$work/initrd.img" >&2

log "root.img from the tree"
# Sparse: 32G of address space, about 1G used. -d needs no mount, so this works in containers.
mke2fs -q -F -t ext4 -L dmsize-root -E root_owner=0:0 -d "$tree" "$work/root.img" 32G >/dev/null
rm -rf "$tree"

echo "$SUITE $kver $(date -u +%FT%TZ) $(( $(date +%s) - start ))s" > "$work/.complete"
mv "$work" "$out"
trap - EXIT
# Images of older recipes of this profile go after a day (about 1 GiB each).
find "$cache/vm" -maxdepth 1 -name "$profile-*" ! -name "$profile-$hash" -mtime +0 -exec rm -rf {} + 2>/dev/null || true
log "built in $(( $(date +%s) - start ))s: $out"
echo "$out"

#!/bin/bash
# Makes sure the host has what building the plugin and building and booting the test VM need,
# installing what is missing with apt when run as root. Says what is missing, and how to get
# it, otherwise.
#
#   host-deps.sh          what `make test` and `make demo` need (QEMU, mmdebstrap, ...)
#   host-deps.sh plugin   what `make plugin` needs: the mkfs tools it copies into the rootfs
#
set -euo pipefail
# command:package
need=(mke2fs:e2fsprogs mkfs.xfs:xfsprogs file:file)
[ "${1:-}" = plugin ] || need+=(
	qemu-system-x86_64:qemu-system-x86 mmdebstrap:mmdebstrap cpio:cpio debugfs:e2fsprogs
	xz:xz-utils zstd:zstd gzip:gzip timeout:coreutils sha256sum:coreutils flock:util-linux
)
missing=()
for pair in "${need[@]}"; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[ "${1:-}" = plugin ] || [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
if ! command -v go >/dev/null 2>&1; then
	echo "host-deps: Go is not on PATH; install Go $(sed -n 's/^go //p' "$(dirname "$0")/../../go.mod") or newer" >&2
	exit 1
fi
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "host-deps: missing ${missing[*]}; install them (Debian: sudo apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "host-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -q >/tmp/dmsize-apt.log 2>&1 &&
	apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/dmsize-apt.log 2>&1; }; then
	echo "host-deps: apt-get could not install ${missing[*]}:" >&2
	tail -n 5 /tmp/dmsize-apt.log | sed 's/^/    /' >&2
	exit 1
fi

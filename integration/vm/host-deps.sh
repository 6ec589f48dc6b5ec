#!/bin/bash
# Makes sure the host has what building and booting the test VM needs, installing what is
# missing with apt when run as root. Says what is missing, and how to get it, otherwise.
set -euo pipefail
# command:package
need=(
	qemu-system-x86_64:qemu-system-x86 mmdebstrap:mmdebstrap cpio:cpio mke2fs:e2fsprogs
	debugfs:e2fsprogs mkfs.xfs:xfsprogs xz:xz-utils zstd:zstd gzip:gzip timeout:coreutils sha256sum:coreutils
)
missing=()
for pair in "${need[@]}"; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
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

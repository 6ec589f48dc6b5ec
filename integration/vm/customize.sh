#!/bin/bash
# mmdebstrap customize hook: runs on the host with the new root tree as $1.
set -euo pipefail
tree=$1
here=$(cd "$(dirname "$0")" && pwd)

# Kernel: unpack the package linux-image-amd64 points at, without running its postinst (which
# would build an initramfs we do not use). Unpacked aside and copied, because the package's
# ./lib would replace the merged-/usr symlink.
chroot "$tree" sh -ec '
	cd /tmp
	kpkg=$(apt-cache depends linux-image-amd64 | sed -n "s/.*Depends: \(linux-image-[0-9][^ ]*\).*/\1/p" | head -n1)
	apt-get download -q "$kpkg" >/dev/null
	mkdir k
	dpkg-deb -x ./"$kpkg"_*.deb k
	cp -a k/boot/. /boot/
	for d in lib usr/lib; do [ -d k/$d/modules ] && cp -a k/$d/modules /usr/lib/; done
	rm -rf k ./*.deb
	depmod "$(ls /usr/lib/modules | head -n1)"'

echo dmsize-vm > "$tree/etc/hostname"
printf '127.0.0.1 localhost dmsize-vm\n' > "$tree/etc/hosts"
: > "$tree/etc/fstab"
chroot "$tree" passwd -d root >/dev/null
install -m 755 "$here/guest-init" "$tree/usr/local/sbin/guest-init"
rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/*.bin

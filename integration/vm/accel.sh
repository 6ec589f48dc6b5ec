#!/bin/bash
# Prints the QEMU accelerator to use: "kvm" when a short boot of the image's kernel with KVM
# reaches its initramfs, "tcg" otherwise. /dev/kvm existing proves nothing: on some machines it
# is a paravirtual KVM on which a stock kernel hangs right after the BIOS.
#
#   accel.sh IMAGE_DIR
#
# DMSIZE_ACCEL=kvm|tcg skips the probe. The result is cached per host boot and kernel.
set -euo pipefail
image=${1:?usage: accel.sh IMAGE_DIR}
case "${DMSIZE_ACCEL:-}" in kvm | tcg) echo "$DMSIZE_ACCEL"; exit 0 ;; "") ;; *) echo "accel.sh: DMSIZE_ACCEL must be kvm or tcg" >&2; exit 2 ;; esac

boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
cache="$image/accel-$boot"
if [ -f "$cache" ]; then cat "$cache"; exit 0; fi

result=tcg
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	log=$(mktemp)
	start=$(date +%s.%N)
	# In a subshell that outlives timeout (the "|| true"), so that the shell's report of a QEMU
	# that aborts, as it does on some of these hosts, goes to /dev/null with the rest.
	( timeout -k 2 "${DMSIZE_KVM_PROBE_SECONDS:-20}" qemu-system-x86_64 \
		-nodefaults -no-user-config -no-reboot -display none -monitor none \
		-accel kvm -cpu host -m 512 \
		-kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
		-append "console=ttyS0 panic=-1 dmsize.probe" \
		-serial "file:$log" >/dev/null 2>&1 || true ) 2>/dev/null
	if grep -q DMSIZE-PROBE-OK "$log"; then
		result=kvm
	fi
	echo "accel: KVM probe $( [ $result = kvm ] && echo booted || echo 'did not boot' ) in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $start}")s; using $result" >&2
	rm -f "$log"
else
	echo "accel: no usable /dev/kvm; using tcg" >&2
fi
echo "$result" > "$cache"
echo "$result"

#!/bin/bash
# Boots one throwaway test VM and runs a payload in it.
#
#   run.sh --profile P --payload DIR [--timeout SECONDS] [--mem MiB] [--cpus N] [--out RUNDIR]
#
# DIR must hold an executable ./run and the guest scripts in ./guest (see guest/init.sh). It is
# copied into an ext4 image that the guest mounts on /payload; whatever the guest leaves in
# /payload/out comes back to RUNDIR/out. The guest's results port (ttyS1) is streamed to stdout
# as it is written; its kernel console goes to RUNDIR/console.log.
#
# The root disk is the cached image of the profile, opened with snapshot=on: every run starts
# from the pristine image. A third disk, /dev/vdc (sparse, 64G), is the spare disk for
# direct-lvm set-ups.
#
# Exit status: the payload's own, or 1 with the console's tail when the VM hung (timeout) or
# stopped without reporting back.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
profile=bookworm payload= timeout=1800 mem=${DMSIZE_VM_MEM:-4096} cpus=${DMSIZE_VM_CPUS:-2} out=
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }
	case "$1" in
	--profile) profile=$2 ;;
	--payload) payload=$2 ;;
	--timeout) timeout=$2 ;;
	--mem) mem=$2 ;;
	--cpus) cpus=$2 ;;
	--out) out=$2 ;;
	*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift 2
done
[ -x "$payload/run" ] || { echo "run.sh: --payload DIR must contain an executable ./run" >&2; exit 2; }
out=${out:-$here/../../build/vm-run/$profile}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)

image=$("$here/build-image.sh" "$profile")
accel=$("$here/accel.sh" "$image")

log() { echo "vm[$profile]: $*" >&2; }

# Payload disk: the tree plus room for what the guest writes back.
size_mb=$(( $(du -sm "$payload" | cut -f1) * 2 + 512 ))
mke2fs -q -F -t ext4 -L dmsize-payload -E root_owner=0:0 -d "$payload" "$out/payload.img" "${size_mb}M" >/dev/null
truncate -s 64G "$out/spare.img"

case "$accel" in
kvm) accel_args=(-accel kvm -cpu host) ;;
*) accel_args=(-accel tcg,thread=multi -cpu max) ;;
esac

log "booting $(basename "$image") with $accel, ${mem}M, $cpus cpus, timeout ${timeout}s"
start=$(date +%s.%N)
# boot_qemu starts the VM in the background (pid in $qemu). snapshot=on keeps its overlay in
# TMPDIR: in the run directory.
boot_qemu() {
	: > "$out/results.log"
	: > "$out/console.log"
	TMPDIR=$out timeout -k 10 "$timeout" qemu-system-x86_64 \
		-nodefaults -no-user-config -no-reboot -display none -monitor none \
		"${accel_args[@]}" -smp "$cpus" -m "$mem" \
		-kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
		-append "console=ttyS0 panic=-1 quiet loglevel=${DMSIZE_VM_LOGLEVEL:-4} systemd.unified_cgroup_hierarchy=1" \
		-drive "file=$image/root.img,format=raw,if=virtio,snapshot=on,cache=unsafe" \
		-drive "file=$out/payload.img,format=raw,if=virtio,cache=unsafe" \
		-drive "file=$out/spare.img,format=raw,if=virtio,cache=unsafe" \
		-device virtio-rng-pci \
		-serial "file:$out/console.log" -serial "file:$out/results.log" &
	qemu=$!
}
# The guest's init says "init: up" on the results port about 10 s after the kernel starts. A
# kernel that hangs before that (seen once in 50 boots under TCG, at 1.25 s, before any of the
# project's code or Docker ran) is killed after BOOT_TIMEOUT and booted once more, loudly: the
# payload disk is untouched until init runs.
boot_timeout=${DMSIZE_BOOT_TIMEOUT:-120}
trap 'kill $qemu 2>/dev/null || true' INT TERM
for attempt in 1 2; do
	boot_qemu
	waited=0
	while kill -0 "$qemu" 2>/dev/null && ! grep -aq '^init: up' "$out/results.log" && [ "$waited" -lt "$boot_timeout" ]; do
		sleep 1
		waited=$((waited + 1))
	done
	if grep -aq '^init: up' "$out/results.log" || ! kill -0 "$qemu" 2>/dev/null; then
		break
	fi
	log "the guest kernel did not reach init within ${boot_timeout}s (boot $attempt of 2); console tail:"
	tail -n 5 "$out/console.log" | sed 's/^/    /' >&2
	kill "$qemu" 2>/dev/null || true
	wait "$qemu" 2>/dev/null || true
	mv "$out/console.log" "$out/console-boot$attempt.log"
	if [ "$attempt" = 2 ]; then
		rm -f "$out/payload.img" "$out/spare.img"
		log "FAIL: the guest kernel hung twice before init"
		exit 1
	fi
done
tail -n +1 -F --pid=$qemu "$out/results.log" 2>/dev/null &
tailer=$!
set +e
wait $qemu
qrc=$?
set -e
wait $tailer 2>/dev/null || true
elapsed=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $start}")

# Bring back what the guest left in /payload/out.
if debugfs -R "stat /out" "$out/payload.img" >/dev/null 2>&1; then
	debugfs -R "rdump /out $out" "$out/payload.img" >/dev/null 2>&1 || log "could not copy /payload/out back"
fi
rm -f "$out/payload.img" "$out/spare.img"

verdict=$(tr -d '\r' < "$out/results.log" | grep -a '^DMSIZE-EXIT ' | tail -n1 || true)
if [ -z "$verdict" ]; then
	if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
		log "FAIL: VM hung: killed after ${timeout}s"
	else
		log "FAIL: VM stopped (qemu exit $qrc) after ${elapsed}s without reporting back"
	fi
	log "console tail ($out/console.log):"
	tail -n 40 "$out/console.log" | sed 's/^/    /' >&2
	exit 1
fi
rc=${verdict#DMSIZE-EXIT }
log "payload exited $rc; VM wall time ${elapsed}s ($accel)"
echo "$profile $accel $elapsed" > "$out/walltime"
exit "$rc"

#!/bin/bash
# Publishes the managed plugin to a registry: REGISTRY/dmsize:VERSION and REGISTRY/dmsize:latest
# from DIR, the lvm flavor as REGISTRY/dmsize-lvm:VERSION and :latest from LVM_DIR, and the
# containerd flavor as REGISTRY/dmsize-containerd:… from CONTAINERD_DIR. Needs a Docker engine
# (any storage driver) that may push to REGISTRY (`docker login` first if it asks).
#
#   rootfs/push.sh [--no-latest] REGISTRY VERSION DIR [LVM_DIR [CONTAINERD_DIR]]
#                                       (make push REGISTRY=… VERSION=…)
#
# --no-latest pushes VERSION only and leaves :latest where it is (a release candidate).
set -euo pipefail
tags=latest
if [ "${1:-}" = --no-latest ]; then
	tags= && shift
fi
reg=${1:?usage: push.sh REGISTRY VERSION DIR [LVM_DIR [CONTAINERD_DIR]]} ver=${2:?} dir=${3:?} lvm=${4:-} ctrd=${5:-}
[ -f "$dir/config.json" ] || { echo "push: $dir has no config.json (make plugin)" >&2; exit 2; }

push() { # push NAME DIR: create, push, and remove the local copy again
	if docker plugin inspect "$1" >/dev/null 2>&1; then
		echo "push: a plugin named $1 is installed here; remove it first (docker plugin rm $1)" >&2
		exit 1
	fi
	# One at a time: the engine refuses to create a plugin whose rootfs layer another local
	# plugin already has, and every name pushed here shares the one layer.
	docker plugin create "$1" "$2" >/dev/null
	if ! docker plugin push "$1"; then
		docker plugin rm "$1" >/dev/null || true
		echo "push: pushing $1 failed" >&2
		exit 1
	fi
	docker plugin rm "$1" >/dev/null
	echo "push: $1"
}

for tag in "$ver" $tags; do
	push "$reg/dmsize:$tag" "$dir"
	if [ -n "$lvm" ]; then
		push "$reg/dmsize-lvm:$tag" "$lvm"
	fi
	if [ -n "$ctrd" ]; then
		push "$reg/dmsize-containerd:$tag" "$ctrd"
	fi
done

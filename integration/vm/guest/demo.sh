#!/bin/bash
# make demo, inside the VM: a devicemapper engine on loop-lvm, the dmsize plugin installed with
# `docker plugin create`, and a container whose root filesystem is bigger than the base size.
set -euo pipefail
payload=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
export PATH="$payload/guest:$PATH"
show() { echo; echo "\$ $*"; "$@"; }

dmsize-engine reset
dmsize-engine start --setup loop-lvm --fs "${DMSIZE_DEMO_FS:-xfs}"
dmsize-engine busybox >/dev/null
show docker info --format 'Docker {{.ServerVersion}}, storage driver {{.Driver}}, pool {{range .DriverStatus}}{{if eq (index . 0) "Pool Name"}}{{index . 1}}{{end}}{{end}}'
show docker plugin create dmsize "$payload/plugin"
show docker plugin enable dmsize
show docker plugin ls
show docker run --rm --network none busybox df -h /
# Until dm.size lands, the engine's own path, which only works at docker run:
show docker run --rm --network none --storage-opt size=42G busybox df -h /
dmsize-engine reset

#!/bin/bash
# make boot-probe, inside the VM: the first `docker plugin enable` after a boot, timed. One boot
# is one sample of the hang issue 11 names (a soft lockup in runc at the first enable).
set -euo pipefail
payload=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
export PATH="$payload/guest:$PATH"
# shellcheck source=/dev/null
[ -f "$payload/env" ] && set -a && . "$payload/env" && set +a
flavor=${DMSIZE_PROBE_FLAVOR:-plugin}
dmsize-engine start --setup loop-lvm >/dev/null 2>&1
docker plugin create dmsize "$payload/$flavor" >/dev/null
start=$(date +%s.%N)
docker plugin enable dmsize >/dev/null
echo "probe: $flavor enabled in $(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $start}")s at uptime $(cut -d' ' -f1 /proc/uptime)s"

#!/bin/bash
# make demo, inside the VM: Docker 20.10 on devicemapper (loop-lvm), the dmsize plugin installed
# with `docker plugin create`, and containers whose root filesystem is what dm.size asks for.
set -euo pipefail
payload=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
export PATH="$payload/guest:$PATH"
show() { echo; echo "\$ $*"; "$@"; }

dmsize-engine reset
dmsize-engine start --setup loop-lvm --fs "${DMSIZE_DEMO_FS:-xfs}" >/dev/null 2>&1
dmsize-engine busybox >/dev/null
show docker info --format 'Docker {{.ServerVersion}}, storage driver {{.Driver}}, pool {{range .DriverStatus}}{{if eq (index . 0) "Pool Name"}}{{index . 1}}{{end}}{{end}}'
show docker plugin create dmsize "$payload/plugin"
show docker plugin enable dmsize
show docker run --rm --network none busybox df -h /

echo; echo "# events mode (the default): the plugin follows the engine's events"
show docker run --rm --network none --label dm.size=42G busybox df -h /
id=$(docker run -d --network none --label dm.size=60G busybox sleep 3600)
echo "\$ docker run -d --network none --label dm.size=60G busybox sleep 3600"
echo "$id"
sleep 1
show docker exec "$id" df -h /
show docker stop -t 1 "$id"
show docker start "$id"
show docker exec "$id" df -h /
docker rm -f "$id" >/dev/null
show docker run -d --name bad-label --network none --label dm.size=42X busybox sleep 3600
sleep 2
show docker exec bad-label df -h /
echo; echo "# the plugin's line about it, in dockerd's log:"
grep -a 'bad-label' /var/log/dmsize-engine/dockerd.log | grep -o 'msg="{.*}"' | sed 's/^msg="//; s/"$//; s/\\"/"/g' | head -n 1 || true
docker rm -f bad-label >/dev/null

echo; echo "# strict mode: dmsize is also the engine's authorization plugin"
docker plugin disable dmsize >/dev/null
show docker plugin set dmsize MODE=strict
docker plugin enable dmsize >/dev/null
dmsize-engine authz dmsize >/dev/null 2>&1
show docker run --rm --network none --label dm.size=42G busybox df -h /
show docker run --rm --network none --label dm.size=42X busybox df -h / || true
echo; echo "# the plugin's lines about the sizings, in dockerd's log:"
grep -a 'root filesystem' /var/log/dmsize-engine/dockerd.log | grep -o 'msg="{.*}"' | sed 's/^msg="//; s/"$//; s/\\"/"/g' | head -n 3 || true
dmsize-engine reset >/dev/null 2>&1

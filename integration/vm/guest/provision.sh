#!/bin/bash
# Vagrant provisioner: turns a stock Debian box into the same test machine the QEMU runner
# boots, with the packages of a profile, and no engine running (the suite starts its own).
#
#   provision.sh PROFILE SPARE_DISK
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
profile=${1:-bookworm} spare=${2:-/dev/vdb}
# shellcheck source=/dev/null
. "$here/../profiles/$profile.env"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $PACKAGES
# The suite starts and stops dockerd and containerd itself, with its own configurations.
systemctl disable --now docker.service docker.socket containerd.service 2>/dev/null || true
# Debian's docker-registry service requires htpasswd auth; the suite runs its own (dmsize-engine
# registry). Apart: a unit that does not exist (trixie) would fail the whole command.
systemctl disable --now docker-registry.service 2>/dev/null || true
printf '%s\n' dm_thin_pool loop xfs overlay > /etc/modules-load.d/dmsize.conf
modprobe -a dm_thin_pool loop xfs overlay
echo "$spare" > /etc/dmsize-spare-disk
echo "provisioned for profile $profile; spare disk $spare"

package fs

import (
	"strings"
	"testing"
)

func TestMountPointsOf(t *testing.T) {
	info := []byte(`59 51 254:0 /var/lib/docker/plugins/x/propagated-mount /mnt/volumes rw,relatime shared:1 - ext4 /dev/vda rw
80 59 253:2 / /mnt/volumes/keep rw,noatime shared:1 - ext4 /dev/mapper/dmsize-vol-1 rw
81 70 253:2 / /var/lib/docker/plugins/x/propagated-mount/keep rw,noatime - ext4 /dev/mapper/dmsize-vol-1 rw
82 70 253:2 / /a\040b rw,noatime master:3 - ext4 /dev/mapper/dmsize-vol-1 rw
83 70 253:3 / /other rw - ext4 /dev/mapper/dmsize-vol-2 rw
`)
	got := strings.Join(mountPointsOf(info, 253, 2, true), ",")
	if got != "/var/lib/docker/plugins/x/propagated-mount/keep,/a b" {
		t.Fatalf("%q", got)
	}
	if got := len(mountPointsOf(info, 253, 2, false)); got != 3 {
		t.Fatalf("%d mounts of 253:2", got)
	}
}

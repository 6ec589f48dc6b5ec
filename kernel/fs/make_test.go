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

func TestMountsAt(t *testing.T) {
	info := []byte(`59 51 254:0 /var/lib/docker/plugins/x/propagated-mount /mnt/volumes rw,relatime shared:1 - ext4 /dev/vda rw
73 70 254:0 /var/lib/docker/plugins/x/propagated-mount /var/lib/docker/plugins/x/propagated-mount rw master:1 - ext4 /dev/vda rw
74 73 254:0 /var/lib/docker/plugins/x/propagated-mount /var/lib/docker/plugins/x/propagated-mount rw master:1 - ext4 /dev/vda rw
77 73 253:2 / /var/lib/docker/plugins/x/propagated-mount/keep rw,noatime master:6 - ext4 /dev/mapper/dmsize-vol-1 rw
90 70 254:0 / /a\040b rw shared:9 - ext4 /dev/vda rw
`)
	for _, c := range []struct {
		dir    string
		n      int
		shared bool
	}{
		{"/var/lib/docker/plugins/x/propagated-mount", 2, false},
		{"/mnt/volumes", 1, true},
		{"/a b", 1, true},
		{"/var/lib/docker", 0, false},
	} {
		if n, shared := mountsAt(info, c.dir); n != c.n || shared != c.shared {
			t.Errorf("mountsAt(%s) = %d, %v; want %d, %v", c.dir, n, shared, c.n, c.shared)
		}
	}
}

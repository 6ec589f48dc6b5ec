package fs

import (
	"slices"
	"testing"
)

func TestMountPoints(t *testing.T) {
	info := []byte(`22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
36 22 7:0 / /mnt/a rw,noatime shared:20 - ext4 /dev/loop0 rw
37 22 7:10 / /mnt/b rw - xfs /dev/loop10 rw
38 22 7:0 /sub /var/lib/with\040space rw - ext4 /some/other/name rw
39 22 253:7 / /x\134y\011z rw - xfs /dev/mapper/docker-thin rw
`)
	for _, tc := range []struct {
		major, minor uint32
		want         []string
	}{
		{7, 0, []string{"/mnt/a", "/var/lib/with space"}},
		{7, 10, []string{"/mnt/b"}},
		{7, 1, nil},
		{253, 7, []string{"/x\\y\tz"}},
	} {
		if got := mountPoints(info, tc.major, tc.minor); !slices.Equal(got, tc.want) {
			t.Errorf("mountPoints(%d:%d) = %q, want %q", tc.major, tc.minor, got, tc.want)
		}
	}
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:      "/plain",
		`/a\040b`:     "/a b",
		`/trailing\0`: `/trailing\0`,
		`/not\999oct`: `/not\999oct`,
		`/end\012`:    "/end\n",
	} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

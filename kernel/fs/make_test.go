package fs

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/kernel/release"
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

// What Make writes, with the mkfs tools the plugin's rootfs carries (rootfs/assemble.sh copies
// this host's), mounts on every kernel from release.Floor up: a newer build host cannot bring in a
// feature silently. The tools come with `make deps-plugin`; without them this fails.
func TestMadeFilesystemsMountOnTheFloor(t *testing.T) {
	for _, typ := range []Type{Ext4, XFS} {
		if _, err := exec.LookPath(mkfs[typ][0]); err != nil {
			t.Fatalf("%s: %v (make deps-plugin installs e2fsprogs and xfsprogs)", typ, err)
		}
		img := filepath.Join(t.TempDir(), "img")
		if err := os.WriteFile(img, nil, 0o600); err != nil || os.Truncate(img, 512<<20) != nil {
			t.Fatal(err)
		}
		if err := Make(img, typ); err != nil {
			t.Fatal(err)
		}
		s, err := ReadSuper(img)
		if err != nil {
			t.Fatal(err)
		}
		beyond := s.Beyond(release.Floor)
		if beyond != nil {
			t.Errorf("%s made with %s has features that Linux %s lacks: %s", typ, mkfs[typ][0], release.Floor, strings.Join(beyond, ", "))
		}
		var names []string
		for _, f := range s.featureList() {
			names = append(names, f.name)
		}
		for _, want := range map[Type][]string{Ext4: {"extent", "has_journal", "metadata_csum"}, XFS: {"finobt", "ftype", "reflink"}}[typ] {
			if !slices.Contains(names, want) {
				t.Errorf("%s: features %q, want %s among them", typ, names, want)
			}
		}
		if beyond == nil {
			t.Logf("%s: %s, none beyond Linux %s", typ, strings.Join(names, " "), release.Floor)
		}
	}
}

// Beyond names what a kernel lacks, and any bit no table knows.
func TestBeyond(t *testing.T) {
	s := Super{Type: XFS, Features: Features{ROCompat: 0x1 | 0x8, Incompat: 0x8 | 0x1000}}
	got := strings.Join(s.Beyond(release.Mainline(5, 4)), ", ")
	if want := "bigtime (5.10), incompat 0x1000 (unknown), inobtcount (5.10)"; got != want {
		t.Fatalf("Beyond(5.4) = %q, want %q", got, want)
	}
	s.Features.Incompat = 0x8
	if got := s.Beyond(release.Mainline(5, 10)); got != nil {
		t.Fatalf("Beyond(5.10) = %q", got)
	}
	ext := Super{Type: Ext4, Features: Features{Compat: 0x1000, Incompat: 0x2000}}
	if got := strings.Join(ext.Beyond(release.Mainline(4, 3)), ", "); got != "metadata_csum_seed (4.4), orphan_file (5.15)" {
		t.Fatalf("ext4 Beyond(4.3) = %q", got)
	}
}

// An older mkfs.xfs refuses the options of features it does not know: xfsOptions leaves out
// what the version printed predates, and keeps everything else in place.
func TestXFSOptionsFollowTheVersion(t *testing.T) {
	full := strings.Join(mkfs[XFS], " ")
	for _, tc := range []struct{ version, want string }{
		{"mkfs.xfs version 6.1.0\n", full},
		{"mkfs.xfs version 5.19.0\n", full},
		{"mkfs.xfs version 5.10.0\n", strings.Replace(full, "sparse=1,nrext64=0", "sparse=1", 1)},
		{"mkfs.xfs version 4.20.0\n", strings.NewReplacer(",bigtime=0,inobtcount=0", "", "sparse=1,nrext64=0", "sparse=1").Replace(full)},
		{"something else", full},
	} {
		if got := strings.Join(xfsOptions(tc.version), " "); got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.version, got, tc.want)
		}
	}
	if strings.Join(mkfs[XFS], " ") != full {
		t.Fatal("xfsOptions changed the table")
	}
}

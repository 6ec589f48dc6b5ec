package harness

import (
	"fmt"
	"testing"
)

type fatalRecorder struct{ msg string }

func (*fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, a ...any) {
	f.msg = fmt.Sprintf(format, a...)
	panic(f)
}

func TestParseDfKiB(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      int64
		bad       bool
	}{
		{"busybox xfs", "Filesystem           1024-blocks    Used Available Capacity Mounted on\n/dev/mapper/docker-254:0-131101-0f7ec3b2 20961280 176240 20785040   1% /\n", 20961280 << 10, false},
		{"ext4", "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/mapper/x 20480000 100 20000000 1% /", 20480000 << 10, false},
		{"garbage", "df: /: No such file or directory", 0, true},
		{"empty", "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &fatalRecorder{}
			var got int64
			func() {
				defer func() {
					if r := recover(); r != nil && r != any(rec) {
						panic(r)
					}
				}()
				got = ParseDfKiB(rec, tc.out)
			}()
			if tc.bad != (rec.msg != "") {
				t.Fatalf("bad input %v, fatal %q", tc.bad, rec.msg)
			}
			if !tc.bad && got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSetupArgs(t *testing.T) {
	got := fmt.Sprint(Setup{Kind: "direct-lvm", FS: "ext4", VGSize: "4G"}.args())
	if want := "[--setup direct-lvm --fs ext4 --vg-size 4G]"; got != want {
		t.Fatalf("args %s, want %s", got, want)
	}
	if got := len(Setup{}.args()); got != 0 {
		t.Fatalf("empty set-up gives %d args", got)
	}
}

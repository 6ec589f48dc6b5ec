package volume

import (
	"strings"
	"testing"

	"github.com/dmsize/dmsize/internal/badinput"
	"github.com/dmsize/dmsize/size"
)

// TestBadInputVolumes: 3,000 volume creates with malformed names and options (`docker volume
// create -o`), then 1,500 grows with malformed sizes, on the fake kernel. A create that fails
// leaves no record and no thin device; one that succeeds leaves a whole volume of the size its
// option parses to; a grow changes a volume only to the size asked when that is larger, and
// nothing panics. The pool holds nothing the records do not say (check).
func TestBadInputVolumes(t *testing.T) {
	const creates, grows = 3000, 1500
	k := newKernel()
	v := open(t, t.TempDir(), k, nil)
	names := badinput.Strings([]string{"data", "my_vol-1.x", "../x", "", "a/b", ".", "v" + strings.Repeat("x", 200)}, 600)
	keys := badinput.Strings([]string{"size", "fs", "sise", "SIZE", ""}, 200)
	values := badinput.Strings([]string{"2G", "20G", "1.5T", "1M", "ext4", "xfs", "btrfs", "0", "-1G", "lots", ""}, 1000)
	made := 0
	for i := 0; i < creates; i++ {
		name := names[i%len(names)]
		opts := map[string]string{}
		for j := 0; j < i%3; j++ {
			opts[keys[(i+j*31)%len(keys)]] = values[(i*7+j)%len(values)]
		}
		_, existed := v.Get(name)
		thins := len(k.thins)
		err := v.Create(name, opts)
		r, ok := v.Get(name)
		switch {
		case err != nil && !existed && (ok || len(k.thins) != thins):
			t.Fatalf("create %q %v failed (%v) and left a record %v or a thin device (%d -> %d)", name, opts, err, ok, thins, len(k.thins))
		case err == nil && !ok:
			t.Fatalf("create %q %v succeeded with no record", name, opts)
		case err == nil && !existed:
			made++
			want := int64(10 * G)
			if s, has := opts["size"]; has {
				b, perr := size.Parse(s)
				if perr != nil {
					t.Fatalf("create %q with size=%q (%v) succeeded", name, s, perr)
				}
				want = b &^ 4095
			}
			if r.Size != want {
				t.Fatalf("create %q %v: %d bytes, want %d", name, opts, r.Size, want)
			}
		}
	}
	check(t, v, k)
	list := v.List()
	sizes := badinput.Strings([]string{"30G", "1T", "2T", "5G", "0", "-1", "12X", "999999999999999T", ""}, grows)
	changed := 0
	for i := 0; i < grows; i++ {
		r := list[i%len(list)]
		r, _ = v.Get(r.Name)
		asked, perr := size.Parse(sizes[i])
		_, err := v.Grow(r.Name, asked)
		after, _ := v.Get(r.Name)
		switch {
		case after.Size < r.Size:
			t.Fatalf("grow %s to %q: shrank %d -> %d", r.Name, sizes[i], r.Size, after.Size)
		case after.Size != r.Size && (perr != nil || err != nil || after.Size != asked&^4095):
			t.Fatalf("grow %s to %q (%v, %v): %d -> %d", r.Name, sizes[i], perr, err, r.Size, after.Size)
		case after.Size != r.Size:
			changed++
		}
	}
	check(t, v, k)
	t.Logf("%d creates (%d volumes made, %d names), %d grows (%d changed a volume)", creates, made, len(list), grows, changed)
}

package sizer

import (
	"errors"
	"os"
	"testing"

	"github.com/dmsize/dmsize/internal/badinput"
	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/size"
)

// TestBadInputLabels: 3,000 containers whose dm.size labels are malformed, sized by the real
// sizer on the fake engine and kernel. A container grows only to the size its label parses
// to, only when that is larger than its device and within MAX_SIZE; any other label is a
// rejection, with a record and no change; nothing panics; CheckNew (strict mode's rule) agrees.
func TestBadInputLabels(t *testing.T) {
	const n = 3000
	r := newRig(t)
	// The records on tmpfs where there is one: each rejection is a record written and synced,
	// and 3,000 syncs on a busy disk took 49 s.
	if dir, err := os.MkdirTemp("/dev/shm", "dmsize-labels-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(dir) })
		r.dir = dir
		r.restartPlugin(Policy{Max: 1 << 40})
	}
	labels := badinput.Strings([]string{"42G", "1.5T", "20g", "10G", "5G", "0", "-1G", "42X", "42GiB", " 20G", "2T", "1e3", ""}, n)
	grown, rejected := 0, 0
	for i, label := range labels {
		c := r.w.create(i+1, map[string]string{size.Label: label})
		res, err := r.ensure(c.ID)
		after := r.w.fsOf(i + 1)
		want, perr := size.Parse(label)
		ok := perr == nil && want > 10*G && want <= 1<<40
		check := r.s.CheckNew(label, 10*G)
		switch {
		case ok && (err != nil || after != want):
			t.Fatalf("label %q: %+v %v, filesystem %d bytes; want %d", label, res, err, after, want)
		case !ok && after != 10*G:
			t.Fatalf("label %q (%v): filesystem %d bytes; want it left at 10G", label, perr, after)
		case !ok && want != 10*G && !errs.IsRefusal(err):
			t.Fatalf("label %q (%v): %+v %v; want a rejection", label, perr, res, err)
		case ok != (check == nil) && want != 10*G:
			t.Fatalf("label %q: sized %v, CheckNew says %v", label, ok, check)
		case ok:
			grown++
		case err != nil:
			var rej *errs.Refusal
			if !errors.As(err, &rej) {
				t.Fatalf("label %q: %v is not a Refusal", label, err)
			}
			rejected++
		}
	}
	t.Logf("%d labels: %d sized, %d rejected, the rest at their size already", n, grown, rejected)
}

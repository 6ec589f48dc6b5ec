package fs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/kernel/errs"
)

// Grow checks its arguments before touching anything; the real growing is in fs_vm_test.go.
func TestGrowRejectsNonDevices(t *testing.T) {
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, image(t, "xfs-4k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Grow(p, 1<<30); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Fatalf("Grow(regular file) = %v", err)
	}
	if _, err := Grow(p, 0); err == nil || !strings.Contains(err.Error(), "invalid size") {
		t.Fatalf("Grow(size 0) = %v", err)
	}
}

func TestShrinkErrorMessage(t *testing.T) {
	var err error = &errs.ShrinkError{What: "filesystem on /dev/dm-3", Current: 10 << 30, Requested: 5 << 29}
	want := "refusing to shrink filesystem on /dev/dm-3 from 10737418240 to 2684354560 bytes (10.00 GiB to 2.50 GiB)"
	if err.Error() != want {
		t.Fatalf("got  %q\nwant %q", err, want)
	}
	var se *errs.ShrinkError
	if !errors.As(err, &se) || se.Current != 10<<30 {
		t.Fatal("errors.As")
	}
}

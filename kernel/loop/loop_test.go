package loop

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dmsize/dmsize/kernel/errs"
)

func sparseFile(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

func size(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestGrowFile(t *testing.T) {
	p := sparseFile(t, 1<<20)
	if err := GrowFile(p, 1<<30); err != nil {
		t.Fatal(err)
	}
	if got := size(t, p); got != 1<<30 {
		t.Fatalf("size = %d, want %d", got, 1<<30)
	}
	fi, _ := os.Stat(p)
	if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used > 1<<20 {
		t.Errorf("grown file uses %d bytes: not sparse", used)
	}
	if err := GrowFile(p, 1<<30); err != nil {
		t.Fatalf("same size: %v", err)
	}
}

func TestGrowFileRefusesToShrink(t *testing.T) {
	p := sparseFile(t, 3<<30)
	err := GrowFile(p, 1<<30)
	var se *errs.Refusal
	if !errors.As(err, &se) {
		t.Fatalf("GrowFile smaller = %v, want a *errs.Refusal", err)
	}
	if se.Current != 3<<30 || se.Requested != 1<<30 || se.What != "file "+p {
		t.Fatalf("Refusal = %+v", se)
	}
	want := "refusing to shrink file " + p + " from 3221225472 to 1073741824 bytes (3.00 GiB to 1.00 GiB)"
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	if got := size(t, p); got != 3<<30 {
		t.Fatalf("size changed to %d", got)
	}
}

func TestGrowFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	if err := GrowFile(missing, 1<<20); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatal("GrowFile created the file")
	}
	if err := GrowFile(sparseFile(t, 0), -1); err == nil {
		t.Fatal("negative size accepted")
	}
}

// An unattached file has no loop devices; Refresh says so and names it.
func TestUnattachedFile(t *testing.T) {
	p := sparseFile(t, 1<<20)
	devs, err := FindByFile(p)
	if err != nil || len(devs) != 0 {
		t.Fatalf("FindByFile = %q, %v; want none", devs, err)
	}
	if _, _, err := Refresh(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "no loop device") {
		t.Fatalf("Refresh = %v", err)
	}
	if _, err := FindByFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("FindByFile(missing) succeeded")
	}
}

func TestAttachedOrder(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"loop10", "loop2", "loop0", "loop-control", "loopx", "vda"} {
		os.MkdirAll(filepath.Join(dir, n, "loop"), 0o755)
	}
	os.MkdirAll(filepath.Join(dir, "loop3"), 0o755) // not attached: no loop/
	old := sysBlock
	sysBlock = dir
	defer func() { sysBlock = old }()
	got, err := attached()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "loop0 loop2 loop10" {
		t.Fatalf("attached = %q", got)
	}
}

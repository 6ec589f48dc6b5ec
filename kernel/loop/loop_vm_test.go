//go:build vmtest

package loop

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/internal/vmfixture"
	"github.com/dmsize/dmsize/kernel/errs"
)

const mib = 1 << 20

func TestVMFindGrowRefresh(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "data")
	vmfixture.Sparse(t, file, 64*mib)
	other := filepath.Join(dir, "other") // a bystander that must never match
	if err := os.WriteFile(other, make([]byte, mib), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := vmfixture.Losetup(t, file)
	vmfixture.Losetup(t, other)

	// The same inode under other names: a hard link, and a bind mount of the directory, which
	// is how the plugin sees the host's file.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Link(file, link); err != nil {
		t.Fatal(err)
	}
	bind := t.TempDir()
	if err := unix.Mount(dir, bind, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(bind, unix.MNT_DETACH) })

	for _, p := range []string{file, link, filepath.Join(bind, "data")} {
		devs, err := FindByFile(p)
		if err != nil || !slices.Equal(devs, []string{dev}) {
			t.Fatalf("FindByFile(%s) = %q, %v; want [%s]", p, devs, err, dev)
		}
	}

	if err := GrowFile(filepath.Join(bind, "data"), 128*mib); err != nil {
		t.Fatal(err)
	}
	if c, err := Capacity(dev); err != nil || c != 64*mib {
		t.Fatalf("Capacity before Refresh = %d, %v; want the old 64 MiB", c, err)
	}
	devs, capacity, err := Refresh(link)
	if err != nil || !slices.Equal(devs, []string{dev}) || capacity != 128*mib {
		t.Fatalf("Refresh = %q, %d, %v; want [%s], %d", devs, capacity, err, dev, 128*mib)
	}
	if c, err := Capacity(dev); err != nil || c != 128*mib {
		t.Fatalf("Capacity = %d, %v; want %d", c, err, 128*mib)
	}

	err = GrowFile(file, 100*mib)
	var se *errs.ShrinkError
	if !errors.As(err, &se) || se.Current != 128*mib || se.Requested != 100*mib {
		t.Fatalf("GrowFile smaller = %v; want a ShrinkError from 128 to 100 MiB", err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Size() != 128*mib {
		t.Fatalf("file changed: %v, %v", fi.Size(), err)
	}
	if _, c, err := Refresh(file); err != nil || c != 128*mib {
		t.Fatalf("Refresh after refused shrink = %d, %v", c, err)
	}
}

func TestVMCapacityErrors(t *testing.T) {
	if _, err := Capacity("/dev/nonexistent-loop"); err == nil || !strings.Contains(err.Error(), "/dev/nonexistent-loop") {
		t.Fatalf("Capacity(missing) = %v", err)
	}
	// /dev/null is no loop device: the kernel refuses and the error names device and ioctl.
	if err := SetCapacity("/dev/null"); err == nil || !strings.Contains(err.Error(), "LOOP_SET_CAPACITY /dev/null") {
		t.Fatalf("SetCapacity(/dev/null) = %v", err)
	}
}

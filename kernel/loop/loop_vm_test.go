//go:build vmtest

package loop

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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
	var se *errs.Refusal
	if !errors.As(err, &se) || se.Current != 128*mib || se.Requested != 100*mib {
		t.Fatalf("GrowFile smaller = %v; want a shrink Refusal from 128 to 100 MiB", err)
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

// Attach on the real kernel, on both paths: LOOP_CONFIGURE, and LOOP_SET_FD with
// LOOP_SET_STATUS64 as on kernels before 5.8 (forced here). Each attaches with autoclear, so
// the device goes with its last close; the two-step path detaches what a crash between its
// steps left.
func TestVMAttach(t *testing.T) {
	defer legacy.Store(false)
	for _, old := range []bool{false, true} {
		legacy.Store(old)
		file := filepath.Join(t.TempDir(), "data")
		vmfixture.Sparse(t, file, 64*mib)
		dev, f, err := Attach(file)
		if err != nil {
			t.Fatalf("legacy %v: %v", old, err)
		}
		info, err := status(dev)
		if err != nil || info.Flags&unix.LO_FLAGS_AUTOCLEAR == 0 {
			t.Fatalf("legacy %v: %s: %+v, %v; want autoclear", old, dev, info, err)
		}
		if devs, err := FindByFile(file); err != nil || !slices.Equal(devs, []string{dev}) {
			t.Fatalf("legacy %v: FindByFile = %v, %v; want %s", old, devs, err, dev)
		}
		f.Close()
		waitDetached(t, file)
		t.Logf("legacy %v: %s attached with autoclear, gone at its last close", old, dev)
	}

	// A crash between LOOP_SET_FD and LOOP_SET_STATUS64: the file stays attached without
	// autoclear after the process's handle is gone.
	file := filepath.Join(t.TempDir(), "data")
	vmfixture.Sparse(t, file, 64*mib)
	backing, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := os.OpenFile(controlPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ioctls.getFree(int(ctl.Fd()))
	ctl.Close()
	if err != nil {
		t.Fatal(err)
	}
	left := "/dev/loop" + strconv.Itoa(n)
	lf, err := os.OpenFile(left, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ioctls.setFD(int(lf.Fd()), int(backing.Fd())); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	backing.Close()
	if devs, _ := FindByFile(file); !slices.Equal(devs, []string{left}) {
		t.Fatalf("the leftover %s is not attached: %v", left, devs)
	}
	legacy.Store(true)
	dev, f, err := Attach(file)
	if err != nil {
		t.Fatal(err)
	}
	// LOOP_CLR_FD detaches at the last close, which on newer kernels completes after the call.
	var devs []string
	for range 100 {
		if devs, err = FindByFile(file); err != nil || slices.Equal(devs, []string{dev}) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || !slices.Equal(devs, []string{dev}) {
		t.Fatalf("5 s after Attach: %v, %v; want only %s (the leftover %s detached)", devs, err, dev, left)
	}
	f.Close()
	waitDetached(t, file)
	t.Logf("the leftover %s was detached; %s attached with autoclear", left, dev)
}

// waitDetached waits (5 s at most) until no loop device is attached to file: autoclear
// detaches at the last close, possibly from a work queue.
func waitDetached(t *testing.T, file string) {
	t.Helper()
	var devs []string
	for range 100 {
		var err error
		if devs, err = FindByFile(file); err != nil {
			t.Fatal(err)
		}
		if len(devs) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%v still attached to %s 5 s after the last close", devs, file)
}

package loop

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeLoop is one loop device of the fake kernel.
type fakeLoop struct {
	attached  bool
	dev, ino  uint64
	autoclear bool
}

// fakeKernel is the loop driver behind ioctls, over files in a temporary directory: devDir
// holds loop0..loop3, sysBlock their sysfs directories.
type fakeKernel struct {
	t         *testing.T
	loops     [4]fakeLoop
	noConfig  error        // LOOP_CONFIGURE's answer on an old kernel (ENOTTY, EINVAL); nil: it has it
	taken     map[int]bool // devices another attach takes between LOOP_CTL_GET_FREE and the attach
	statusErr error
	calls     []string
}

func newFakeKernel(t *testing.T) *fakeKernel {
	dir := t.TempDir()
	k := &fakeKernel{t: t, taken: map[int]bool{}}
	oldCtl, oldDev, oldSys, oldIoctls := controlPath, devDir, sysBlock, ioctls
	t.Cleanup(func() {
		controlPath, devDir, sysBlock, ioctls = oldCtl, oldDev, oldSys, oldIoctls
		legacy.Store(false)
	})
	legacy.Store(false)
	devDir, sysBlock = filepath.Join(dir, "dev"), filepath.Join(dir, "sys")
	controlPath = filepath.Join(devDir, "loop-control")
	for _, p := range []string{devDir, sysBlock} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{controlPath, dev(0), dev(1), dev(2), dev(3)} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ioctls.getFree = func(int) (int, error) {
		k.calls = append(k.calls, "get-free")
		for n := range k.loops {
			if !k.loops[n].attached {
				return n, nil
			}
		}
		return 0, unix.ENOSPC
	}
	ioctls.configure = func(fd, backing int) error {
		k.calls = append(k.calls, "configure")
		if k.noConfig != nil {
			return k.noConfig
		}
		return k.attach(fd, backing, true)
	}
	ioctls.setFD = func(fd, backing int) error {
		k.calls = append(k.calls, "set-fd")
		return k.attach(fd, backing, false)
	}
	ioctls.autoclear = func(fd int) error {
		k.calls = append(k.calls, "set-status")
		l := &k.loops[k.number(fd)]
		if k.statusErr != nil {
			return k.statusErr
		}
		if !l.attached {
			return unix.ENXIO
		}
		l.autoclear = true
		return nil
	}
	ioctls.clear = func(fd int) error {
		n := k.number(fd)
		k.calls = append(k.calls, "clear loop"+strconv.Itoa(n))
		if !k.loops[n].attached {
			return unix.ENXIO
		}
		k.set(n, fakeLoop{})
		return nil
	}
	ioctls.getStatus = func(fd int) (*unix.LoopInfo64, error) {
		l := k.loops[k.number(fd)]
		if !l.attached {
			return nil, unix.ENXIO
		}
		info := &unix.LoopInfo64{Device: l.dev, Inode: l.ino}
		if l.autoclear {
			info.Flags = unix.LO_FLAGS_AUTOCLEAR
		}
		return info, nil
	}
	return k
}

func dev(n int) string { return filepath.Join(devDir, "loop"+strconv.Itoa(n)) }

// number is the loop device an open descriptor is of.
func (k *fakeKernel) number(fd int) int {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		k.t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "loop"))
	if err != nil {
		k.t.Fatalf("fd %d is %s, not a loop device", fd, p)
	}
	return n
}

func (k *fakeKernel) attach(fd, backing int, autoclear bool) error {
	n := k.number(fd)
	if k.loops[n].attached || k.taken[n] {
		k.taken[n] = false
		k.set(n, fakeLoop{attached: true, dev: 1, ino: 1}) // another attach's file
		return unix.EBUSY
	}
	var st unix.Stat_t
	if err := unix.Fstat(backing, &st); err != nil {
		return err
	}
	k.set(n, fakeLoop{attached: true, dev: uint64(st.Dev), ino: st.Ino, autoclear: autoclear})
	return nil
}

// set changes device n, and its sysfs directory with it (loop/ only while attached).
func (k *fakeKernel) set(n int, l fakeLoop) {
	k.loops[n] = l
	dir := filepath.Join(sysBlock, "loop"+strconv.Itoa(n), "loop")
	if err := os.RemoveAll(dir); err != nil {
		k.t.Fatal(err)
	}
	if l.attached {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			k.t.Fatal(err)
		}
	}
}

// hold makes a device-mapper table hold device n.
func (k *fakeKernel) hold(n int) {
	if err := os.MkdirAll(filepath.Join(sysBlock, "loop"+strconv.Itoa(n), "holders", "dm-3"), 0o755); err != nil {
		k.t.Fatal(err)
	}
}

func (k *fakeKernel) backedBy(t *testing.T, n int, path string) bool {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	l := k.loops[n]
	return l.attached && l.dev == uint64(st.Dev) && l.ino == st.Ino
}

func attachOK(t *testing.T, path string) string {
	t.Helper()
	d, f, err := Attach(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return d
}

// A kernel with LOOP_CONFIGURE attaches in one step, with autoclear.
func TestAttachConfigures(t *testing.T) {
	k := newFakeKernel(t)
	file := sparseFile(t, 1<<20)
	if d := attachOK(t, file); d != dev(0) || !k.backedBy(t, 0, file) || !k.loops[0].autoclear || Legacy() {
		t.Fatalf("attached %s: %+v, legacy %v", d, k.loops[0], Legacy())
	}
	if got := strings.Join(k.calls, " "); got != "get-free configure" {
		t.Fatalf("calls: %s", got)
	}
}

// A kernel without LOOP_CONFIGURE (ENOTTY, or EINVAL as 5.4 answers) gets LOOP_SET_FD and
// LOOP_SET_STATUS64 with autoclear, from then on without asking again.
func TestAttachFallsBack(t *testing.T) {
	for _, answer := range []error{unix.ENOTTY, unix.EINVAL} {
		k := newFakeKernel(t)
		k.noConfig = answer
		file := sparseFile(t, 1<<20)
		if d := attachOK(t, file); d != dev(0) || !k.backedBy(t, 0, file) || !k.loops[0].autoclear || !Legacy() {
			t.Fatalf("%v: attached %s: %+v, legacy %v", answer, d, k.loops[0], Legacy())
		}
		if d := attachOK(t, file); d != dev(1) || !k.loops[1].autoclear {
			t.Fatalf("%v: second attach %s: %+v", answer, d, k.loops[1])
		}
		if got := strings.Join(k.calls, " "); got != "get-free configure set-fd set-status get-free set-fd set-status" {
			t.Fatalf("%v: calls: %s", answer, got)
		}
	}
}

// Another attach that takes the free device first makes this one take the next, on both paths.
func TestAttachRace(t *testing.T) {
	for _, old := range []bool{false, true} {
		k := newFakeKernel(t)
		if old {
			k.noConfig = unix.ENOTTY
		}
		k.taken[0] = true
		file := sparseFile(t, 1<<20)
		if d := attachOK(t, file); d != dev(1) || !k.backedBy(t, 1, file) || !k.loops[1].autoclear || k.backedBy(t, 0, file) {
			t.Fatalf("old %v: attached %s: %+v", old, d, k.loops)
		}
	}
}

// A failed LOOP_SET_STATUS64 detaches the device again: nothing stays attached without autoclear.
func TestAttachStatusFails(t *testing.T) {
	k := newFakeKernel(t)
	k.noConfig, k.statusErr = unix.ENOTTY, unix.EIO
	file := sparseFile(t, 1<<20)
	_, _, err := Attach(file)
	if !errors.Is(err, unix.EIO) || !strings.Contains(err.Error(), "LOOP_SET_STATUS64") || k.loops[0].attached {
		t.Fatalf("Attach = %v; loop0 %+v", err, k.loops[0])
	}
	if got := strings.Join(k.calls, " "); got != "get-free configure set-fd set-status clear loop0" {
		t.Fatalf("calls: %s", got)
	}
}

// What a crash between the two steps left (the file attached without autoclear, held by no
// table) is detached at the next attach; a held device and one with autoclear are left alone.
func TestAttachDetachesLeftovers(t *testing.T) {
	k := newFakeKernel(t)
	k.noConfig = unix.ENOTTY
	file := sparseFile(t, 1<<20)
	attachOK(t, file) // the kernel's answer is known from now on
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	mine := fakeLoop{attached: true, dev: uint64(st.Dev), ino: st.Ino}
	k.set(0, mine) // the crash's leftover
	k.set(1, mine) // held by a table
	k.hold(1)
	k.set(2, fakeLoop{attached: true, dev: uint64(st.Dev), ino: st.Ino, autoclear: true})
	k.calls = nil
	if d := attachOK(t, file); d != dev(0) || !k.loops[0].autoclear {
		t.Fatalf("attached %s: %+v", d, k.loops)
	}
	if !k.backedBy(t, 1, file) || k.loops[1].autoclear || !k.backedBy(t, 2, file) {
		t.Fatalf("a held device or one with autoclear was touched: %+v", k.loops)
	}
	if got := strings.Join(k.calls, " "); got != "clear loop0 get-free set-fd set-status" {
		t.Fatalf("calls: %s", got)
	}
}

// The real kernel's answers pass through: no control device is an error naming the file.
func TestAttachWithoutLoopControl(t *testing.T) {
	newFakeKernel(t)
	controlPath = filepath.Join(t.TempDir(), "no-loop-control")
	file := sparseFile(t, 1<<20)
	if _, _, err := Attach(file); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), file) {
		t.Fatalf("Attach = %v", err)
	}
}

//go:build vmtest

package fs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/internal/vmfixture"
	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/kernel/loop"
)

const (
	mib   = 1 << 20
	chunk = 64 << 10 // the writer's
)

func TestVMGrowExt4(t *testing.T) { testGrow(t, Ext4) }
func TestVMGrowXFS(t *testing.T)  { testGrow(t, XFS) }

// testGrow grows a filesystem on a loop device while a writer appends to it, then again while
// it is unmounted, and checks that the data survives, the sizes are right and that shrinking
// is refused.
func testGrow(t *testing.T, typ Type) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	vmfixture.Sparse(t, img, 512*mib)
	dev := vmfixture.Losetup(t, img)
	vmfixture.Mkfs(t, string(typ), dev)
	// A twin with the same UUID, as every Docker thin device has, mounted while Grow mounts dev
	// privately: xfs needs nouuid for that.
	twin := filepath.Join(dir, "twin")
	vmfixture.Sh(t, "cp", "--sparse=always", img, twin)
	twinDev := vmfixture.Losetup(t, twin)

	if sb, err := ReadSuper(dev); err != nil || sb.Type != typ || sb.Size() != 512*mib {
		t.Fatalf("ReadSuper after mkfs = %+v, %v", sb, err)
	}
	// Our own mounts go without nouuid, so that the twin's UUID counts while Grow mounts dev.
	mnt := t.TempDir()
	vmfixture.MountAt(t, string(typ), dev, mnt, "")
	before := vmfixture.StatfsSize(t, mnt)

	// Mounted: grow under a running writer, which fsyncs every 16 chunks to push data to the
	// device while it grows and stops at 256 MiB, far from filling the filesystem.
	w := vmfixture.StartWriter(t, mnt, vmfixture.WriterOpts{Chunk: chunk, SyncEvery: 16, Limit: 4096 * chunk})
	w.WaitWritten(t, 16*chunk)
	if err := loop.GrowFile(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	if _, c, err := loop.Refresh(img); err != nil || c != 1<<30 {
		t.Fatalf("loop.Refresh = %d, %v", c, err)
	}
	n0 := w.Written()
	res, err := Grow(dev, 1<<30)
	t.Logf("mounted Grow: %+v; the writer wrote %d chunks meanwhile", res, (w.Written()-n0)/chunk)
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != typ || !res.Mounted || res.Before != 512*mib || res.After != 1<<30 {
		t.Fatalf("Grow = %+v; want %s, mounted, 512 MiB to 1 GiB", res, typ)
	}
	w.WaitWritten(t, w.Written()+16*chunk)
	w.Verify(t)
	after := vmfixture.StatfsSize(t, mnt)
	if after < before+450*mib {
		t.Fatalf("statfs size %d after grow, %d before: want about 512 MiB more", after, before)
	}
	if typ == Ext4 { // a mounted xfs's on-disk superblock lags; it is checked after unmounting
		if sb, err := ReadSuper(dev); err != nil || sb.Size() != 1<<30 {
			t.Fatalf("ReadSuper after grow = %+v, %v", sb, err)
		}
	}

	// Mounted: no-op and refused shrink, neither changing anything.
	if res, err := Grow(dev, 1<<30); err != nil || res.Before != 1<<30 || res.After != 1<<30 || !res.Mounted {
		t.Fatalf("Grow to the same size = %+v, %v", res, err)
	}
	wantShrink(t, dev, 768*mib, 1<<30)
	if got := vmfixture.StatfsSize(t, mnt); got != after {
		t.Fatalf("statfs size %d after refused shrink, was %d", got, after)
	}

	// Unmounted: Grow mounts it privately, while its twin is mounted.
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	twinMnt := t.TempDir()
	vmfixture.MountAt(t, string(typ), twinDev, twinMnt, "")
	if sb, err := ReadSuper(dev); err != nil || sb.Size() != 1<<30 {
		t.Fatalf("ReadSuper after unmount = %+v, %v", sb, err)
	}
	if err := loop.GrowFile(img, 1536*mib); err != nil {
		t.Fatal(err)
	}
	if _, c, err := loop.Refresh(img); err != nil || c != 1536*mib {
		t.Fatalf("loop.Refresh = %d, %v", c, err)
	}
	ns := mountNS(t)
	wantShrink(t, dev, 1000*mib, 1<<30)
	res, err = Grow(dev, 1536*mib)
	t.Logf("unmounted Grow: %+v", res)
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != typ || res.Mounted || res.Before != 1<<30 || res.After != 1536*mib {
		t.Fatalf("Grow = %+v; want %s, not mounted, 1 GiB to 1.5 GiB", res, typ)
	}
	if sb, err := ReadSuper(dev); err != nil || sb.Size() != 1536*mib {
		t.Fatalf("ReadSuper after unmounted grow = %+v, %v", sb, err)
	}
	if got := mountNS(t); got != ns {
		t.Fatalf("mount namespace changed from %s to %s", ns, got)
	}
	noMountOf(t, dev)
	noTempDirs(t)
	if res, err := Grow(dev, 1536*mib); err != nil || res.Mounted || res.After != 1536*mib {
		t.Fatalf("unmounted Grow to the same size = %+v, %v", res, err)
	}
	noMountOf(t, dev)

	if err := unix.Unmount(twinMnt, 0); err != nil { // same UUID: xfs would refuse dev
		t.Fatal(err)
	}
	fsck(t, typ, dev)
	vmfixture.MountAt(t, string(typ), dev, mnt, "")
	w.Verify(t)
	if got := vmfixture.StatfsSize(t, mnt); got < after+450*mib {
		t.Fatalf("statfs size %d after unmounted grow, %d before", got, after)
	}
}

// Many runs, so that some goroutine starts on the main thread, which must not be the one to
// leave for a new namespace: Go would park it for good and keep that namespace alive.
func TestVMPrivateNamespace(t *testing.T) {
	outer := mountNS(t)
	for i := 0; i < 100; i++ {
		var inner string
		err := inPrivateNamespace(func() error {
			var err error
			inner, err = os.Readlink("/proc/thread-self/ns/mnt")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(outer, inner) {
			t.Fatalf("run %d: fn ran in %s, the caller's namespace (%s)", i, inner, outer)
		}
		runtime.Gosched()
	}
	if got := mountNS(t); got != outer {
		t.Fatalf("mount namespaces changed from %s to %s", outer, got)
	}
}

func wantShrink(t *testing.T, dev string, to, current int64) {
	t.Helper()
	res, err := Grow(dev, to)
	var se *errs.Refusal
	if !errors.As(err, &se) || se.Current != current || se.Requested != to || se.What != "filesystem on "+dev {
		t.Fatalf("Grow(%d) = %+v, %v; want a shrink Refusal from %d", to, res, err, current)
	}
	if res.After != current {
		t.Fatalf("refused shrink: Result %+v", res)
	}
	t.Logf("refused: %v", err)
}

// mountNS names the mount namespaces of the main thread and of the calling thread.
func mountNS(t *testing.T) string {
	t.Helper()
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	thread, err := os.Readlink("/proc/thread-self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	return "main " + self + ", thread " + thread
}

func noMountOf(t *testing.T, dev string) {
	t.Helper()
	rdev, err := blockDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"/proc/self/mountinfo", "/proc/thread-self/mountinfo"} {
		info, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if p := mountPoints(info, unix.Major(rdev), unix.Minor(rdev)); len(p) != 0 {
			t.Fatalf("%s left mounted on %q (%s)", dev, p, f)
		}
	}
}

func noTempDirs(t *testing.T) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "dmsize-grow-*"))
	if len(left) != 0 {
		t.Fatalf("left behind: %q", left)
	}
}

// fsck checks the unmounted filesystem if the checker is installed; it is a bonus, not a need.
func fsck(t *testing.T, typ Type, dev string) {
	t.Helper()
	argv := []string{"e2fsck", "-fn", dev}
	if typ == XFS {
		argv = []string{"xfs_repair", "-n", dev}
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		t.Logf("%s not installed: not checking %s", argv[0], dev)
		return
	}
	vmfixture.Sh(t, argv...)
}

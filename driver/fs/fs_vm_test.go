//go:build vmtest

package fs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/driver/errs"
	"github.com/dmsize/dmsize/driver/loop"
)

const mib = 1 << 20

func TestVMGrowExt4(t *testing.T) { testGrow(t, Ext4) }
func TestVMGrowXFS(t *testing.T)  { testGrow(t, XFS) }

// testGrow grows a filesystem on a loop device while a writer appends to it, then again while
// it is unmounted, and checks that the data survives, the sizes are right and that shrinking
// is refused.
func testGrow(t *testing.T, typ Type) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	sparse(t, img, 512*mib)
	dev := losetup(t, img)
	mkfs(t, typ, dev)
	// A twin with the same UUID, as every Docker thin device has, mounted while Grow mounts dev
	// privately: xfs needs nouuid for that.
	twin := filepath.Join(dir, "twin")
	run(t, "cp", "--sparse=always", img, twin)
	twinDev := losetup(t, twin)

	if sb, err := ReadSuper(dev); err != nil || sb.Type != typ || sb.Size() != 512*mib {
		t.Fatalf("ReadSuper after mkfs = %+v, %v", sb, err)
	}
	mnt := t.TempDir()
	mount(t, dev, mnt, typ)
	before := statfsSize(t, mnt)

	// Mounted: grow under a running writer.
	w := startWriter(t, filepath.Join(mnt, "log"))
	w.waitChunks(t, 16)
	if err := loop.GrowFile(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	if _, c, err := loop.Refresh(img); err != nil || c != 1<<30 {
		t.Fatalf("loop.Refresh = %d, %v", c, err)
	}
	c0 := w.chunks.Load()
	res, err := Grow(dev, 1<<30)
	t.Logf("mounted Grow: %+v; the writer wrote %d chunks meanwhile", res, w.chunks.Load()-c0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != typ || !res.Mounted || res.Before != 512*mib || res.After != 1<<30 {
		t.Fatalf("Grow = %+v; want %s, mounted, 512 MiB to 1 GiB", res, typ)
	}
	w.waitChunks(t, w.chunks.Load()+16)
	sum, n := w.stop(t)
	t.Logf("writer: %d bytes", n)
	checkFile(t, filepath.Join(mnt, "log"), sum, n)
	after := statfsSize(t, mnt)
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
	if got := statfsSize(t, mnt); got != after {
		t.Fatalf("statfs size %d after refused shrink, was %d", got, after)
	}

	// Unmounted: Grow mounts it privately, while its twin is mounted.
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	twinMnt := t.TempDir()
	mount(t, twinDev, twinMnt, typ)
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
	mount(t, dev, mnt, typ)
	checkFile(t, filepath.Join(mnt, "log"), sum, n)
	if got := statfsSize(t, mnt); got < after+450*mib {
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
	var se *errs.ShrinkError
	if !errors.As(err, &se) || se.Current != current || se.Requested != to || se.What != "filesystem on "+dev {
		t.Fatalf("Grow(%d) = %+v, %v; want a ShrinkError from %d", to, res, err, current)
	}
	if res.After != current {
		t.Fatalf("refused shrink: Result %+v", res)
	}
	t.Logf("refused: %v", err)
}

// writer appends 64 KiB chunks to a file until stopped, hashing what it writes. Each chunk is
// stamped with its number so that a misplaced block changes the hash.
const maxChunks = 4096 // 256 MiB

type writer struct {
	chunks atomic.Int64
	quit   chan struct{}
	done   chan error
	sum    []byte
	n      int64
}

func startWriter(t *testing.T, path string) *writer {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{quit: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		defer f.Close()
		h := sha256.New()
		buf := make([]byte, 64<<10)
		rand.NewChaCha8([32]byte{1}).Read(buf)
		var i uint64
		for ; ; i++ {
			if i == maxChunks { // stay far from filling the filesystem: just wait
				<-w.quit
			}
			select {
			case <-w.quit:
				if err := f.Sync(); err != nil {
					w.done <- err
					return
				}
				w.sum, w.n = h.Sum(nil), int64(i)*int64(len(buf))
				w.done <- nil
				return
			default:
			}
			for off := 0; off < len(buf); off += 4096 {
				binary.LittleEndian.PutUint64(buf[off:], i)
			}
			if _, err := f.Write(buf); err != nil {
				w.done <- fmt.Errorf("chunk %d: %w", i, err)
				return
			}
			h.Write(buf)
			if i%16 == 15 { // push data to the device while it grows
				if err := f.Sync(); err != nil {
					w.done <- fmt.Errorf("sync after chunk %d: %w", i, err)
					return
				}
			}
			w.chunks.Add(1)
		}
	}()
	return w
}

func (w *writer) waitChunks(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for w.chunks.Load() < n {
		select {
		case err := <-w.done:
			t.Fatalf("writer stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer wrote %d chunks, waited for %d", w.chunks.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *writer) stop(t *testing.T) ([]byte, int64) {
	t.Helper()
	close(w.quit)
	if err := <-w.done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	return w.sum, w.n
}

// checkFile re-reads path from the device, not the page cache, and compares it with the hash.
func checkFile(t *testing.T, path string, sum []byte, n int64) {
	t.Helper()
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	got, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	if got != n || !bytes.Equal(h.Sum(nil), sum) {
		t.Fatalf("%s: %d bytes, sha256 %x; written %d bytes, sha256 %x", path, got, h.Sum(nil), n, sum)
	}
}

func statfsSize(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
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

func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func losetup(t *testing.T, file string) string {
	t.Helper()
	dev := run(t, "losetup", "--find", "--show", file)
	t.Cleanup(func() { run(t, "losetup", "-d", dev) })
	return dev
}

func mkfs(t *testing.T, typ Type, dev string) {
	t.Helper()
	switch typ {
	case Ext4:
		run(t, "mkfs.ext4", "-q", "-F", dev)
	case XFS:
		run(t, "mkfs.xfs", "-q", "-f", dev)
	}
}

func mount(t *testing.T, dev, dir string, typ Type) {
	t.Helper()
	if err := unix.Mount(dev, dir, string(typ), 0, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", dev, dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// fsck checks the unmounted filesystem if the checker is installed; it is a bonus, not a need.
func fsck(t *testing.T, typ Type, dev string) {
	t.Helper()
	name, args := "e2fsck", []string{"-fn", dev}
	if typ == XFS {
		name, args = "xfs_repair", []string{"-n", dev}
	}
	if _, err := exec.LookPath(name); err != nil {
		t.Logf("%s not installed: not checking %s", name, dev)
		return
	}
	run(t, name, args...)
}

//go:build vmtest

// Package vmfixture builds throwaway loop devices, loop-backed thin pools, thin devices and
// filesystems for the driver's VM tests, and a writer that keeps a file busy. It uses the stock
// tools (losetup, dmsetup, mkfs, mount) on purpose: the fixtures must not depend on the code
// under test. It imports no driver package, so that any of them, dm included, can use it in its
// internal tests.
package vmfixture

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Sh runs a command and fails the test on error, returning trimmed combined output.
func Sh(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Settle waits, for 10 s at most, until udev has handled its events: its probes hold devices
// open for a while after they appear or change.
func Settle() { exec.Command("udevadm", "settle", "--timeout=10").Run() }

// Sparse creates path anew as a sparse file of size bytes. Its first 4 KiB are written as
// zeros: a pool's metadata device must start zeroed, or the kernel takes it for existing
// metadata.
func Sparse(t testing.TB, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, min(4096, size)), 0); err != nil {
		t.Fatal(err)
	}
}

// Losetup attaches a new loop device to file and returns its path. When the test ends it waits
// for udev and detaches the device, reporting a failure to detach as a test error.
func Losetup(t testing.TB, file string) string {
	t.Helper()
	dev := Sh(t, "losetup", "--find", "--show", file)
	t.Cleanup(func() {
		Settle()
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// StatfsSize is the size statfs gives for the filesystem mounted on dir, in bytes.
func StatfsSize(t testing.TB, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}

// Pool is a loop-backed thin pool made with dmsetup, 64 KiB blocks (what dockerd uses).
type Pool struct {
	Name               string
	DataFile, MetaFile string
	DataLoop, MetaLoop string
	Dev                string // "major:minor"
	nextID             int
}

// NewPool creates sparse data and metadata files on the root disk, loop devices over them and
// the pool. Everything is removed when the test ends.
func NewPool(t testing.TB, name string, dataSize, metaSize int64) *Pool {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "dmsize-pool-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &Pool{Name: "dmsize-test-" + name, DataFile: filepath.Join(dir, "data"), MetaFile: filepath.Join(dir, "metadata")}
	Sparse(t, p.DataFile, dataSize)
	Sparse(t, p.MetaFile, metaSize)
	p.DataLoop = Losetup(t, p.DataFile)
	p.MetaLoop = Losetup(t, p.MetaFile)
	table := fmt.Sprintf("0 %d thin-pool %s %s 128 32768 1 skip_block_zeroing", dataSize/512, p.MetaLoop, p.DataLoop)
	Sh(t, "dmsetup", "create", p.Name, "--table", table)
	// Registered after the loop devices' clean-ups, so it runs before them.
	t.Cleanup(func() { exec.Command("dmsetup", "remove", "--retry", p.Name).Run() })
	p.Dev = Sh(t, "dmsetup", "info", "-c", "--noheadings", "-o", "major,minor", "--separator", ":", p.Name)
	return p
}

// Thin creates thin device id in the pool (a pool message: fixtures may, the product never
// does) and activates it as NAME with size bytes. Returns the dm name.
func (p *Pool) Thin(t testing.TB, suffix string, size int64) string {
	t.Helper()
	id := p.nextID
	p.nextID++
	Sh(t, "dmsetup", "message", p.Name, "0", fmt.Sprintf("create_thin %d", id))
	name := p.Name + "-" + suffix
	Sh(t, "dmsetup", "create", name, "--table", fmt.Sprintf("0 %d thin /dev/mapper/%s %d", size/512, p.Name, id))
	Sh(t, "udevadm", "settle")
	t.Cleanup(func() {
		exec.Command("umount", "-l", "/dev/mapper/"+name).Run()
		exec.Command("dmsetup", "remove", "--retry", name).Run()
	})
	return name
}

// Mkfs makes a filesystem of type fs ("ext4" or "xfs") on dev.
func Mkfs(t testing.TB, fs, dev string) {
	t.Helper()
	switch fs {
	case "ext4":
		Sh(t, "mkfs.ext4", "-q", "-F", dev)
	case "xfs":
		Sh(t, "mkfs.xfs", "-q", "-f", dev)
	default:
		t.Fatalf("unknown fs %q", fs)
	}
}

// Mount mounts dev on a fresh directory (xfs with nouuid, as dockerd does) until the test ends.
func Mount(t testing.TB, fs, dev string) string {
	t.Helper()
	dir := t.TempDir()
	opts := ""
	if fs == "xfs" {
		opts = "nouuid"
	}
	MountAt(t, fs, dev, dir, opts)
	return dir
}

// MountAt mounts dev, a filesystem of type fs, on dir with the mount options opts ("" for
// none). When the test ends it detaches whatever is mounted on dir, if anything still is.
func MountAt(t testing.TB, fs, dev, dir, opts string) {
	t.Helper()
	args := []string{"mount", "-t", fs}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	Sh(t, append(args, dev, dir)...)
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

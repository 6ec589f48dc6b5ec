//go:build linux

package dm

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// withMapperDir points the node functions at a temporary directory; it skips where this
// process may not mknod.
func withMapperDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	if err := unix.Mknod(probe, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 250))); err != nil {
		t.Skipf("cannot mknod here: %v", err)
	}
	os.Remove(probe)
	old := mapperDir
	mapperDir = filepath.Join(dir, "mapper") // EnsureNode creates it
	t.Cleanup(func() { mapperDir = old })
	return mapperDir
}

func nodeOf(t *testing.T, path string) (mode uint32, dev Dev) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Mode, decodeDev(st.Rdev)
}

func TestEnsureNodeMakesNode(t *testing.T) {
	dir := withMapperDir(t)
	dev := Dev{253, 1048575}
	start := time.Now()
	if err := EnsureNode("pool", dev, 30*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("did not wait for udev: %v", d)
	}
	mode, got := nodeOf(t, filepath.Join(dir, "pool"))
	if mode != unix.S_IFBLK|0o600 || got != dev {
		t.Fatalf("mode %o dev %v", mode, got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
	// Already right: nothing to do, no waiting.
	start = time.Now()
	if err := EnsureNode("pool", dev, time.Minute); err != nil || time.Since(start) > time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
}

func TestEnsureNodeReplacesWrongNode(t *testing.T) {
	dir := withMapperDir(t)
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, "thin")
	if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(253, 9))); err != nil {
		t.Fatal(err)
	}
	if err := EnsureNode("thin", Dev{253, 3}, 0); err != nil {
		t.Fatal(err)
	}
	if _, got := nodeOf(t, path); got != (Dev{253, 3}) {
		t.Fatalf("dev %v", got)
	}
	// A dangling symlink and a regular file are replaced too.
	os.Remove(path)
	os.Symlink("../dm-99", path)
	if err := EnsureNode("thin", Dev{253, 3}, 0); err != nil {
		t.Fatal(err)
	}
	if mode, got := nodeOf(t, path); mode&unix.S_IFMT != unix.S_IFBLK || got != (Dev{253, 3}) {
		t.Fatalf("mode %o dev %v", mode, got)
	}
}

func TestEnsureNodeAcceptsUdevSymlink(t *testing.T) {
	dir := withMapperDir(t)
	os.MkdirAll(dir, 0o755)
	dmN := filepath.Join(filepath.Dir(dir), "dm-3")
	if err := unix.Mknod(dmN, unix.S_IFBLK|0o660, int(unix.Mkdev(253, 3))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "thin")
	// udev is slow: the link appears while EnsureNode waits.
	go func() {
		time.Sleep(50 * time.Millisecond)
		os.Symlink("../dm-3", path)
	}()
	if err := EnsureNode("thin", Dev{253, 3}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if mode, _ := nodeOf(t, path); mode&unix.S_IFMT != unix.S_IFLNK {
		t.Fatalf("udev's symlink replaced: mode %o", mode)
	}
	// A link of another device is replaced once the wait is over.
	if err := EnsureNode("thin", Dev{253, 4}, 0); err != nil {
		t.Fatal(err)
	}
	if mode, got := nodeOf(t, path); mode&unix.S_IFMT != unix.S_IFBLK || got != (Dev{253, 4}) {
		t.Fatalf("mode %o dev %v", mode, got)
	}
}

func TestEnsureNodeRefusesBadNames(t *testing.T) {
	withMapperDir(t)
	for _, name := range []string{"..", "a/b", ""} {
		if err := EnsureNode(name, Dev{1, 1}, 0); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: %v", name, err)
		}
	}
}

func TestRemoveNode(t *testing.T) {
	dir := withMapperDir(t)
	os.MkdirAll(dir, 0o755)
	dev := Dev{253, 5}

	// Our plain node goes.
	if err := EnsureNode("ours", dev, 0); err != nil {
		t.Fatal(err)
	}
	if err := removeNode("ours", dev); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "ours")); !os.IsNotExist(err) {
		t.Fatalf("node left: %v", err)
	}
	// udev's symlink and a node of another device stay.
	os.Symlink("../dm-5", filepath.Join(dir, "link"))
	unix.Mknod(filepath.Join(dir, "other"), unix.S_IFBLK|0o600, int(unix.Mkdev(253, 6)))
	for _, name := range []string{"link", "other", "missing"} {
		if err := removeNode(name, dev); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"link", "other"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("%s removed: %v", name, err)
		}
	}
}

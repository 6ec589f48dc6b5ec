//go:build vmtest

// Package vmfixture builds throwaway loop-backed thin pools, thin devices and filesystems for
// the driver's VM tests. It uses the stock tools (losetup, dmsetup, mkfs) on purpose: the
// fixtures must not depend on the code under test.
package vmfixture

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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
	p := &Pool{Name: "dmsize-test-" + name, DataFile: filepath.Join(dir, "data"), MetaFile: filepath.Join(dir, "metadata")}
	Sh(t, "truncate", "-s", fmt.Sprint(dataSize), p.DataFile)
	Sh(t, "truncate", "-s", fmt.Sprint(metaSize), p.MetaFile)
	Sh(t, "dd", "if=/dev/zero", "of="+p.MetaFile, "bs=4096", "count=1", "conv=notrunc", "status=none")
	p.DataLoop = Sh(t, "losetup", "--find", "--show", p.DataFile)
	p.MetaLoop = Sh(t, "losetup", "--find", "--show", p.MetaFile)
	table := fmt.Sprintf("0 %d thin-pool %s %s 128 32768 1 skip_block_zeroing", dataSize/512, p.MetaLoop, p.DataLoop)
	Sh(t, "dmsetup", "create", p.Name, "--table", table)
	p.Dev = Sh(t, "dmsetup", "info", "-c", "--noheadings", "-o", "major,minor", "--separator", ":", p.Name)
	t.Cleanup(func() {
		exec.Command("dmsetup", "remove", "--retry", p.Name).Run()
		exec.Command("losetup", "-d", p.DataLoop).Run()
		exec.Command("losetup", "-d", p.MetaLoop).Run()
		os.RemoveAll(dir)
	})
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
	args := []string{"mount", dev, dir}
	if fs == "xfs" {
		args = []string{"mount", "-o", "nouuid", dev, dir}
	}
	Sh(t, args...)
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// Writer appends a deterministic pattern to a file, in chunks, until stopped, hashing what it
// wrote. It stands for a container that keeps writing through a grow.
type Writer struct {
	Path    string
	chunk   int
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	err     error
	written int64
	sum     []byte
	maxGap  time.Duration // the longest single write+fsync: the stall the writer saw
}

// StartWriter starts writing dir/name in chunk-byte writes, each followed by fdatasync.
func StartWriter(t testing.TB, dir string, chunk int) *Writer {
	w := &Writer{Path: filepath.Join(dir, "writer.dat"), chunk: chunk, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	t.Cleanup(func() { w.Stop() })
	return w
}

func (w *Writer) run() {
	defer close(w.done)
	f, err := os.OpenFile(w.Path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		w.err = err
		return
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, w.chunk)
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			w.mu.Lock()
			w.sum = h.Sum(nil)
			w.mu.Unlock()
			return
		default:
		}
		for j := range buf {
			buf[j] = byte(i*7 + j*13)
		}
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			w.err = err
			return
		}
		if err := f.Sync(); err != nil {
			w.err = err
			return
		}
		gap := time.Since(start)
		h.Write(buf)
		w.mu.Lock()
		w.written += int64(len(buf))
		if gap > w.maxGap {
			w.maxGap = gap
		}
		w.mu.Unlock()
	}
}

// Written is how many bytes the writer has completed.
func (w *Writer) Written() int64 { w.mu.Lock(); defer w.mu.Unlock(); return w.written }

// ResetMaxGap starts a new measurement window for MaxGap.
func (w *Writer) ResetMaxGap() { w.mu.Lock(); w.maxGap = 0; w.mu.Unlock() }

// Gap is the longest write+fsync since the last ResetMaxGap.
func (w *Writer) Gap() time.Duration { w.mu.Lock(); defer w.mu.Unlock(); return w.maxGap }

// Stop stops the writer and returns its error, if any.
func (w *Writer) Stop() error {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	return w.err
}

// Verify stops the writer, drops the page cache and checks the file reads back as written.
func (w *Writer) Verify(t testing.TB) {
	t.Helper()
	if err := w.Stop(); err != nil {
		t.Fatalf("writer failed: %v", err)
	}
	Sh(t, "sync")
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
	f, err := os.Open(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatalf("reading back %s: %v", w.Path, err)
	}
	if n != w.written {
		t.Fatalf("%s has %d bytes, writer wrote %d", w.Path, n, w.written)
	}
	if got := h.Sum(nil); string(got) != string(w.sum) {
		t.Fatalf("%s: checksum mismatch after %d bytes", w.Path, n)
	}
	t.Logf("writer: %d MiB written and read back intact, longest write+fsync %v", n>>20, w.maxGap)
}

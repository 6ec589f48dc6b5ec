//go:build vmtest

package vmfixture

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// WriterOpts shapes a Writer's load.
type WriterOpts struct {
	Chunk     int   // bytes a write, a multiple of 4 KiB
	SyncEvery int   // fsync after every SyncEvery-th chunk; 0 is 1, after every chunk
	Limit     int64 // stop writing, without stopping, once this many bytes are written; 0: never
}

// Writer appends chunks of a deterministic pattern to a file until stopped, hashing what it
// wrote. It stands for a container that keeps writing through a grow. The pattern is random
// data with every 4 KiB block stamped with its chunk's number, so that a block that lands in
// the wrong place changes the hash.
type Writer struct {
	Path    string
	opts    WriterOpts
	f       *os.File
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	err     error
	written int64
	sum     []byte
	maxGap  time.Duration // the longest single write (and fsync, if one followed): the stall the writer saw
}

// StartWriter starts writing dir/writer.dat. The writer is stopped when the test ends.
func StartWriter(t testing.TB, dir string, opts WriterOpts) *Writer {
	t.Helper()
	if opts.Chunk <= 0 || opts.Chunk%4096 != 0 {
		t.Fatalf("writer chunk %d: want a multiple of 4 KiB", opts.Chunk)
	}
	if opts.SyncEvery <= 0 {
		opts.SyncEvery = 1
	}
	w := &Writer{Path: filepath.Join(dir, "writer.dat"), opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	if w.f, err = os.OpenFile(w.Path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644); err != nil {
		t.Fatal(err)
	}
	go w.run()
	t.Cleanup(func() { w.Stop() })
	return w
}

func (w *Writer) run() {
	defer close(w.done)
	defer w.f.Close()
	h := sha256.New()
	buf := make([]byte, w.opts.Chunk)
	rand.NewChaCha8([32]byte{1}).Read(buf)
	for i := uint64(0); ; i++ {
		if w.opts.Limit > 0 && int64(i)*int64(len(buf)) >= w.opts.Limit {
			<-w.stop // stay far from filling the filesystem: just wait
		}
		select {
		case <-w.stop:
			w.finish(h)
			return
		default:
		}
		for off := 0; off < len(buf); off += 4096 {
			binary.LittleEndian.PutUint64(buf[off:], i)
		}
		start := time.Now()
		if _, err := w.f.Write(buf); err != nil {
			w.fail(fmt.Errorf("chunk %d: %w", i, err))
			return
		}
		if i%uint64(w.opts.SyncEvery) == uint64(w.opts.SyncEvery-1) { // push data to the device while it grows
			if err := w.f.Sync(); err != nil {
				w.fail(fmt.Errorf("sync after chunk %d: %w", i, err))
				return
			}
		}
		gap := time.Since(start)
		h.Write(buf)
		w.mu.Lock()
		w.written += int64(len(buf))
		w.maxGap = max(w.maxGap, gap)
		w.mu.Unlock()
	}
}

func (w *Writer) finish(h hash.Hash) {
	err := w.f.Sync()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err, w.sum = err, h.Sum(nil)
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}

// Written is how many bytes the writer has completed.
func (w *Writer) Written() int64 { w.mu.Lock(); defer w.mu.Unlock(); return w.written }

// WaitWritten waits until the writer has completed n bytes, failing the test if the writer
// stops first or has not got there within 2 minutes.
func (w *Writer) WaitWritten(t testing.TB, n int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for w.Written() < n {
		select {
		case <-w.done:
			t.Fatalf("writer stopped after %d bytes, waited for %d: %v", w.Written(), n, w.Stop())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer wrote %d bytes, waited for %d", w.Written(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ResetMaxGap starts a new measurement window for Gap.
func (w *Writer) ResetMaxGap() { w.mu.Lock(); w.maxGap = 0; w.mu.Unlock() }

// Gap is the longest write (with its fsync) since the last ResetMaxGap.
func (w *Writer) Gap() time.Duration { w.mu.Lock(); defer w.mu.Unlock(); return w.maxGap }

// Stop stops the writer, fsyncing what it wrote, and returns its error, if any. It may be
// called again: it returns the same.
func (w *Writer) Stop() error {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Verify stops the writer, drops the page cache and checks that the file reads back from the
// device as written. It may be called again, say after a remount.
func (w *Writer) Verify(t testing.TB) {
	t.Helper()
	if err := w.Stop(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		t.Fatal(err)
	}
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
	if got := h.Sum(nil); n != w.written || !bytes.Equal(got, w.sum) {
		t.Fatalf("%s: %d bytes, sha256 %x; written %d bytes, sha256 %x", w.Path, n, got, w.written, w.sum)
	}
	t.Logf("writer: %d bytes (%d MiB) written and read back intact, longest write+fsync %v", n, n>>20, w.maxGap)
}

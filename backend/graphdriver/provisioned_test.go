package graphdriver

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/engine/devmeta"
)

// countReads counts Provisioned's reads of metadata files until the test ends.
func countReads(t testing.TB) *atomic.Int64 {
	var n atomic.Int64
	old := readDevice
	readDevice = func(p string) (devmeta.Device, error) { n.Add(1); return old(p) }
	t.Cleanup(func() { readDevice = old })
	return &n
}

// layer is the hash of the n-th layer in these tests.
func layer(n int) string { return fmt.Sprintf("%064x", n) }

// engineWithLayers makes a backend whose metadata directory holds base and n layers of 1 GiB
// (the file the engine writes), each last written an hour ago, as a settled pool's are.
func engineWithLayers(t testing.TB, n int) (*Backend, string) {
	root := t.TempDir()
	dir := filepath.Join(root, "devicemapper", "metadata")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	for i := 0; i <= n; i++ {
		name := layer(i)
		if i == 0 {
			name = "base"
		}
		writeMeta(t, dir, name, fmt.Sprintf(`{"device_id":%d,"size":%d,"transaction_id":%d,"initialized":true,"deleted":false}`, i+1, 1<<30, i+1), old)
	}
	for _, f := range []string{"deviceset-metadata", "transaction-metadata"} {
		writeMeta(t, dir, f, `{"next_device_id":1,"open_transaction_id":1}`, old)
	}
	return &Backend{storage: engine.Storage{Driver: "devicemapper", DataRoot: root}}, dir
}

// writeMeta writes a metadata file as the engine does (a new file renamed into place) and
// sets its modification time to mtime (the zero time: now).
func writeMeta(t testing.TB, dir, name, content string, mtime time.Time) {
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// Provisioned reads a metadata file again only when it changed: a growth check on a pool of
// a thousand containers does not read a thousand files. It never under-counts: a file
// rewritten, added or removed is seen at the next call, even when its new content has the
// same length and its time was set back to the old one's (a new file renamed into place), and
// a file changed less than a second ago is read every time (the clock's granularity may hide
// a second change in the same tick).
func TestProvisionedReadsOnlyChangedFiles(t *testing.T) {
	// The test's clock: wrote makes it now, just after a change; settle moves it past the racy
	// window. A slow machine cannot make a file settle early.
	set(t, &racyWindow, time.Hour)
	var now time.Time
	set(t, &clock, func() time.Time { return now })
	wrote := func() { now = time.Now() }
	settle := func() { now = now.Add(racyWindow + time.Second) }
	b, dir := engineWithLayers(t, 100)
	wrote()
	reads := countReads(t)
	check := func(what string, want int64, wantReads int64) {
		t.Helper()
		reads.Store(0)
		got, err := b.Provisioned()
		if err != nil || got != want || reads.Load() != wantReads {
			t.Fatalf("%s: Provisioned = %d, %v with %d files read; want %d with %d read", what, got, err, reads.Load(), want, wantReads)
		}
	}
	check("just written", 101<<30, 101)
	check("still within the racy window", 101<<30, 101)
	settle()
	check("settled", 101<<30, 101)
	check("nothing changed", 101<<30, 0)

	// A growth: dmsize's SetSize swaps a new file in.
	if _, err := devmeta.SetSize(filepath.Join(dir, layer(1)), 3<<30); err != nil {
		t.Fatal(err)
	}
	wrote()
	check("one size raised", 103<<30, 1)
	check("raised within the racy window", 103<<30, 1)
	settle()
	check("raised, settled", 103<<30, 1)
	check("nothing changed since", 103<<30, 0)

	// The same length, the modification time set back to the old one: the inode and the
	// change time tell.
	old := time.Now().Add(-time.Hour)
	writeMeta(t, dir, layer(2), fmt.Sprintf(`{"device_id":3,"size":%d,"transaction_id":3,"initialized":true,"deleted":false}`, 2<<30), old)
	writeMeta(t, dir, layer(1), fmt.Sprintf(`{"device_id":2,"size":%d,"transaction_id":2,"initialized":true,"deleted":false}`, 3<<30), old)
	wrote()
	check("same-length rewrites", 104<<30, 2)
	settle()
	check("same-length rewrites, settled", 104<<30, 2)
	check("nothing changed since the rewrites", 104<<30, 0)

	// Deleted (marked, then removed) and created devices.
	writeMeta(t, dir, layer(3), `{"device_id":4,"size":1073741824,"transaction_id":3,"initialized":true,"deleted":true}`, old)
	wrote()
	check("marked deleted", 103<<30, 1)
	if err := os.Remove(filepath.Join(dir, layer(3))); err != nil {
		t.Fatal(err)
	}
	check("removed", 103<<30, 0)
	writeMeta(t, dir, layer(500), `{"device_id":501,"size":5368709120,"transaction_id":9,"initialized":false,"deleted":false}`, old)
	wrote()
	check("created", 108<<30, 1)

	// An unreadable file counts nothing and is read again each time.
	writeMeta(t, dir, layer(501), `{"size":`, old)
	wrote()
	settle()
	check("malformed", 108<<30, 2) // and the one created above, now settled
	check("malformed, again", 108<<30, 1)
}

// The over-commit sum on a pool of 1,000 containers (a layer and its init each): a growth
// check's cost once the pool's files settled.
func BenchmarkProvisioned(b *testing.B) {
	be, _ := engineWithLayers(b, 2000)
	time.Sleep(racyWindow + 100*time.Millisecond)
	if _, err := be.Provisioned(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if got, err := be.Provisioned(); err != nil || got != 2001<<30 {
			b.Fatal(got, err)
		}
	}
}

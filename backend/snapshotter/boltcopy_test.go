package snapshotter

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
	bolt "go.etcd.io/bbolt"

	"github.com/dmsize/dmsize/backend/thinpool"
	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/kernel/dm"
)

// names lists a directory's entries ("" entries when it is absent).
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// Copies of containerd's databases are made under dmsize's state directory, where the next
// start finds what a kill left, never in the system's temporary directory; each is removed
// once read, whatever the read did.
func TestCopiesUnderStateDir(t *testing.T) {
	tmp, state := t.TempDir(), t.TempDir()
	t.Setenv("TMPDIR", tmp)
	r := fakeContainerd(t).Records
	r.copies = pluginCopies(state)
	var during []string
	err := r.copies.view(r.PoolDB(), func(*bolt.Tx) error {
		during = names(t, CopiesDir(state))
		if n := names(t, tmp); len(n) != 0 {
			t.Errorf("copies in the temporary directory: %v", n)
		}
		return errors.New("the read failed")
	})
	if err == nil || err.Error() != "the read failed" {
		t.Fatalf("view: %v", err)
	}
	if len(during) != 1 || filepath.Ext(during[0]) != ".db" || during[0][:len("plugin-")] != "plugin-" {
		t.Errorf("copies while reading: %v, want one plugin-*.db", during)
	}
	func() {
		defer func() { recover() }()
		r.copies.view(r.PoolDB(), func(*bolt.Tx) error { panic("a bug") })
	}()
	if n := names(t, CopiesDir(state)); len(n) != 0 {
		t.Errorf("copies left after the reads: %v", n)
	}
}

// leftovers lays out what killed copies left in the copies directory, and files that are not
// copies of this program.
func leftovers(t *testing.T, state string) {
	t.Helper()
	dir := CopiesDir(state)
	if err := os.MkdirAll(filepath.Join(dir, "plugin-dir.db"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"plugin-1.db", "plugin-2.db", "sync-1.db", "notes.txt", "plugin-3.db.keep"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// Each program clears the copies a kill left at its start: the plugin (New, and Repair before
// it serves) its own, containerd-sync its own; nothing else is deleted.
func TestCopiesClearedAtStart(t *testing.T) {
	set(t, &openPool, func(_ *dm.Control, name string) (*thinpool.Pool, error) { return &thinpool.Pool{Name: name}, nil })
	c := fakeContainerd(t)
	state := t.TempDir()
	leftovers(t, state)
	cfg := Config{ContainerdRoot: filepath.Dir(filepath.Dir(c.MetaDB)), Root: c.Root, StateDir: state}
	if _, err := New(nil, nil, engine.Storage{Snapshotter: "devmapper"}, cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := names(t, CopiesDir(state)), []string{"notes.txt", "plugin-3.db.keep", "plugin-dir.db", "sync-1.db"}; !slices.Equal(got, want) {
		t.Errorf("after New: %v, want %v", got, want)
	}

	leftovers(t, state)
	log, _ := test.NewNullLogger()
	Repair(nil, state, log)
	if got, want := names(t, CopiesDir(state)), []string{"notes.txt", "plugin-3.db.keep", "plugin-dir.db", "sync-1.db"}; !slices.Equal(got, want) {
		t.Errorf("after Repair: %v, want %v", got, want)
	}

	c.stop()
	if _, _, err := Sync(c.Root, state, time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := names(t, CopiesDir(state)), []string{"notes.txt", "plugin-3.db.keep", "plugin-dir.db"}; !slices.Equal(got, want) {
		t.Errorf("after Sync: %v, want %v", got, want)
	}
}

package sizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

func TestStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	l, _ := test.NewNullLogger()
	s, err := OpenStore(dir, l)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("ab", 32)
	if _, ok := s.Get(id); ok {
		t.Fatal("empty store has a record")
	}
	r := Record{ID: id, Name: "web", Device: "docker-254:0-1-" + strings.Repeat("cd", 32), Want: 42 << 30, Applied: 40 << 30}
	if err := s.Put(r); err != nil {
		t.Fatal(err)
	}
	got, ok := s.Get(id)
	if !ok || got.Want != r.Want || got.Device != r.Device || got.Updated.IsZero() {
		t.Fatalf("Get: %+v %v", got, ok)
	}
	if g := s.Granted(""); g != 42<<30 {
		t.Fatalf("Granted %d", g)
	}
	if g := s.Granted(id); g != 0 {
		t.Fatalf("Granted except itself %d", g)
	}
	os.WriteFile(filepath.Join(dir, "junk.txt"), []byte("x"), 0o600)
	// A fresh store reads what the first wrote.
	s2, err := OpenStore(dir, l)
	if err != nil || len(s2.All()) != 1 || s2.All()[0].Applied != 40<<30 {
		t.Fatalf("reopened: %+v %v", s2.All(), err)
	}
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(id); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	for _, bad := range []string{"../x", "", "ABC"} {
		if err := s.Put(Record{ID: bad}); err == nil {
			t.Errorf("Put(%q) accepted", bad)
		}
		if err := s.Delete(bad); err == nil {
			t.Errorf("Delete(%q) accepted", bad)
		}
	}
}

// One unreadable record is skipped and logged once; every other record is still there.
func TestStoreSkipsBadRecords(t *testing.T) {
	dir := t.TempDir()
	l, hook := test.NewNullLogger()
	s, _ := OpenStore(dir, l)
	good := Record{ID: id64(1), Want: 20 << 30}
	if err := s.Put(good); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, id64(2)+".json"), []byte(`{"id":"`), 0o600)
	os.WriteFile(filepath.Join(dir, id64(3)+".json"), []byte(`{"id":"`+id64(4)+`"}`), 0o600)
	s, err := OpenStore(dir, l)
	if err != nil {
		t.Fatal(err)
	}
	if all := s.All(); len(all) != 1 || all[0].ID != good.ID {
		t.Fatalf("records %+v", all)
	}
	n := 0
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.ErrorLevel && strings.Contains(e.Message, "unreadable record") {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d error lines for two bad records", n)
	}
	if _, err := OpenStore(filepath.Join(dir, id64(1)+".json", "x"), l); err == nil {
		t.Fatal("a store under a file opened")
	}
}

// A record that cannot be written leaves the index as it was.
func TestStorePutFailure(t *testing.T) {
	dir := t.TempDir()
	l, _ := test.NewNullLogger()
	s, _ := OpenStore(dir, l)
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if os.Getuid() == 0 {
		// root writes anyway; a missing directory fails for everyone
		os.Chmod(dir, 0o700)
		os.RemoveAll(dir)
	}
	if err := s.Put(Record{ID: id64(1), Want: 1}); err == nil {
		t.Fatal("Put into an unwritable directory succeeded")
	}
	if _, ok := s.Get(id64(1)); ok {
		t.Fatal("the index has a record that was never written")
	}
}

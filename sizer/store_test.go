package sizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("ab", 32)
	if _, ok, err := s.Get(id); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	r := Record{ID: id, Name: "web", Device: "docker-254:0-1-" + strings.Repeat("cd", 32), Want: 42 << 30, Applied: 42 << 30}
	if err := s.Put(r); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(id)
	if !ok || err != nil || got.Want != r.Want || got.Device != r.Device || got.Updated.IsZero() {
		t.Fatalf("Get: %+v %v %v", got, ok, err)
	}
	os.WriteFile(filepath.Join(dir, "junk.txt"), []byte("x"), 0o600)
	all, err := s.All()
	if err != nil || len(all) != 1 {
		t.Fatalf("All: %v %v", all, err)
	}
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(id); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	for _, bad := range []string{"../x", "", "ABC"} {
		if _, _, err := s.Get(bad); err == nil {
			t.Errorf("Get(%q) accepted", bad)
		}
	}
}

package sizer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"
)

// Whatever a record file holds, opening the store neither panics nor fails: a record that
// does not parse, or names another container, is left out; one that loads round-trips.
func FuzzRecordFile(f *testing.F) {
	f.Add([]byte(`{"id":"` + id64(1) + `","want":45097156608,"applied":45097156608}`))
	f.Add([]byte(`{"id":"` + id64(2) + `"}`))
	f.Add([]byte(`{"id":`))
	f.Add([]byte(`{"id":"` + id64(1) + `","want":-1,"applied":1e300}`))
	f.Add([]byte("\xff\xfe"))
	l, _ := test.NewNullLogger()
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, id64(1)+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenStore(dir, l)
		if err != nil {
			t.Fatalf("OpenStore: %v", err)
		}
		all := s.All()
		if len(all) > 1 || (len(all) == 1 && all[0].ID != id64(1)) {
			t.Fatalf("records %+v", all)
		}
		if len(all) == 1 {
			if err := s.Put(all[0]); err != nil {
				t.Fatal(err)
			}
			s2, _ := OpenStore(dir, l)
			if got, ok := s2.Get(id64(1)); !ok || got.Want != all[0].Want || got.Applied != all[0].Applied {
				t.Fatalf("round trip: %+v", got)
			}
		}
	})
}

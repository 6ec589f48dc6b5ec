package badinput

import (
	"slices"
	"testing"
)

func TestStrings(t *testing.T) {
	seeds := []string{`{"a":"42G"}`, "/v1.41/containers/create", ""}
	got := Strings(seeds, 2000)
	if len(got) != 2000 || !slices.Equal(got[:3], seeds) {
		t.Fatalf("%d cases, first %q", len(got), got[:3])
	}
	if again := Strings(seeds, 2000); !slices.Equal(got, again) {
		t.Fatal("two runs made different cases: a failure would not repeat")
	}
	distinct := map[string]bool{}
	for _, s := range got {
		distinct[s] = true
	}
	if len(distinct) < 1500 {
		t.Fatalf("only %d distinct cases of 2000", len(distinct))
	}
	if n := len(Strings(seeds, 1)); n != 3 {
		t.Fatalf("fewer cases than seeds asked: %d, want the 3 seeds", n)
	}
}

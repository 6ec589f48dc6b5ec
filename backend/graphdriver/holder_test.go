package graphdriver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHolder(t *testing.T) {
	dir := t.TempDir()
	set(t, &node, func(name string) string { return filepath.Join(dir, name) })
	for _, n := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := NewHolder()
	if h.Count() != 0 || h.Held("a") {
		t.Fatalf("a new holder holds %d", h.Count())
	}
	for _, n := range []string{"a", "b", "a"} {
		if err := h.Hold(n); err != nil {
			t.Fatal(err)
		}
	}
	fa := h.files["a"]
	if h.Count() != 2 || !h.Held("a") || !h.Held("b") || fa.Name() != filepath.Join(dir, "a") {
		t.Fatalf("after holding a, b, a: %d held, %v", h.Count(), h.files)
	}
	// Holding a held device again keeps its file: one open per device.
	if err := h.Hold("a"); err != nil || h.files["a"] != fa {
		t.Errorf("holding a again: %v, file %p, was %p", err, h.files["a"], fa)
	}

	err := h.Hold("c")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "holding device c open") {
		t.Errorf("holding a device without a node: %v", err)
	}
	if h.Held("c") || h.Count() != 2 {
		t.Errorf("c held after its failure, or count %d", h.Count())
	}

	if !h.Release("a") {
		t.Error("Release of held a: false")
	}
	if _, err := fa.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("a's file still open after Release (stat: %v)", err)
	}
	if h.Release("a") || h.Release("c") {
		t.Error("Release of a device not held: true")
	}
	if h.Held("a") || !h.Held("b") || h.Count() != 1 {
		t.Errorf("after releasing a: a held %v, b held %v, count %d", h.Held("a"), h.Held("b"), h.Count())
	}
}

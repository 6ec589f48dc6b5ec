package fs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Grow checks its arguments before touching anything; the real growing is in fs_vm_test.go.
func TestGrowRejectsNonDevices(t *testing.T) {
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, image(t, "xfs-4k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Grow(p, 1<<30); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Fatalf("Grow(regular file) = %v", err)
	}
	if _, err := Grow(p, 0); err == nil || !strings.Contains(err.Error(), "invalid size") {
		t.Fatalf("Grow(size 0) = %v", err)
	}
}

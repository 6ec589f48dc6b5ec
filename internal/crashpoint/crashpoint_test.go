package crashpoint

import (
	"os"
	"path/filepath"
	"testing"
)

func TestArm(t *testing.T) {
	p := filepath.Join(t.TempDir(), "crash-at")
	if step, err := Arm(p); err != nil || step != "" || armed.Load() != nil {
		t.Fatalf("missing file armed %q, %v", step, err)
	}
	os.WriteFile(p, []byte("fs-grown\n"), 0o600)
	if step, err := Arm(p); err != nil || step != "fs-grown" {
		t.Fatalf("armed %q, %v", step, err)
	}
	Here("another-step") // must return: armed for a different step
	armed.Store(nil)
}

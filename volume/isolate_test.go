package volume

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// Outside the plugin (its propagatedMount is no mount point) Isolate changes no mount: run by
// mistake on a host, it must not make the host's data root a slave or detach its plugins'
// propagated-mount directories.
func TestIsolateOutsideThePlugin(t *testing.T) {
	root := t.TempDir()
	log, hook := test.NewNullLogger()
	if err := Isolate(root, filepath.Join(root, "mnt", "volumes"), log); err != nil {
		t.Fatal(err)
	}
	if e := hook.LastEntry(); e == nil || e.Level != logrus.InfoLevel || !strings.Contains(e.Message, "not in the plugin") {
		t.Fatalf("log: %+v", hook.AllEntries())
	}
}

// Inside the plugin (here: "/" stands for a propagatedMount that is a mount point), a data root
// that cannot be made a slave (a plain directory is no mount) stops Isolate before it detaches
// anything: a detach there would reach the host.
func TestIsolateStopsWithoutSlave(t *testing.T) {
	root := t.TempDir()
	log, hook := test.NewNullLogger()
	err := Isolate(root, "/", log)
	if err == nil || !strings.HasPrefix(err.Error(), "isolating the data root: make rslave "+root) {
		t.Fatalf("Isolate: %v", err)
	}
	if len(hook.AllEntries()) != 0 {
		t.Fatalf("log: %+v", hook.AllEntries())
	}
}

// Kernel's answers that need no device and change no mount.
func TestKernelWithoutDevices(t *testing.T) {
	var k Kernel
	dir := t.TempDir()
	if err := k.Make(filepath.Join(dir, "nodev"), "btrfs"); err == nil || !strings.Contains(err.Error(), `unknown type "btrfs"`) {
		t.Fatalf("Make: %v", err)
	}
	if m, err := k.Mounted(dir); err != nil || m {
		t.Fatalf("Mounted(%s) = %v, %v", dir, m, err)
	}
	if m, err := k.Mounted("/"); err != nil || !m {
		t.Fatalf("Mounted(/) = %v, %v", m, err)
	}
	// A device that is not active has no mounts.
	if p, err := k.MountPoints(filepath.Join(dir, "dmsize-vol-1"), false); err != nil || p != nil {
		t.Fatalf("MountPoints = %q, %v", p, err)
	}
	if err := k.Grow(filepath.Join(dir, "dmsize-vol-1"), G); err == nil {
		t.Fatal("Grow of no device")
	}
}

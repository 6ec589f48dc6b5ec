package volume

import (
	"path/filepath"
	"testing"
)

// Kernel passes what is not there through as the kernel answers it, and changes nothing:
// the mounts themselves run in the VM (TestVolumes).
func TestKernelOnWhatIsNotThere(t *testing.T) {
	dir := t.TempDir()
	k := Kernel{}
	if err := k.Mount(filepath.Join(dir, "no-such-device"), dir, "ext4"); err == nil {
		t.Fatal("mounting a device that does not exist succeeded")
	}
	if err := k.Unmount(dir); err != nil {
		t.Fatalf("unmounting a directory that is no mount point: %v", err)
	}
	if m, err := k.Mounted(dir); m || err != nil {
		t.Fatalf("Mounted(%s) = %v, %v", dir, m, err)
	}
	if p, err := k.MountPoints(filepath.Join(dir, "no-such-device"), false); p != nil || err != nil {
		t.Fatalf("MountPoints of a device that is not active = %v, %v", p, err)
	}
}

package volume

import (
	"errors"
	"os"

	"github.com/dmsize/dmsize/kernel/fs"
)

// Kernel is the volumes' Filesystems on the real kernel.
type Kernel struct{}

var _ Filesystems = Kernel{}

func (Kernel) Make(dev, t string) error          { return fs.Make(dev, fs.Type(t)) }
func (Kernel) Mount(dev, dir, t string) error    { return fs.Mount(dev, dir, fs.Type(t)) }
func (Kernel) Unmount(dir string) error          { return fs.Unmount(dir) }
func (Kernel) Mounted(dir string) (bool, error)  { return fs.IsMountPoint(dir) }
func (Kernel) Grow(dev string, size int64) error { _, err := fs.Grow(dev, size); return err }

// MountPoints lists dev's mounts (with unsharedOnly, those in no peer group); a device that is
// not active has none.
func (Kernel) MountPoints(dev string, unsharedOnly bool) ([]string, error) {
	points, err := fs.MountPointsOf(dev, unsharedOnly)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return points, err
}

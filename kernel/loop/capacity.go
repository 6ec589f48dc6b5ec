package loop

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Capacity returns the size of block device dev in bytes.
func Capacity(dev string) (int64, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("capacity of %s: %w", dev, err)
	}
	defer f.Close()
	n, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return 0, fmt.Errorf("capacity of %s: %w", dev, &os.PathError{Op: "BLKGETSIZE64", Path: dev, Err: err})
	}
	return int64(n), nil
}

// SetCapacity makes loop device dev re-read the size of its backing file, so that a grown file
// becomes a grown device without detaching it.
func SetCapacity(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("set capacity of %s: %w", dev, err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		return fmt.Errorf("set capacity of %s: %w", dev, &os.PathError{Op: "LOOP_SET_CAPACITY", Path: dev, Err: err})
	}
	return nil
}

package loop

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// controlPath is the loop driver's control device.
var controlPath = "/dev/loop-control"

// Attach attaches file path to a free loop device with autoclear set, and returns the device's
// path and an open handle of it. Autoclear detaches the device at its last close: the caller
// keeps the handle until something else opens the device (a device-mapper table), so that a
// crash at any point leaves no loop device nobody uses. Another attach racing for the same
// free device makes LOOP_CONFIGURE fail with EBUSY: Attach then asks for another.
func Attach(path string) (string, *os.File, error) {
	backing, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("attach %s: %w", path, err)
	}
	defer backing.Close()
	ctl, err := os.OpenFile(controlPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("attach %s: %w", path, err)
	}
	defer ctl.Close()
	for range 8 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", nil, fmt.Errorf("attach %s: LOOP_CTL_GET_FREE: %w", path, err)
		}
		dev := "/dev/loop" + strconv.Itoa(n)
		f, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", nil, fmt.Errorf("attach %s: %w", path, err)
		}
		cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		err = unix.IoctlLoopConfigure(int(f.Fd()), &cfg)
		if errors.Is(err, unix.EBUSY) {
			f.Close()
			continue
		}
		if err != nil {
			f.Close()
			return "", nil, fmt.Errorf("attach %s to %s: LOOP_CONFIGURE: %w", path, dev, err)
		}
		return dev, f, nil
	}
	return "", nil, fmt.Errorf("attach %s: every free loop device was taken by another attach", path)
}

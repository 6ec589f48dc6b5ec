package loop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// controlPath is the loop driver's control device, devDir where its devices are.
var controlPath, devDir = "/dev/loop-control", "/dev"

// ioctls are the loop driver's calls that Attach and FindByFile make; the unit tests put a fake kernel here.
var ioctls = struct {
	getFree   func(ctl int) (int, error)
	configure func(dev, backing int) error // LOOP_CONFIGURE with autoclear
	setFD     func(dev, backing int) error
	autoclear func(dev int) error // LOOP_SET_STATUS64 with autoclear
	clear     func(dev int) error
	getStatus func(dev int) (*unix.LoopInfo64, error)
}{
	getFree: func(ctl int) (int, error) { return unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE) },
	configure: func(dev, backing int) error {
		cfg := unix.LoopConfig{Fd: uint32(backing)}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		return unix.IoctlLoopConfigure(dev, &cfg)
	},
	setFD: func(dev, backing int) error { return unix.IoctlSetInt(dev, unix.LOOP_SET_FD, backing) },
	autoclear: func(dev int) error {
		return unix.IoctlLoopSetStatus64(dev, &unix.LoopInfo64{Flags: unix.LO_FLAGS_AUTOCLEAR})
	},
	clear:     func(dev int) error { return unix.IoctlSetInt(dev, unix.LOOP_CLR_FD, 0) },
	getStatus: unix.IoctlLoopGetStatus64,
}

// legacy is set once the kernel has answered LOOP_CONFIGURE (Linux 5.8) as a command it does
// not know: Attach then takes LOOP_SET_FD and LOOP_SET_STATUS64, which every kernel has. The
// VM tests set it to run that path on kernels that have both.
var legacy atomic.Bool

// Legacy says whether Attach takes the two-step path (the kernel lacks LOOP_CONFIGURE).
func Legacy() bool { return legacy.Load() }

// Attach attaches file path to a free loop device with autoclear set, and returns the device's
// path and an open handle of it. Autoclear detaches the device at its last close: the caller
// keeps the handle until something else opens the device (a device-mapper table), so that a
// crash leaves no loop device nobody uses. Another attach racing for the same free device
// makes the attach fail with EBUSY: Attach then asks for another.
//
// On the two-step path a crash between the steps leaves the file attached without autoclear.
// Attach first detaches any such device of path that no device-mapper table holds.
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
	if legacy.Load() {
		if err := detachLeftovers(path); err != nil {
			return "", nil, fmt.Errorf("attach %s: %w", path, err)
		}
	}
	for range 8 {
		n, err := ioctls.getFree(int(ctl.Fd()))
		if err != nil {
			return "", nil, fmt.Errorf("attach %s: LOOP_CTL_GET_FREE: %w", path, err)
		}
		dev := filepath.Join(devDir, "loop"+strconv.Itoa(n))
		f, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", nil, fmt.Errorf("attach %s: %w", path, err)
		}
		err = configure(int(f.Fd()), int(backing.Fd()))
		if errors.Is(err, unix.EBUSY) {
			f.Close()
			continue
		}
		if err != nil {
			f.Close()
			return "", nil, fmt.Errorf("attach %s to %s: %w", path, dev, err)
		}
		return dev, f, nil
	}
	return "", nil, fmt.Errorf("attach %s: every free loop device was taken by another attach", path)
}

// configure attaches backing to the loop device dev with autoclear: LOOP_CONFIGURE, or where
// the kernel does not know it (EINVAL before 5.8, or ENOTTY) LOOP_SET_FD then LOOP_SET_STATUS64.
func configure(dev, backing int) error {
	if !legacy.Load() {
		err := ioctls.configure(dev, backing)
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
			return wrapIoctl("LOOP_CONFIGURE", err)
		}
		legacy.Store(true)
	}
	if err := ioctls.setFD(dev, backing); err != nil {
		return wrapIoctl("LOOP_SET_FD", err)
	}
	if err := ioctls.autoclear(dev); err != nil {
		if cerr := ioctls.clear(dev); cerr != nil {
			return fmt.Errorf("LOOP_SET_STATUS64: %w; and LOOP_CLR_FD: %v", err, cerr)
		}
		return wrapIoctl("LOOP_SET_STATUS64", err)
	}
	return nil
}

func wrapIoctl(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// detachLeftovers detaches the loop devices of path that a crash between LOOP_SET_FD and
// LOOP_SET_STATUS64 left: without autoclear, and held by no device-mapper table. LOOP_CLR_FD
// on a device that something still has open only sets autoclear: nothing loses its device.
func detachLeftovers(path string) error {
	devs, err := FindByFile(path)
	if err != nil {
		return err
	}
	for _, dev := range devs {
		info, err := status(dev)
		if errors.Is(err, unix.ENXIO) {
			continue
		}
		if err != nil {
			return err
		}
		holders, err := os.ReadDir(filepath.Join(sysBlock, filepath.Base(dev), "holders"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if info.Flags&unix.LO_FLAGS_AUTOCLEAR != 0 || len(holders) > 0 {
			continue
		}
		f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = ioctls.clear(int(f.Fd()))
		f.Close()
		if err != nil && !errors.Is(err, unix.ENXIO) {
			return fmt.Errorf("detach %s, left attached to %s without autoclear: LOOP_CLR_FD: %w", dev, path, err)
		}
	}
	return nil
}

package fs

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/kernel/errs"
)

// grower grows the filesystem on dev, mounted at root, to newSize bytes, and reports its size
// before and after. It refuses to shrink with an *errs.Refusal.
type grower func(dev string, root *os.File, newSize int64) (before, after int64, err error)

var growers = map[Type]grower{Ext4: growExt4, XFS: growXFS}

// Grow grows the filesystem on block device dev online to fill newSize bytes (normally the
// device's new size, rounded down to whole filesystem blocks). A filesystem mounted in this
// mount namespace is grown where it is; otherwise Grow mounts it in a private namespace for the
// duration. It never shrinks: a smaller newSize returns an *errs.Refusal and changes nothing.
// The same size is a no-op.
func Grow(dev string, newSize int64) (Result, error) {
	start := time.Now()
	res, err := grow(dev, newSize)
	res.Duration = time.Since(start)
	return res, err
}

func grow(dev string, newSize int64) (Result, error) {
	if newSize <= 0 {
		return Result{}, fmt.Errorf("grow filesystem on %s: invalid size %d", dev, newSize)
	}
	rdev, err := blockDevice(dev)
	if err != nil {
		return Result{}, fmt.Errorf("grow filesystem on %s: %w", dev, err)
	}
	sb, err := ReadSuper(dev)
	if err != nil {
		return Result{}, fmt.Errorf("grow filesystem: %w", err)
	}
	res := Result{Type: sb.Type, Before: sb.Size(), After: sb.Size()}
	g := growers[sb.Type]

	// Checked on the superblock first so that an unmounted filesystem is not mounted (mounting
	// writes: journal replay, mount counts) only to find nothing to do. A mounted xfs's
	// superblock can only lag behind, so a shrink seen here is real; the growers check again
	// against the live filesystem.
	unchanged, err := checkGrow(dev, sb.BlockSize, sb.Blocks, newSize)
	if err != nil {
		return res, err
	}
	devSize, err := deviceSize(dev)
	if err != nil {
		return res, fmt.Errorf("grow %s on %s: %w", sb.Type, dev, err)
	}
	if newSize > devSize {
		return res, fmt.Errorf("grow %s on %s from %d to %d bytes: the device has only %d bytes",
			sb.Type, dev, sb.Size(), newSize, devSize)
	}

	root, err := openMounted(rdev)
	if err != nil {
		return res, fmt.Errorf("grow %s on %s: find its mount: %w", sb.Type, dev, err)
	}
	if root != nil {
		defer root.Close()
		res.Mounted = true
		res.Before, res.After, err = g(dev, root, newSize)
		return res, err
	}
	if unchanged {
		return res, nil
	}
	err = withPrivateMount(dev, rdev, sb.Type, func(root *os.File) error {
		var gerr error
		res.Before, res.After, gerr = g(dev, root, newSize)
		return gerr
	})
	return res, err
}

// checkGrow is the one place of the never-shrink rule: growing the filesystem on dev of
// blocks blocks of blockSize bytes to newSize bytes is refused with an *errs.Refusal if
// it would shrink it, and unchanged when it would keep its block count.
func checkGrow(dev string, blockSize uint32, blocks uint64, newSize int64) (unchanged bool, err error) {
	newBlocks := uint64(newSize) / uint64(blockSize)
	if newBlocks < blocks {
		return false, errs.Shrink("filesystem on "+dev, int64(blocks)*int64(blockSize), newSize)
	}
	return newBlocks == blocks, nil
}

// blockDevice returns the device number of block device node dev.
func blockDevice(dev string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: dev, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, fmt.Errorf("%s is not a block device", dev)
	}
	return uint64(st.Rdev), nil
}

// deviceSize returns the size of block device dev in bytes.
func deviceSize(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return 0, &os.PathError{Op: "BLKGETSIZE64", Path: dev, Err: err}
	}
	return int64(n), nil
}

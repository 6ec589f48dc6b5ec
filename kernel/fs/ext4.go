package fs

import (
	"fmt"
	"os"
	"unsafe"
)

// growExt4 grows the ext4 mounted at root (on dev) to newSize bytes. Its size is read from the
// superblock through the page cache, which a mounted ext4 keeps up to date.
func growExt4(dev string, root *os.File, newSize int64) (before, after int64, err error) {
	sb, err := ReadSuper(dev)
	if err != nil {
		return 0, 0, err
	}
	before = sb.Size()
	if unchanged, err := checkGrow(dev, sb.BlockSize, sb.Blocks, newSize); err != nil || unchanged {
		return before, before, err
	}
	newBlocks := uint64(newSize) / uint64(sb.BlockSize)
	if err := ioctlPtr(root, ext4IocResizeFS, unsafe.Pointer(&newBlocks)); err != nil {
		return before, before, fmt.Errorf("ext4 on %s: EXT4_IOC_RESIZE_FS from %d to %d bytes (%d blocks of %d): %w",
			dev, before, newSize, newBlocks, sb.BlockSize, err)
	}
	if sb, err = ReadSuper(dev); err != nil {
		return before, 0, err
	}
	return before, sb.Size(), nil
}

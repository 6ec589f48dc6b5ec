package fs

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Usage is a filesystem's size and use as its kernel reports it.
type Usage struct {
	Size, Used int64
	Mounted    bool // visible as mounted in this mount namespace: Used is live
}

// UsageOf reads the filesystem on block device dev: from statfs when it is mounted here, else
// its size from the superblock (Used unknown, 0). It never mounts anything.
func UsageOf(dev string) (Usage, error) {
	rdev, err := blockDevice(dev)
	if err != nil {
		return Usage{}, fmt.Errorf("filesystem on %s: %w", dev, err)
	}
	root, err := openMounted(rdev)
	if err != nil {
		return Usage{}, fmt.Errorf("filesystem on %s: %w", dev, err)
	}
	if root == nil {
		sb, err := ReadSuper(dev)
		if err != nil {
			return Usage{}, err
		}
		return Usage{Size: sb.Size()}, nil
	}
	defer root.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(root.Fd()), &st); err != nil {
		return Usage{}, fmt.Errorf("statfs of the filesystem on %s: %w", dev, err)
	}
	bs := int64(st.Bsize)
	return Usage{Size: int64(st.Blocks) * bs, Used: int64(st.Blocks-st.Bfree) * bs, Mounted: true}, nil
}

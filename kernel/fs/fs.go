// Package fs reads filesystem superblocks and grows mounted or unmounted ext4 and xfs
// filesystems online, through the kernel's own resize ioctls.
package fs

import "time"

// Type is a filesystem type, spelled as mount(2) wants it.
type Type string

const (
	Ext4 Type = "ext4" // also ext2 and ext3: the ext4 driver mounts and resizes them
	XFS  Type = "xfs"
)

// Super is what the on-disk superblock says about a filesystem's size.
type Super struct {
	Type      Type
	BlockSize uint32 // bytes
	Blocks    uint64 // filesystem blocks
	Features  Features
}

// Size is the filesystem's size in bytes.
func (s Super) Size() int64 { return int64(s.BlockSize) * int64(s.Blocks) }

// Result describes one Grow.
type Result struct {
	Type          Type
	Before, After int64 // filesystem size in bytes
	Mounted       bool  // the filesystem was already mounted here; else Grow mounted it privately
	Duration      time.Duration
}

package fs

import (
	"fmt"
	"os"
	"unsafe"
)

// xfsGeomV1 mirrors struct xfs_fsop_geom_v1 (xfs_fs.h), the answer to XFS_IOC_FSGEOMETRY_V1.
// The v1 layout is the one every kernel still answers, and it holds all Grow needs.
type xfsGeomV1 struct {
	BlockSize    uint32 // data block size, bytes
	RTExtSize    uint32
	AGBlocks     uint32
	AGCount      uint32
	LogBlocks    uint32
	SectSize     uint32
	InodeSize    uint32
	IMaxPct      uint32 // max % of space for inodes; growfs must be told it again
	DataBlocks   uint64 // data subvolume size, blocks
	RTBlocks     uint64
	RTExtents    uint64
	LogStart     uint64
	UUID         [16]byte
	SUnit        uint32
	SWidth       uint32
	Version      int32
	Flags        uint32
	LogSectSize  uint32
	RTSectSize   uint32
	DirBlockSize uint32
}

// xfsGrowFSData mirrors struct xfs_growfs_data, the argument of XFS_IOC_FSGROWFSDATA.
type xfsGrowFSData struct {
	NewBlocks uint64
	IMaxPct   uint32
}

func (g xfsGeomV1) size() int64 { return int64(g.BlockSize) * int64(g.DataBlocks) }

func xfsGeometry(dev string, root *os.File) (xfsGeomV1, error) {
	var g xfsGeomV1
	if err := ioctlPtr(root, xfsIocFSGeometryV1, unsafe.Pointer(&g)); err != nil {
		return g, fmt.Errorf("xfs on %s: XFS_IOC_FSGEOMETRY_V1 on %s: %w", dev, root.Name(), err)
	}
	return g, nil
}

// growXFS grows the xfs mounted at root to newSize bytes. The size comes from the kernel's
// geometry: the on-disk superblock lags behind a mounted xfs.
func growXFS(dev string, root *os.File, newSize int64) (before, after int64, err error) {
	g, err := xfsGeometry(dev, root)
	if err != nil {
		return 0, 0, err
	}
	before = g.size()
	if unchanged, err := checkGrow(dev, g.BlockSize, g.DataBlocks, newSize); err != nil || unchanged {
		return before, before, err
	}
	newBlocks := uint64(newSize) / uint64(g.BlockSize)
	arg := xfsGrowFSData{NewBlocks: newBlocks, IMaxPct: g.IMaxPct}
	if err := ioctlPtr(root, xfsIocFSGrowFSData, unsafe.Pointer(&arg)); err != nil {
		return before, before, fmt.Errorf("xfs on %s: XFS_IOC_FSGROWFSDATA from %d to %d bytes (%d blocks of %d): %w",
			dev, before, newSize, newBlocks, g.BlockSize, err)
	}
	if g, err = xfsGeometry(dev, root); err != nil {
		return before, 0, err
	}
	// xfs may stop short of newBlocks: it drops a last allocation group too small to be useful.
	return before, g.size(), nil
}

package fs

import (
	"testing"
	"unsafe"
)

// Known values from xfs_fs.h and fs/ext4/ext4.h on 64-bit architectures, checked with a C
// compiler against xfslibs-dev's headers.
func TestIoctlNumbers(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the known values are for 64-bit architectures")
	}
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"EXT4_IOC_RESIZE_FS", ext4IocResizeFS, 0x40086610},
		{"XFS_IOC_FSGEOMETRY_V1", xfsIocFSGeometryV1, 0x80705864},
		{"XFS_IOC_FSGROWFSDATA", xfsIocFSGrowFSData, 0x4010586e},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}

// The Go mirrors must have the C layout: sizeof and the offsets of the fields Grow uses.
func TestXFSStructLayout(t *testing.T) {
	var g xfsGeomV1
	var d xfsGrowFSData
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"offsetof(imaxpct)", unsafe.Offsetof(g.IMaxPct), 28},
		{"offsetof(datablocks)", unsafe.Offsetof(g.DataBlocks), 32},
		{"offsetof(uuid)", unsafe.Offsetof(g.UUID), 64},
		{"offsetof(dirblocksize)", unsafe.Offsetof(g.DirBlockSize), 104},
		{"offsetof(newblocks)", unsafe.Offsetof(d.NewBlocks), 0},
		{"offsetof(growfs imaxpct)", unsafe.Offsetof(d.IMaxPct), 8},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
	// C pads both structs to the alignment of __u64, which is 4 on 386.
	align := unsafe.Alignof(uint64(0))
	if got, want := unsafe.Sizeof(g), (108+align-1)/align*align; got != want {
		t.Errorf("sizeof(xfs_fsop_geom_v1) = %d, want %d", got, want)
	}
	if got, want := unsafe.Sizeof(d), (12+align-1)/align*align; got != want {
		t.Errorf("sizeof(xfs_growfs_data) = %d, want %d", got, want)
	}
}

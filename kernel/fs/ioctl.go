package fs

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl request numbers, built like the kernel's _IOR/_IOW macros in the asm-generic layout
// (amd64, arm64, arm, 386, riscv64, s390x; powerpc, mips and sparc lay the bits out differently).
const (
	iocNRBits   = 8
	iocTypeBits = 8
	iocSizeBits = 14

	iocTypeShift = iocNRBits
	iocSizeShift = iocTypeShift + iocTypeBits
	iocDirShift  = iocSizeShift + iocSizeBits

	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, typ, nr, size uintptr) uintptr {
	return dir<<iocDirShift | size<<iocSizeShift | typ<<iocTypeShift | nr
}

// iow is _IOW: the caller passes size bytes in.
func iow(typ byte, nr, size uintptr) uintptr { return ioc(iocWrite, uintptr(typ), nr, size) }

// ior is _IOR: the kernel fills size bytes in.
func ior(typ byte, nr, size uintptr) uintptr { return ioc(iocRead, uintptr(typ), nr, size) }

// The sizes come from the Go mirrors of the C structs, so they follow the C ABI of each
// architecture (the xfs structs are 4 bytes shorter where uint64 is 4-aligned).
var (
	ext4IocResizeFS    = iow('f', 16, 8) // __u64 new block count
	xfsIocFSGeometryV1 = ior('X', 100, unsafe.Sizeof(xfsGeomV1{}))
	xfsIocFSGrowFSData = iow('X', 110, unsafe.Sizeof(xfsGrowFSData{}))
)

// ioctlPtr runs an ioctl whose argument is a pointer to arg.
func ioctlPtr(f *os.File, req uintptr, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

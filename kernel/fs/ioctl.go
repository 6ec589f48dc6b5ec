package fs

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/kernel/ioc"
)

// The sizes come from the Go mirrors of the C structs, so they follow the C ABI of each
// architecture (the xfs structs are 4 bytes shorter where uint64 is 4-aligned).
var (
	ext4IocResizeFS    = ioc.IOW('f', 16, 8) // __u64 new block count
	xfsIocFSGeometryV1 = ioc.IOR('X', 100, unsafe.Sizeof(xfsGeomV1{}))
	xfsIocFSGrowFSData = ioc.IOW('X', 110, unsafe.Sizeof(xfsGrowFSData{}))
)

// ioctlPtr runs an ioctl whose argument is a pointer to arg.
func ioctlPtr(f *os.File, req uintptr, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

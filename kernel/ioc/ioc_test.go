package ioc

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Numbers x/sys/unix generated from the kernel headers of this very architecture, one per
// direction (FS_IOC_SETFLAGS takes a long, the size of a pointer on Linux).
func TestNumbersMatchTheKernelHeaders(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"BLKGETSIZE64 (_IOR)", IOR(0x12, 114, 8), unix.BLKGETSIZE64},
		{"FS_IOC_SETFLAGS (_IOW)", IOW('f', 2, unsafe.Sizeof(uintptr(0))), unix.FS_IOC_SETFLAGS},
		{"FS_IOC_SET_ENCRYPTION_POLICY (_IOR, as the kernel defines it)", IOR('f', 19, 12), unix.FS_IOC_SET_ENCRYPTION_POLICY},
		{"DM_VERSION (_IOWR)", IOWR(0xfd, 0, 312), 0xc138fd00},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}

// Package ioc builds ioctl request numbers as the kernel's _IOR, _IOW and _IOWR macros do
// (include/uapi/asm-generic/ioctl.h): the one encoder of the kernel layer. The layout is the
// generic one (amd64, arm64, arm, 386, riscv64, s390x); powerpc, mips and sparc put the
// direction bits elsewhere, and dmsize is not built for them.
package ioc

const (
	nrBits   = 8
	typeBits = 8
	sizeBits = 14

	typeShift = nrBits
	sizeShift = typeShift + typeBits
	dirShift  = sizeShift + sizeBits

	dirWrite = 1 // the caller passes the argument in
	dirRead  = 2 // the kernel fills the argument in
)

func number(dir, typ, nr, size uintptr) uintptr {
	return dir<<dirShift | size<<sizeShift | typ<<typeShift | nr
}

// IOW is _IOW(typ, nr, size): size bytes go in.
func IOW(typ byte, nr, size uintptr) uintptr { return number(dirWrite, uintptr(typ), nr, size) }

// IOR is _IOR(typ, nr, size): the kernel fills size bytes.
func IOR(typ byte, nr, size uintptr) uintptr { return number(dirRead, uintptr(typ), nr, size) }

// IOWR is _IOWR(typ, nr, size): size bytes go in and come back.
func IOWR(typ byte, nr, size uintptr) uintptr {
	return number(dirRead|dirWrite, uintptr(typ), nr, size)
}

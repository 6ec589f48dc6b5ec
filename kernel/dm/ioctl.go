//go:build linux

package dm

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// request is one dm ioctl to make.
type request struct {
	cmd         uintptr
	name, uuid  string
	flags       uint32
	targetCount uint32
	payload     []byte // written at data_start
	room        int    // output space to offer first; doubled while the kernel says the buffer is full
	grow        bool   // retry with a larger buffer on DM_BUFFER_FULL_FLAG (only for commands without side effects)
}

const (
	defaultRoom = 16 << 10
	maxBuffer   = 32 << 20 // far beyond any table or device list we expect
)

// reply is the kernel's answer: the header and the output area.
type reply struct {
	header
	data []byte
}

// do runs r on fd, growing the buffer while the kernel reports it full. The header and any
// partial answer come back with the error too, so that callers can read the kernel's version
// from a refused call.
func do(fd int, r request) (reply, error) {
	room := max(r.room, len(r.payload))
	for {
		buf := make([]byte, headerSize+align8(room))
		h := header{
			Version:     ourVersion,
			DataSize:    uint32(len(buf)),
			DataStart:   headerSize,
			TargetCount: r.targetCount,
			Flags:       r.flags,
			Name:        r.name,
			UUID:        r.uuid,
		}
		h.marshal(buf)
		copy(buf[headerSize:], r.payload)

		err := ioctl(fd, ioctlNumber(r.cmd), buf, r.cmd != cmdTargetMsg)
		out, herr := unmarshalHeader(buf)
		if herr != nil {
			return reply{}, herr
		}
		if err != nil {
			return reply{header: out}, err
		}
		if out.Flags&flagBufferFull != 0 {
			if !r.grow {
				return reply{header: out}, errors.New("kernel's answer did not fit the buffer")
			}
			if len(buf) >= maxBuffer {
				return reply{header: out}, fmt.Errorf("kernel's answer does not fit %d bytes", len(buf))
			}
			room = 2 * len(buf)
			continue
		}
		data, err := out.payload(buf)
		if err != nil {
			return reply{header: out}, err
		}
		return reply{header: out, data: data}, nil
	}
}

// ioctl issues one dm ioctl. EINTR is retried when retry is set: the kernel returns it when a
// signal (Go's preemption signal included) interrupts a suspend, which it then rolls back, so
// the call can simply be made again. Messages are not retried: their effects are the target's.
func ioctl(fd int, req uintptr, buf []byte, retry bool) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(&buf[0])))
		if errno == unix.EINTR && retry {
			continue
		}
		if errno != 0 {
			if errno == unix.ENXIO {
				return notFound{errno}
			}
			return errno
		}
		return nil
	}
}

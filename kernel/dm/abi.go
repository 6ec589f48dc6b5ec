//go:build linux

package dm

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/kernel/ioc"
)

// The dm ioctl ABI of include/uapi/linux/dm-ioctl.h, encoded by hand so the layout is explicit
// and testable without a kernel. Everything is in the machine's byte order.

// struct dm_ioctl: offsets of its fields and its size.
const (
	offVersion     = 0   // __u32 version[3]
	offDataSize    = 12  // __u32: size of the whole buffer, header included
	offDataStart   = 16  // __u32: where the payload starts, from the header's start
	offTargetCount = 20  // __u32
	offOpenCount   = 24  // __s32
	offFlags       = 28  // __u32
	offEventNr     = 32  // __u32; also carries udev cookies on input, which we never send
	offDev         = 40  // __u64, huge_encode_dev
	offName        = 48  // char name[128]
	offUUID        = 176 // char uuid[129]
	headerSize     = 312 // 305 + char data[7]
)

// struct dm_target_spec: 40 bytes, then the NUL-terminated parameter string.
const (
	specSize    = 40
	specTypeLen = 16 // char target_type[16], NUL included
)

// struct dm_name_list: dev __u64, next __u32, then the NUL-terminated name at offset 12.
const nameListNameOff = 12

// Interface version we speak. The kernel accepts any 4.x with x <= its own and answers with its
// own version; 4.0.0 asks for nothing newer than the original v4 layout.
var ourVersion = [3]uint32{4, 0, 0}

// Commands and flags.
const (
	cmdVersion     = 0
	cmdListDevices = 2
	cmdDevCreate   = 3
	cmdDevRemove   = 4
	cmdDevRename   = 5
	cmdDevSuspend  = 6
	cmdDevStatus   = 7
	cmdTableLoad   = 9
	cmdTableClear  = 10
	cmdTableStatus = 12
	cmdTargetMsg   = 14
	cmdDevArmPoll  = 16
	// Deliberately absent: DM_REMOVE_ALL (1).

	flagReadOnly        = 1 << 0
	flagSuspend         = 1 << 1
	flagStatusTable     = 1 << 4
	flagActivePresent   = 1 << 5
	flagInactivePresent = 1 << 6
	flagBufferFull      = 1 << 8
	flagNoFlush         = 1 << 11
	flagDataOut         = 1 << 16
	flagDeferredRemove  = 1 << 17
)

// ioctlNumber is _IOWR(0xfd, cmd, struct dm_ioctl).
func ioctlNumber(cmd uintptr) uintptr { return ioc.IOWR(0xfd, cmd, headerSize) }

var ne = binary.NativeEndian

// header is struct dm_ioctl without its payload.
type header struct {
	Version     [3]uint32
	DataSize    uint32
	DataStart   uint32
	TargetCount uint32
	OpenCount   int32
	Flags       uint32
	EventNr     uint32
	Dev         uint64
	Name, UUID  string
}

// marshal writes h into b[:headerSize]; names must have been checked for length.
func (h *header) marshal(b []byte) {
	clear(b[:headerSize])
	for i, v := range h.Version {
		ne.PutUint32(b[offVersion+4*i:], v)
	}
	ne.PutUint32(b[offDataSize:], h.DataSize)
	ne.PutUint32(b[offDataStart:], h.DataStart)
	ne.PutUint32(b[offTargetCount:], h.TargetCount)
	ne.PutUint32(b[offOpenCount:], uint32(h.OpenCount))
	ne.PutUint32(b[offFlags:], h.Flags)
	ne.PutUint32(b[offEventNr:], h.EventNr)
	ne.PutUint64(b[offDev:], h.Dev)
	copy(b[offName:offName+nameLen-1], h.Name)
	copy(b[offUUID:offUUID+uuidLen-1], h.UUID)
}

func unmarshalHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("short dm_ioctl: %d bytes", len(b))
	}
	var h header
	for i := range h.Version {
		h.Version[i] = ne.Uint32(b[offVersion+4*i:])
	}
	h.DataSize = ne.Uint32(b[offDataSize:])
	h.DataStart = ne.Uint32(b[offDataStart:])
	h.TargetCount = ne.Uint32(b[offTargetCount:])
	h.OpenCount = int32(ne.Uint32(b[offOpenCount:]))
	h.Flags = ne.Uint32(b[offFlags:])
	h.EventNr = ne.Uint32(b[offEventNr:])
	h.Dev = ne.Uint64(b[offDev:])
	h.Name = cstring(b[offName : offName+nameLen])
	h.UUID = cstring(b[offUUID : offUUID+uuidLen])
	return h, nil
}

// payload returns the kernel's output area, b[data_start:data_size], checked against b.
// Commands without parameters answer with data_size cut to the header (305): no output.
func (h *header) payload(b []byte) ([]byte, error) {
	start, end := uint64(h.DataStart), uint64(h.DataSize)
	if end <= start && end <= uint64(len(b)) {
		return nil, nil
	}
	if start < headerSize || end > uint64(len(b)) {
		return nil, fmt.Errorf("kernel answered data_start %d, data_size %d for a %d-byte buffer", start, end, len(b))
	}
	return b[start:end], nil
}

func (h *header) info() Info {
	return Info{
		Name:           h.Name,
		UUID:           h.UUID,
		Dev:            decodeDev(h.Dev),
		OpenCount:      h.OpenCount,
		EventNr:        h.EventNr,
		TargetCount:    h.TargetCount,
		Suspended:      h.Flags&flagSuspend != 0,
		ReadOnly:       h.Flags&flagReadOnly != 0,
		LiveTable:      h.Flags&flagActivePresent != 0,
		InactiveTable:  h.Flags&flagInactivePresent != 0,
		DeferredRemove: h.Flags&flagDeferredRemove != 0,
	}
}

// decodeDev reads the kernel's huge_encode_dev, which is the layout unix.Major/Minor decode.
func decodeDev(d uint64) Dev { return Dev{unix.Major(d), unix.Minor(d)} }

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func align8(n int) int { return (n + 7) &^ 7 }

// encodeTable lays out a table for DM_TABLE_LOAD: one dm_target_spec per target, each followed
// by its NUL-terminated parameters and padded to 8 bytes. On input, next is the distance from
// this spec to the following one.
func encodeTable(table []Target) ([]byte, error) {
	size := 0
	for i, t := range table {
		if t.Type == "" || len(t.Type) >= specTypeLen || bytes.IndexByte([]byte(t.Type), 0) >= 0 {
			return nil, fmt.Errorf("target %d: invalid type %q", i, t.Type)
		}
		if bytes.IndexByte([]byte(t.Params), 0) >= 0 {
			return nil, fmt.Errorf("target %d: parameters contain NUL", i)
		}
		if t.Length == 0 {
			return nil, fmt.Errorf("target %d: zero length", i)
		}
		size += align8(specSize + len(t.Params) + 1)
	}
	b := make([]byte, size)
	off := 0
	for _, t := range table {
		n := align8(specSize + len(t.Params) + 1)
		s := b[off : off+n]
		ne.PutUint64(s[0:], t.Start)
		ne.PutUint64(s[8:], t.Length)
		ne.PutUint32(s[16:], 0) // status
		ne.PutUint32(s[20:], uint32(n))
		copy(s[24:24+specTypeLen-1], t.Type)
		copy(s[specSize:], t.Params) // the NUL and padding are already zero
		off += n
	}
	return b, nil
}

// decodeTargets reads count dm_target_specs from a DM_TABLE_STATUS answer (data is the output
// area). On output, next is an offset from the start of the output area.
func decodeTargets(data []byte, count uint32) ([]Target, error) {
	if count > uint32(len(data)/specSize) {
		return nil, fmt.Errorf("%d targets cannot fit in %d bytes", count, len(data))
	}
	targets := make([]Target, 0, count)
	off := 0
	for i := uint32(0); i < count; i++ {
		if off+specSize > len(data) {
			return nil, fmt.Errorf("target %d: spec at %d past the end (%d)", i, off, len(data))
		}
		s := data[off:]
		params := s[specSize:]
		nul := bytes.IndexByte(params, 0)
		if nul < 0 {
			return nil, fmt.Errorf("target %d: unterminated parameters", i)
		}
		targets = append(targets, Target{
			Start:  ne.Uint64(s[0:]),
			Length: ne.Uint64(s[8:]),
			Type:   cstring(s[24 : 24+specTypeLen]),
			Params: string(params[:nul]),
		})
		next := int(ne.Uint32(s[20:]))
		if i+1 < count && (next < off+specSize+nul+1 || next > len(data)) {
			return nil, fmt.Errorf("target %d: bad next offset %d", i, next)
		}
		off = next
	}
	return targets, nil
}

// decodeNameList reads a DM_LIST_DEVICES answer: dm_name_list records chained by next, each
// relative to its own record. Newer kernels put an event number and a uuid after each name;
// following next steps over them. A first record with dev 0 means no devices.
func decodeNameList(data []byte) ([]NameDev, error) {
	if len(data) < nameListNameOff || ne.Uint64(data) == 0 {
		return nil, nil
	}
	var list []NameDev
	off := 0
	for {
		if off+nameListNameOff > len(data) {
			return nil, fmt.Errorf("name list entry at %d past the end (%d)", off, len(data))
		}
		next := int(ne.Uint32(data[off+8:]))
		end := len(data)
		if next != 0 {
			if next <= nameListNameOff || next > len(data)-off {
				return nil, fmt.Errorf("name list entry at %d: bad next %d", off, next)
			}
			end = off + next
		}
		name := data[off+nameListNameOff : end]
		nul := bytes.IndexByte(name, 0)
		if nul < 0 {
			return nil, fmt.Errorf("name list entry at %d: unterminated name", off)
		}
		list = append(list, NameDev{Name: string(name[:nul]), Dev: decodeDev(ne.Uint64(data[off:]))})
		if next == 0 {
			return list, nil
		}
		off += next
	}
}

// encodeMessage lays out struct dm_target_msg: the sector, then the NUL-terminated message.
func encodeMessage(sector uint64, msg string) []byte {
	b := make([]byte, align8(8+len(msg)+1))
	ne.PutUint64(b, sector)
	copy(b[8:], msg)
	return b
}

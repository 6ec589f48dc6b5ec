//go:build linux

package dm

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cDmIoctl mirrors struct dm_ioctl field by field, so the compiler checks our offsets.
type cDmIoctl struct {
	Version     [3]uint32
	DataSize    uint32
	DataStart   uint32
	TargetCount uint32
	OpenCount   int32
	Flags       uint32
	EventNr     uint32
	Padding     uint32
	Dev         uint64
	Name        [128]byte
	UUID        [129]byte
	Data        [7]byte
}

func TestLayout(t *testing.T) {
	var c cDmIoctl
	for _, x := range []struct {
		what      string
		got, want uintptr
	}{
		{"sizeof", unsafe.Sizeof(c), headerSize},
		{"data_size", unsafe.Offsetof(c.DataSize), offDataSize},
		{"data_start", unsafe.Offsetof(c.DataStart), offDataStart},
		{"target_count", unsafe.Offsetof(c.TargetCount), offTargetCount},
		{"open_count", unsafe.Offsetof(c.OpenCount), offOpenCount},
		{"flags", unsafe.Offsetof(c.Flags), offFlags},
		{"event_nr", unsafe.Offsetof(c.EventNr), offEventNr},
		{"dev", unsafe.Offsetof(c.Dev), offDev},
		{"name", unsafe.Offsetof(c.Name), offName},
		{"uuid", unsafe.Offsetof(c.UUID), offUUID},
	} {
		if x.got != x.want {
			t.Errorf("%s: %d, want %d", x.what, x.got, x.want)
		}
	}
	if headerSize != 312 {
		t.Errorf("header size %d", headerSize)
	}
}

func TestIoctlNumbers(t *testing.T) {
	// Values of the DM_* macros as the C headers expand them.
	for cmd, want := range map[uintptr]uintptr{
		cmdVersion: 0xc138fd00, cmdListDevices: 0xc138fd02, cmdDevCreate: 0xc138fd03,
		cmdDevRemove: 0xc138fd04, cmdDevSuspend: 0xc138fd06, cmdDevStatus: 0xc138fd07,
		cmdTableLoad: 0xc138fd09, cmdTableStatus: 0xc138fd0c, cmdTargetMsg: 0xc138fd0e, cmdDevArmPoll: 0xc138fd10,
	} {
		if got := ioctlNumber(cmd); got != want {
			t.Errorf("cmd %d: %#x, want %#x", cmd, got, want)
		}
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := header{
		Version: [3]uint32{4, 47, 0}, DataSize: 16384, DataStart: 312, TargetCount: 2, OpenCount: -1,
		Flags: flagSuspend | flagActivePresent | flagInactivePresent | flagDeferredRemove | flagReadOnly, EventNr: 9,
		Dev: unix.Mkdev(253, 300), Name: strings.Repeat("n", 127), UUID: strings.Repeat("u", 128),
	}
	b := make([]byte, headerSize)
	for i := range b {
		b[i] = 0xff // marshal must clear what it does not set
	}
	h.marshal(b)
	if b[offName+127] != 0 || b[offUUID+128] != 0 {
		t.Fatal("strings not NUL-terminated")
	}
	got, err := unmarshalHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Fatalf("got %+v\nwant %+v", got, h)
	}
	info := got.info()
	want := Info{Name: h.Name, UUID: h.UUID, Dev: Dev{253, 300}, OpenCount: -1, EventNr: 9, TargetCount: 2,
		Suspended: true, ReadOnly: true, LiveTable: true, InactiveTable: true, DeferredRemove: true}
	if info != want {
		t.Fatalf("info %+v\nwant %+v", info, want)
	}
	if _, err := unmarshalHeader(b[:300]); err == nil {
		t.Fatal("short header accepted")
	}
}

func TestPayloadBounds(t *testing.T) {
	b := make([]byte, 1024)
	for _, tc := range []struct {
		start, size uint32
		ok          bool
	}{{312, 312, true}, {312, 305, true}, {312, 1024, true}, {312, 1025, false}, {100, 500, false}, {600, 2000, false}} {
		h := header{DataStart: tc.start, DataSize: tc.size}
		if _, err := h.payload(b); (err == nil) != tc.ok {
			t.Errorf("start %d size %d: %v", tc.start, tc.size, err)
		}
	}
}

func TestEncodeTable(t *testing.T) {
	table := []Target{
		{0, 8388608, "thin-pool", "7:1 7:0 128 32768 1 skip_block_zeroing"}, // 38 bytes: 40+39 -> 80
		{8388608, 100, "linear", "254:32 2048"},                             // 11 bytes: 40+12 -> 56
		{8388708, 8, "zero", ""},                                            // 40+1 -> 48
	}
	b, err := encodeTable(table)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 80+56+48 {
		t.Fatalf("length %d", len(b))
	}
	// Walk it the way the kernel's populate_table does: next is relative to the current spec.
	off := 0
	for i, want := range table {
		s := b[off:]
		next := int(ne.Uint32(s[20:]))
		if next%8 != 0 || next < specSize {
			t.Fatalf("target %d: next %d", i, next)
		}
		params := s[specSize:next]
		nul := bytes.IndexByte(params, 0)
		if nul != len(want.Params) {
			t.Fatalf("target %d: params not NUL-terminated where expected: %q", i, params)
		}
		got := Target{ne.Uint64(s[0:]), ne.Uint64(s[8:]), cstring(s[24:40]), string(params[:nul])}
		if got != want {
			t.Fatalf("target %d: %+v, want %+v", i, got, want)
		}
		if ne.Uint32(s[16:]) != 0 {
			t.Fatalf("target %d: status not zero", i)
		}
		off += next
	}
	if off != len(b) {
		t.Fatalf("walk ended at %d of %d", off, len(b))
	}

	for _, bad := range [][]Target{
		{{0, 1, "", "x"}},
		{{0, 1, "a-very-long-type", "x"}}, // 16 bytes: no room for the NUL
		{{0, 1, "linear", "a\x00b"}},
		{{0, 0, "linear", "7:0 0"}},
	} {
		if _, err := encodeTable(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// kernelStatus lays out targets as the kernel's retrieve_status does: on output, next is an
// offset from the start of the output area.
func kernelStatus(targets []Target) []byte {
	var b []byte
	for _, t := range targets {
		spec := make([]byte, specSize)
		ne.PutUint64(spec[0:], t.Start)
		ne.PutUint64(spec[8:], t.Length)
		copy(spec[24:39], t.Type)
		start := len(b)
		b = append(b, spec...)
		b = append(b, t.Params...)
		b = append(b, 0)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		ne.PutUint32(b[start+20:], uint32(len(b)))
	}
	return b
}

func TestDecodeTargets(t *testing.T) {
	for _, lines := range [][]string{
		{capPoolStatus},
		{capPoolTable},
		{capThinStatus},
		{capLinear, "39837696 1000 linear 254:33 0", "39838696 8 error "},
	} {
		var want []Target
		for _, l := range lines {
			want = append(want, splitLine(t, l))
		}
		data := kernelStatus(want)
		got, err := decodeTargets(data, uint32(len(want)))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
	}
	if got, err := decodeTargets(nil, 0); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}

	two := kernelStatus([]Target{splitLine(t, capLinear), splitLine(t, capThinTable)})
	backwards := bytes.Clone(two)
	ne.PutUint32(backwards[20:], 8)
	unterminated := bytes.Clone(two[:specSize+5])
	for name, tc := range map[string]struct {
		data  []byte
		count uint32
	}{
		"count too big":  {two, 3},
		"huge count":     {two, 1 << 31},
		"truncated":      {two[:len(two)-20], 2},
		"next backwards": {backwards, 2},
		"unterminated":   {unterminated, 1},
		"short spec":     {two[:30], 1},
	} {
		if got, err := decodeTargets(tc.data, tc.count); err == nil {
			t.Errorf("%s: accepted as %+v", name, got)
		}
	}
}

// kernelNameList lays out DM_LIST_DEVICES's answer; withExtra adds what kernels since 4.x
// put after each name (aligned event number, flags, uuid).
func kernelNameList(list []NameDev, withExtra bool) []byte {
	var b []byte
	prev := -1
	for _, e := range list {
		start := len(b)
		if prev >= 0 {
			ne.PutUint32(b[prev+8:], uint32(start-prev))
		}
		rec := make([]byte, nameListNameOff)
		ne.PutUint64(rec, unix.Mkdev(e.Dev.Major, e.Dev.Minor))
		b = append(b, rec...)
		b = append(b, e.Name...)
		b = append(b, 0)
		if withExtra {
			for len(b)%8 != 0 {
				b = append(b, 0)
			}
			b = ne.AppendUint32(b, 7) // event_nr
			b = ne.AppendUint32(b, 1) // DM_NAME_LIST_FLAG_HAS_UUID
			b = append(b, "LVM-abc"...)
			b = append(b, 0)
		}
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		prev = start
	}
	if len(b) == 0 {
		b = make([]byte, 16) // dev 0: no devices
	}
	return b
}

func TestDecodeNameList(t *testing.T) {
	list := []NameDev{
		{"docker-253:0-1-pool", Dev{253, 0}},
		{"docker-253:0-1-0123456789abcdef", Dev{253, 1}},
		{strings.Repeat("x", 127), Dev{253, 1048575}},
		{"a", Dev{254, 32}},
	}
	for _, extra := range []bool{false, true} {
		got, err := decodeNameList(kernelNameList(list, extra))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, list) {
			t.Fatalf("extra=%v: got %+v", extra, got)
		}
	}
	if got, err := decodeNameList(kernelNameList(nil, true)); err != nil || got != nil {
		t.Fatalf("empty: %+v %v", got, err)
	}
	if got, err := decodeNameList(nil); err != nil || got != nil {
		t.Fatalf("nothing: %+v %v", got, err)
	}

	good := kernelNameList(list[:2], true)
	loop := bytes.Clone(good)
	ne.PutUint32(loop[8:], 0xfffffff0) // next far past the end
	tiny := bytes.Clone(good)
	ne.PutUint32(tiny[8:], 4) // next inside the record
	noNUL := bytes.Clone(good[:nameListNameOff+5])
	for name, data := range map[string][]byte{"next past end": loop, "next too small": tiny, "unterminated": noNUL} {
		if got, err := decodeNameList(data); err == nil {
			t.Errorf("%s: accepted as %+v", name, got)
		}
	}
}

func TestEncodeMessage(t *testing.T) {
	b := encodeMessage(7, "reserve_metadata_snap")
	if len(b)%8 != 0 || ne.Uint64(b) != 7 || cstring(b[8:]) != "reserve_metadata_snap" || b[8+len("reserve_metadata_snap")] != 0 {
		t.Fatalf("%q", b)
	}
}

func TestErrorText(t *testing.T) {
	err := error(&Error{Op: "suspend", Name: "docker-253:0-1-abc", Err: unix.EBUSY})
	if got := err.Error(); got != "dm: suspend docker-253:0-1-abc: device or resource busy" {
		t.Fatalf("%q", got)
	}
	if !errors.Is(err, unix.EBUSY) {
		t.Fatal("errno not reachable")
	}
	err = &Error{Op: "info", Name: "gone", Err: notFound{unix.ENXIO}}
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, unix.ENXIO) {
		t.Fatal("not found not reachable")
	}
	if got := err.Error(); got != "dm: info gone: no such device-mapper device" {
		t.Fatalf("%q", got)
	}
	if got := (&Error{Op: "list", Err: unix.EPERM}).Error(); got != "dm: list: operation not permitted" {
		t.Fatalf("%q", got)
	}
}

package dm

import (
	"fmt"
	"strconv"
	"strings"
)

// Readers of the thin and thin-pool targets' table and status lines, as
// Documentation/admin-guide/device-mapper/thin-provisioning.rst and dm-thin.c write them.
// They take Target.Params (what follows the target type); trailing spaces do not matter.

// PoolTable is a thin-pool table line:
// <metadata dev> <data dev> <data block size> <low water mark> <#features> <features>...
type PoolTable struct {
	MetaDev, DataDev string // "major:minor" as the kernel reports them (a path when loading)
	DataBlockSectors uint64
	LowWaterBlocks   uint64
	Features         []string // skip_block_zeroing, ignore_discard, no_discard_passdown, read_only, error_if_no_space
}

// ParsePoolTable reads a thin-pool table's parameters.
func ParsePoolTable(params string) (PoolTable, error) {
	f := strings.Fields(params)
	if len(f) < 5 {
		return PoolTable{}, lineErr("thin-pool table", params, "want at least 5 fields")
	}
	var t PoolTable
	var n uint64
	var err error
	t.MetaDev, t.DataDev = f[0], f[1]
	if t.DataBlockSectors, err = parseNum(f[2], "data block size"); err != nil {
		return PoolTable{}, lineErr("thin-pool table", params, err.Error())
	}
	if t.LowWaterBlocks, err = parseNum(f[3], "low water mark"); err != nil {
		return PoolTable{}, lineErr("thin-pool table", params, err.Error())
	}
	if n, err = parseNum(f[4], "feature count"); err != nil {
		return PoolTable{}, lineErr("thin-pool table", params, err.Error())
	}
	if n != uint64(len(f)-5) {
		return PoolTable{}, lineErr("thin-pool table", params, fmt.Sprintf("%d features announced, %d present", n, len(f)-5))
	}
	if n > 0 {
		t.Features = f[5:]
	}
	return t, nil
}

// String gives the table parameters, as Load takes them.
func (t PoolTable) String() string {
	s := fmt.Sprintf("%s %s %d %d %d", t.MetaDev, t.DataDev, t.DataBlockSectors, t.LowWaterBlocks, len(t.Features))
	for _, f := range t.Features {
		s += " " + f
	}
	return s
}

// PoolStatus is a thin-pool status line:
// <transaction id> <used meta>/<total meta> <used data>/<total data> <held metadata root>
// ro|rw|out_of_data_space [no_]discard_passdown|ignore_discard [error|queue]_if_no_space
// needs_check|- <metadata low watermark>, or the single word Fail.
// Older kernels stop after fewer of the trailing fields; absent ones read as false and 0.
type PoolStatus struct {
	TransactionID                   uint64
	UsedMetaBlocks, TotalMetaBlocks uint64 // metadata blocks are 4 KiB
	UsedDataBlocks, TotalDataBlocks uint64 // data blocks are DataBlockSectors each
	HeldMetadataRoot                string // "-" when none, else the held root's block number
	Mode                            string // "rw", "ro", "out_of_data_space"; "" with Fail or on kernels too old to say
	Fail                            bool   // the pool failed; every other field is zero
	DiscardPassdown                 bool
	IgnoreDiscard                   bool // discards are ignored altogether (ignore_discard)
	ErrorIfNoSpace                  bool
	NeedsCheck                      bool
	MetaLowWaterBlocks              uint64 // last field, present on newer kernels; 0 if absent
}

// ParsePoolStatus reads a thin-pool status line (Target.Params of Status).
func ParsePoolStatus(line string) (PoolStatus, error) {
	const what = "thin-pool status"
	f := strings.Fields(line)
	if len(f) == 1 && f[0] == "Fail" {
		return PoolStatus{Fail: true}, nil
	}
	if len(f) == 1 && f[0] == "Error" {
		return PoolStatus{}, lineErr(what, line, "the kernel could not read the pool's metadata")
	}
	if len(f) < 4 {
		return PoolStatus{}, lineErr(what, line, "want at least 4 fields")
	}
	var s PoolStatus
	var err error
	if s.TransactionID, err = parseNum(f[0], "transaction id"); err != nil {
		return PoolStatus{}, lineErr(what, line, err.Error())
	}
	if s.UsedMetaBlocks, s.TotalMetaBlocks, err = parseRatio(f[1], "metadata blocks"); err != nil {
		return PoolStatus{}, lineErr(what, line, err.Error())
	}
	if s.UsedDataBlocks, s.TotalDataBlocks, err = parseRatio(f[2], "data blocks"); err != nil {
		return PoolStatus{}, lineErr(what, line, err.Error())
	}
	s.HeldMetadataRoot = f[3]
	if f[3] != "-" {
		if _, err := parseNum(f[3], "held metadata root"); err != nil {
			return PoolStatus{}, lineErr(what, line, err.Error())
		}
	}
	// The optional fields, in the kernel's order. Later kernels may add more: ignored.
	for i, w := range f[4:min(len(f), 9)] {
		bad := false
		switch i {
		case 0:
			s.Mode = w
			bad = w != "rw" && w != "ro" && w != "out_of_data_space"
		case 1:
			s.DiscardPassdown = w == "discard_passdown"
			s.IgnoreDiscard = w == "ignore_discard"
			bad = !s.DiscardPassdown && !s.IgnoreDiscard && w != "no_discard_passdown"
		case 2:
			s.ErrorIfNoSpace = w == "error_if_no_space"
			bad = !s.ErrorIfNoSpace && w != "queue_if_no_space"
		case 3:
			s.NeedsCheck = w == "needs_check"
			bad = !s.NeedsCheck && w != "-"
		case 4:
			if s.MetaLowWaterBlocks, err = parseNum(w, "metadata low watermark"); err != nil {
				return PoolStatus{}, lineErr(what, line, err.Error())
			}
		}
		if bad {
			return PoolStatus{}, lineErr(what, line, fmt.Sprintf("unexpected %q in field %d", w, i+5))
		}
	}
	return s, nil
}

// ThinTable is a thin table line: <pool dev> <dev id> [<external origin dev>].
type ThinTable struct {
	PoolDev        string
	DevID          uint64 // 24 bits in the kernel
	ExternalOrigin string // "" when none
}

// ParseThinTable reads a thin table's parameters.
func ParseThinTable(params string) (ThinTable, error) {
	f := strings.Fields(params)
	if len(f) != 2 && len(f) != 3 {
		return ThinTable{}, lineErr("thin table", params, "want 2 or 3 fields")
	}
	id, err := parseNum(f[1], "device id")
	if err == nil && id > MaxThinID {
		err = fmt.Errorf("device id %d exceeds 24 bits", id)
	}
	if err != nil {
		return ThinTable{}, lineErr("thin table", params, err.Error())
	}
	t := ThinTable{PoolDev: f[0], DevID: id}
	if len(f) == 3 {
		t.ExternalOrigin = f[2]
	}
	return t, nil
}

// String gives the table parameters, as Load takes them.
func (t ThinTable) String() string {
	s := fmt.Sprintf("%s %d", t.PoolDev, t.DevID)
	if t.ExternalOrigin != "" {
		s += " " + t.ExternalOrigin
	}
	return s
}

// ThinStatus is a thin status line: <nr mapped sectors> <highest mapped sector>, or Fail.
type ThinStatus struct {
	MappedSectors       uint64
	HighestMappedSector uint64
	Fail                bool // the pool failed
	HighestUnknown      bool // "-": nothing mapped, or the kernel could not tell
}

// ParseThinStatus reads a thin status line (Target.Params of Status).
func ParseThinStatus(line string) (ThinStatus, error) {
	const what = "thin status"
	f := strings.Fields(line)
	switch {
	case len(f) == 1 && f[0] == "Fail":
		return ThinStatus{Fail: true}, nil
	case len(f) == 1 && f[0] == "Error":
		return ThinStatus{}, lineErr(what, line, "the kernel could not read the device's mappings")
	case len(f) == 1 && f[0] == "-":
		// The kernel prints a lone "-" for a thin target without its device.
		return ThinStatus{HighestUnknown: true}, nil
	case len(f) != 2:
		return ThinStatus{}, lineErr(what, line, "want 2 fields")
	}
	var s ThinStatus
	var err error
	if s.MappedSectors, err = parseNum(f[0], "mapped sectors"); err != nil {
		return ThinStatus{}, lineErr(what, line, err.Error())
	}
	if f[1] == "-" {
		s.HighestUnknown = true
	} else if s.HighestMappedSector, err = parseNum(f[1], "highest mapped sector"); err != nil {
		return ThinStatus{}, lineErr(what, line, err.Error())
	}
	return s, nil
}

func parseNum(s, what string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a number", what, s)
	}
	return n, nil
}

// parseRatio reads "used/total" and refuses used > total, which would underflow free space.
func parseRatio(s, what string) (used, total uint64, err error) {
	u, t, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("%s %q: want used/total", what, s)
	}
	if used, err = parseNum(u, what); err == nil {
		total, err = parseNum(t, what)
	}
	if err == nil && used > total {
		err = fmt.Errorf("%s %q: more used than there are", what, s)
	}
	return used, total, err
}

func lineErr(what, line, why string) error {
	return fmt.Errorf("dm: %s %q: %s", what, line, why)
}

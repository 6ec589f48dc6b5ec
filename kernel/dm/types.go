package dm

import (
	"fmt"
	"strconv"
	"strings"
)

// Dev is a block device number.
type Dev struct{ Major, Minor uint32 }

// String gives "major:minor", the form dm tables use.
func (d Dev) String() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// ParseDev reads "major:minor".
func ParseDev(s string) (Dev, error) {
	maj, min, ok := strings.Cut(s, ":")
	if !ok {
		return Dev{}, fmt.Errorf("dm: device number %q: want major:minor", s)
	}
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return Dev{}, fmt.Errorf("dm: device number %q: want major:minor in decimal", s)
	}
	return Dev{uint32(ma), uint32(mi)}, nil
}

// Target is one line of a table or of a status: "Start Length Type Params" in dmsetup's words.
type Target struct {
	Start, Length uint64 // sectors (512 B)
	Type          string // "thin", "thin-pool", "linear", ...
	Params        string // table parameters, or the status line for Status(); as the kernel wrote it
}

// Info is what DM_DEV_STATUS says about a device.
type Info struct {
	Name, UUID  string
	Dev         Dev
	OpenCount   int32
	EventNr     uint32
	TargetCount uint32 // of the live table

	Suspended, ReadOnly bool
	LiveTable           bool // a table is active
	InactiveTable       bool // a table is loaded and waits for a resume
	DeferredRemove      bool // removal is scheduled for the last close
}

// NameDev is one entry of List.
type NameDev struct {
	Name string
	Dev  Dev
}

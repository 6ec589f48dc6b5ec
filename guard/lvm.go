package guard

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dmsize/dmsize/kernel/lvm"
	"github.com/dmsize/dmsize/kernel/thin"
	"github.com/dmsize/dmsize/size"
)

// lvmExtender extends an LVM thin pool LV (direct-lvm) with the host's lvextend, which reloads
// and resumes the pool itself.
type lvmExtender struct {
	run    lvm.Runner
	vg, lv string
}

func (l *lvmExtender) Kind() string { return "direct-lvm" }

// Room is the volume group's free space.
func (l *lvmExtender) Room() (int64, string, error) {
	out, err := l.run("vgs", "--noheadings", "--nosuffix", "--units", "b", "-o", "vg_free", l.vg)
	if err != nil {
		return 0, "", err
	}
	free, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("guard: vgs %s: unexpected output %q", l.vg, out)
	}
	return free, fmt.Sprintf("volume group %s has %s free (vgextend %s with another disk)", l.vg, size.Decimal(free), l.vg), nil
}

// Extend asks for absolute sizes, so a repeat after a crash asks for what is already there
// (lvextend then says so, and that is not an error here).
func (l *lvmExtender) Extend(p thin.Pool, data, meta int64) (time.Duration, error) {
	_, dataNow := p.DataBytes()
	_, metaNow := p.MetaBytes()
	lv := l.vg + "/" + l.lv
	start := time.Now()
	if data > dataNow {
		if _, err := l.run("lvextend", "-L", strconv.FormatInt(data, 10)+"b", lv); err != nil && !lvm.Unchanged(err) {
			return time.Since(start), err
		}
	}
	if meta > metaNow {
		if _, err := l.run("lvextend", "--poolmetadatasize", strconv.FormatInt(meta, 10)+"b", lv); err != nil && !lvm.Unchanged(err) {
			return time.Since(start), err
		}
	}
	return 0, nil // lvextend suspends the pool for a time it does not report
}

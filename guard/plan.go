package guard

import (
	"fmt"
	"strings"

	"github.com/dmsize/dmsize/kernel/thin"
	"github.com/dmsize/dmsize/size"
)

// Usage is what a plan is made from: a pool's data and metadata, used and total, in bytes.
type Usage struct {
	DataUsed, DataTotal int64
	MetaUsed, MetaTotal int64
	DataBlock           int64 // bytes; the data size stays a multiple of it
	OutOfData           bool  // the kernel already says out_of_data_space
	// Mode is the pool's mode: rw, out_of_data_space, ro, or fail or needs_check, which win
	// over the kernel's mode (a pool that needs a check is read-only too).
	Mode string
	// DataSoon and MetaSoon: at the current fill rate the part reaches the threshold before an
	// extension started later could be live, so it is treated as over it.
	DataSoon, MetaSoon bool
}

// UsageOf reads a pool's usage.
func UsageOf(p thin.Pool) Usage {
	var u Usage
	u.DataUsed, u.DataTotal = p.DataBytes()
	u.MetaUsed, u.MetaTotal = p.MetaBytes()
	u.DataBlock = int64(p.Table.DataBlockSectors) * size.Sector
	u.OutOfData = p.Status.Mode == "out_of_data_space"
	switch {
	case p.Status.Fail:
		u.Mode = "fail"
	case p.Status.NeedsCheck:
		u.Mode = "needs_check"
	case p.Status.Mode == "":
		u.Mode = "rw" // a kernel too old to say
	default:
		u.Mode = p.Status.Mode
	}
	return u
}

func ratio(used, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return float64(used) / float64(total)
}

// DataRatio and MetaRatio are the used fractions.
func (u Usage) DataRatio() float64 { return ratio(u.DataUsed, u.DataTotal) }
func (u Usage) MetaRatio() float64 { return ratio(u.MetaUsed, u.MetaTotal) }

// metaStepMin keeps small metadata devices from growing in uselessly small steps.
const metaStepMin = 8 << 20

// Plan is what to extend: the new data and metadata totals (equal to the current ones when
// that part stays), and, when a part needs more than the policy and the room allow, why.
type Plan struct {
	Data, Meta int64
	Blocked    string
}

// Grows says whether the plan changes anything.
func (pl Plan) Grows(u Usage) bool { return pl.Data > u.DataTotal || pl.Meta > u.MetaTotal }

// needs says which parts are due for an extension: over the threshold, about to be (Soon), or,
// for data, already out of space.
func (p Policy) needs(u Usage) (data, meta bool) {
	return u.OutOfData || u.DataSoon || u.DataRatio() >= p.Threshold, u.MetaSoon || u.MetaRatio() >= p.Threshold
}

// Plan decides the next extension for usage u, given room: the bytes the backing store can
// still give (host filesystem or volume group, after what the policy keeps free), and roomWhy,
// which says what limits it. Extensions never shrink and never pass the caps.
func (p Policy) Plan(u Usage, room int64, roomWhy string) Plan {
	pl := Plan{Data: u.DataTotal, Meta: u.MetaTotal}
	var blocked []string
	needData, needMeta := p.needs(u)
	if needData {
		want := roundUp(u.DataTotal+max(p.Step.Of(u.DataTotal), u.DataBlock), u.DataBlock)
		if p.MaxData > 0 && want > p.MaxData {
			want = roundDown(p.MaxData, u.DataBlock)
		}
		if want <= u.DataTotal {
			blocked = append(blocked, fmt.Sprintf("data is at the cap MAX_POOL_SIZE=%s", size.Format(p.MaxData)))
		} else if want-u.DataTotal > room {
			want = u.DataTotal + roundDown(max(room, 0), u.DataBlock)
			if want <= u.DataTotal {
				blocked = append(blocked, "no room for data: "+roomWhy)
			}
		}
		if want > u.DataTotal {
			pl.Data = want
			room -= want - u.DataTotal
		}
	}
	if needMeta {
		want := roundUp(u.MetaTotal+max(p.Step.Of(u.MetaTotal), metaStepMin), 4096)
		want = min(want, MaxMetadata)
		if want <= u.MetaTotal {
			blocked = append(blocked, fmt.Sprintf("metadata is at the kernel's maximum %s", size.Format(MaxMetadata)))
		} else if want-u.MetaTotal > room {
			want = u.MetaTotal + roundDown(max(room, 0), 4096)
			if want <= u.MetaTotal {
				blocked = append(blocked, "no room for metadata: "+roomWhy)
			}
		}
		if want > u.MetaTotal {
			pl.Meta = want
		}
	}
	pl.Blocked = strings.Join(blocked, "; ")
	return pl
}

func roundUp(n, m int64) int64 {
	if m <= 0 {
		return n
	}
	return (n + m - 1) / m * m
}

func roundDown(n, m int64) int64 {
	if m <= 0 {
		return n
	}
	return n / m * m
}

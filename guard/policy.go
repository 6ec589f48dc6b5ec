// Package guard watches the engine's thin pool and extends it online before it fills: the
// sparse files of a loop-backed pool (loop-lvm), or the LVM thin pool of direct-lvm. It wakes on
// the pool's device-mapper events and re-checks on a timer that tightens while the pool fills.
package guard

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dmsize/dmsize/size"
)

// MaxMetadata is the largest thin-pool metadata device the kernel uses (its
// THIN_METADATA_MAX_SECTORS, less a margin): a bigger one works, but the rest is ignored.
const MaxMetadata = 15_870 << 20

// Policy is when and by how much the guard extends the pool.
type Policy struct {
	// Extend false watches, exports and warns, and never extends (GUARD=off).
	Extend bool
	// Threshold is the used fraction of data or metadata at which that part is extended.
	Threshold float64
	// Step is how much one extension adds.
	Step Step
	// MaxData caps the pool's data size; 0 is no cap.
	MaxData int64
	// MinHostFree is what a loop-backed pool's growth must leave free on the filesystem that
	// holds its sparse files, counting what those files may still take.
	MinHostFree int64
	// Interval is the slowest re-check, for when no event comes: the kernel's data low-water
	// event fires once per resume and the metadata one far too late to rely on.
	Interval time.Duration
}

// DefaultPolicy is the documented default: extend at 80 % by 20 %, no cap, keep 5 GiB free on
// the host, re-check at least every 10 s.
func DefaultPolicy() Policy {
	return Policy{Extend: true, Threshold: 0.80, Step: Step{Percent: 20}, MinHostFree: 5 << 30, Interval: 10 * time.Second}
}

// Step is an extension's size: a percentage of the current size, or bytes.
type Step struct {
	Percent float64
	Bytes   int64
}

// ParseStep reads "20%" or a size in Docker's grammar ("2G").
func ParseStep(s string) (Step, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v <= 0 || v > 1000 {
			return Step{}, fmt.Errorf("step %q: want a percentage above 0 and at most 1000 (e.g. 20%%) or a size (e.g. 2G)", s)
		}
		return Step{Percent: v}, nil
	}
	b, err := size.Parse(s)
	if err != nil || b <= 0 {
		return Step{}, fmt.Errorf("step %q: want a percentage (e.g. 20%%) or a size above zero (e.g. 2G)", s)
	}
	return Step{Bytes: b}, nil
}

// Of is the step for a part currently total bytes big.
func (s Step) Of(total int64) int64 {
	if s.Bytes > 0 {
		return s.Bytes
	}
	return int64(float64(total) * s.Percent / 100)
}

func (s Step) String() string {
	if s.Bytes > 0 {
		return size.Format(s.Bytes)
	}
	return strconv.FormatFloat(s.Percent, 'f', -1, 64) + "%"
}

// ParseThreshold reads "80%" or "80" as 0.80.
func ParseThreshold(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || v < 1 || v > 99 {
		return 0, fmt.Errorf("threshold %q: want a percentage from 1 to 99 (e.g. 80%%)", s)
	}
	return v / 100, nil
}

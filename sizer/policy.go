package sizer

import (
	"fmt"

	"github.com/dmsize/dmsize/driver/size"
	"github.com/dmsize/dmsize/engine"
)

// Policy bounds what a dm.size label may ask for.
type Policy struct {
	// Max is the largest size a label may ask for (MAX_SIZE).
	Max int64
	// Overcommit bounds the sum of the sizes dmsize has given, this request included, to
	// Overcommit × the pool's data size (OVERCOMMIT). Devices the engine sized itself are the
	// engine's business and do not count.
	Overcommit float64
	// Ceiling, when set (by the pool guard), turns the pool's data size into the size the
	// over-commit bound counts with, and says in words what that size is.
	Ceiling func(poolData int64) (int64, string)
}

// Rejection is a label dmsize will not act on, with the reason in words.
type Rejection struct {
	Label, Reason string
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("label %s=%s rejected: %s", engine.SizeLabel, r.Label, r.Reason)
}

// SizeLabelForErrors is the label's name as errors print it.
const SizeLabelForErrors = "dm.size"

// Check validates label for a container whose root filesystem is current bytes now, given the
// pool's data size and the sum of the sizes dmsize has given the other containers.
func (p Policy) Check(label string, current, poolData, others int64) (int64, error) {
	want, err := size.Parse(label)
	if err != nil {
		return 0, &Rejection{label, err.Error()}
	}
	if p.Max > 0 && want > p.Max {
		return 0, &Rejection{label, fmt.Sprintf("%s is above the plugin's maximum %s (docker plugin set dmsize MAX_SIZE=...)", size.Format(want), size.Format(p.Max))}
	}
	if want < current {
		return 0, &Rejection{label, fmt.Sprintf("%s is smaller than the current size %s; dmsize never shrinks a filesystem", size.Format(want), size.Format(current))}
	}
	if p.Overcommit > 0 && poolData > 0 {
		base, what := poolData, "the pool's "+size.Format(poolData)+" data"
		if p.Ceiling != nil {
			if c, note := p.Ceiling(poolData); note != "" {
				base, what = max(c, poolData), note
			}
		}
		limit := int64(p.Overcommit * float64(base))
		if others+want > limit {
			return 0, &Rejection{label, fmt.Sprintf("the pool cannot hold it: %s for this container plus %s given to others is above %.2g × %s (%s; docker plugin set dmsize OVERCOMMIT=...)",
				size.Format(want), size.Format(others), p.Overcommit, what, size.Format(limit))}
		}
	}
	return want, nil
}

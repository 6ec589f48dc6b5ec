package sizer

import (
	"fmt"

	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/size"
)

// Policy bounds the growth a dm.size label may ask for. It applies only to growth beyond what
// a container has: what dmsize already gave is never taken back, and the steps that keep it
// safe run whatever the policy says now.
type Policy struct {
	// Max is the largest size a label may ask for (MAX_SIZE).
	Max int64
	// Overcommit, when positive, bounds the sum of the sizes dmsize has given, this request
	// included, to Overcommit × the pool's data size (OVERCOMMIT). Zero: no bound, as with
	// --storage-opt size; the sizer warns as LVM does when virtual sizes pass the pool.
	Overcommit float64
	// Ceiling, when set (by the pool guard), turns the pool's data size into the size the
	// over-commit bound counts with, and says in words what that size is.
	Ceiling func(poolData int64) (int64, string)
}

// parse reads a label; a malformed one is an *errs.Refusal.
func parse(what, label string) (int64, error) {
	want, err := size.Parse(label)
	if err != nil {
		return 0, &errs.Refusal{What: what, Reason: err.Error()}
	}
	return want, nil
}

// ask is what a container is asked to have, and what decide weighs it against.
type ask struct {
	Explicit  int64  // the size dmsize grow asks for; 0: the label's
	Label     string // the dm.size label, when Labelled
	Labelled  bool
	Current   int64 // the size the container has now (the largest of the sizes below and its device's)
	Cached    int64 // the engine's cached size of the device
	Persisted int64 // the size the engine's next start reads
	Applied   int64 // the size the record says was applied
	Grown     int64 // the size dmsize grow gave (the label never takes it back)
}

// decide is the size a container should have: the explicit size, or its label's but never
// below what dmsize grow gave. what names the ask in messages; "" when nothing is asked (no
// label). A malformed label, or a size below the current one, is an *errs.Refusal; a label below
// a size dmsize gave (Applied) or restored (Persisted above Cached) is not a shrink: the label
// was met before and the size stays. want <= Current means there is nothing to grow.
func decide(a ask) (want int64, what string, err error) {
	if a.Explicit > 0 {
		what = "size " + size.Format(a.Explicit)
		if a.Explicit < a.Current {
			err = shrink(what, a.Explicit, a.Current)
		}
		return a.Explicit, what, err
	}
	if !a.Labelled {
		return 0, "", nil
	}
	what = "label " + size.Label + "=" + a.Label
	want, err = parse(what, a.Label)
	if err == nil && want < a.Current && a.Applied == 0 && a.Persisted <= a.Cached {
		err = shrink(what, want, a.Current)
	}
	return max(want, a.Grown), what, err
}

// shrink is the refusal of a size below the container's.
func shrink(what string, want, current int64) error {
	return &errs.Refusal{What: what, Reason: fmt.Sprintf("%s is smaller than the current size %s; dmsize never shrinks a filesystem", size.Format(want), size.Format(current))}
}

// bounded reports whether the policy needs the pool's size and the other grants.
func (p Policy) bounded() bool { return p.Overcommit > 0 }

// admit checks growth to want bytes, given the pool's data size and the sum of the sizes
// dmsize has given the other containers (both used only when Overcommit is set).
func (p Policy) admit(what string, want, poolData, others int64) error {
	if p.Max > 0 && want > p.Max {
		return &errs.Refusal{What: what, Setting: "MAX_SIZE", Reason: fmt.Sprintf("%s is above the plugin's maximum %s (docker plugin set dmsize MAX_SIZE=...)", size.Format(want), size.Format(p.Max))}
	}
	if !p.bounded() || poolData <= 0 {
		return nil
	}
	base, of := poolData, "the pool's "+size.Format(poolData)+" data"
	if p.Ceiling != nil {
		if c, note := p.Ceiling(poolData); note != "" {
			base, of = max(c, poolData), note
		}
	}
	limit := p.Overcommit * float64(base)
	if float64(others)+float64(want) > limit {
		return &errs.Refusal{What: what, Setting: "OVERCOMMIT", Reason: fmt.Sprintf("the pool cannot hold it: %s for this container plus %s given to others is above %g × %s (%s; docker plugin set dmsize OVERCOMMIT=...)",
			size.Format(want), size.Format(others), p.Overcommit, of, size.Format(int64(limit)))}
	}
	return nil
}

// Package errs holds the one error type every dmsize layer uses for "no".
package errs

import (
	"errors"
	"fmt"
)

// Refusal is a request dmsize will not carry out: a shrink, a size over a setting, a
// container or volume in the wrong state. Nothing was changed. Every layer returns it; the
// plugin answers it once, as refused, and anything else as a failure.
type Refusal struct {
	// What names the request ("label dm.size=42G", "size 60GiB") or, for a shrink, what
	// would have shrunk ("file /var/lib/docker/devicemapper/devicemapper/data"); "" when
	// Reason names it.
	What string
	// Reason says why, with the numbers; a shrink's is built from the sizes.
	Reason string
	// Setting is the plugin setting that refuses it (MAX_SIZE, MAX_POOL_SIZE...); "" when
	// none does (a shrink, the kernel's maximum, a volume in the wrong state).
	Setting string
	// Current and Requested are the sizes in bytes of a shrink (set by Shrink only); 0 otherwise.
	Current, Requested int64
}

func (r *Refusal) Error() string {
	switch {
	case r.Current > 0: // a shrink
		return fmt.Sprintf("refusing to shrink %s from %d to %d bytes (%s GiB to %s GiB)",
			r.What, r.Current, r.Requested, gib(r.Current), gib(r.Requested))
	case r.What == "":
		return r.Reason
	}
	return r.What + " rejected: " + r.Reason
}

// Refuse is a Refusal whose reason is the formatted message.
func Refuse(format string, a ...any) error {
	return &Refusal{Reason: fmt.Sprintf(format, a...)}
}

// Shrink refuses to make what smaller. dmsize only ever grows: shrinking a loop file or a
// filesystem under a live pool or container would destroy data.
func Shrink(what string, current, requested int64) error {
	return &Refusal{What: what, Current: current, Requested: requested}
}

// IsRefusal says whether err is, or wraps, a *Refusal.
func IsRefusal(err error) bool {
	var r *Refusal
	return errors.As(err, &r)
}

func gib(n int64) string { return fmt.Sprintf("%.2f", float64(n)/(1<<30)) }

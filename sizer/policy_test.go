package sizer

import (
	"errors"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/kernel/errs"
)

// decide, each branch: nothing asked, an explicit size (grow, equal, shrink), a label (grow,
// met, malformed, below the size: a shrink unless dmsize gave or restored it), and a label
// never taking back what dmsize grow gave.
func TestDecide(t *testing.T) {
	const g = int64(1) << 30
	for _, tc := range []struct {
		name   string
		a      ask
		want   int64
		what   string
		reject string // "" none; else part of the rejection
	}{
		{"no label, nothing asked", ask{Current: 10 * g}, 0, "", ""},
		{"explicit growth", ask{Explicit: 20 * g, Current: 10 * g}, 20 * g, "size 20GiB", ""},
		{"explicit, the size it has", ask{Explicit: 10 * g, Current: 10 * g}, 10 * g, "size 10GiB", ""},
		{"explicit shrink", ask{Explicit: 5 * g, Current: 10 * g}, 5 * g, "size 5GiB", "smaller than the current size 10GiB"},
		{"explicit beats the label", ask{Explicit: 30 * g, Label: "20G", Labelled: true, Current: 10 * g}, 30 * g, "size 30GiB", ""},
		{"label growth", ask{Label: "42G", Labelled: true, Current: 10 * g, Cached: 10 * g}, 42 * g, "label dm.size=42G", ""},
		{"label met", ask{Label: "42G", Labelled: true, Current: 42 * g, Cached: 42 * g}, 42 * g, "label dm.size=42G", ""},
		{"label malformed", ask{Label: "42X", Labelled: true, Current: 10 * g}, 0, "label dm.size=42X", "42X"},
		{"label below the base size", ask{Label: "5G", Labelled: true, Current: 10 * g, Cached: 10 * g}, 5 * g, "label dm.size=5G", "never shrinks"},
		{"label below what dmsize applied", ask{Label: "20G", Labelled: true, Current: 30 * g, Cached: 10 * g, Persisted: 30 * g, Applied: 30 * g}, 20 * g, "label dm.size=20G", ""},
		{"label below a size dmsize restored", ask{Label: "20G", Labelled: true, Current: 30 * g, Cached: 10 * g, Persisted: 30 * g}, 20 * g, "label dm.size=20G", ""},
		{"label below what dmsize grow gave", ask{Label: "20G", Labelled: true, Current: 30 * g, Cached: 30 * g, Persisted: 30 * g, Applied: 30 * g, Grown: 30 * g}, 30 * g, "label dm.size=20G", ""},
		{"label above what dmsize grow gave", ask{Label: "40G", Labelled: true, Current: 30 * g, Cached: 30 * g, Persisted: 30 * g, Applied: 30 * g, Grown: 30 * g}, 40 * g, "label dm.size=40G", ""},
	} {
		want, what, err := decide(tc.a)
		if want != tc.want || what != tc.what {
			t.Errorf("%s: decide = %d %q, want %d %q", tc.name, want, what, tc.want, tc.what)
		}
		var rej *errs.Refusal
		switch {
		case tc.reject == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.reject != "" && (!errors.As(err, &rej) || !strings.Contains(err.Error(), tc.reject)):
			t.Errorf("%s: %v, want a rejection saying %q", tc.name, err, tc.reject)
		}
	}
}

package sizer

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/kernel/errs"
)

// dmsize grow: a running and a stopped container without a label, by name; the size survives
// stop/start, a plugin restart and an engine restart; a smaller label later changes nothing, a
// larger one wins.
func TestGrowExplicit(t *testing.T) {
	r := newRig(t)
	run := r.w.create(1, nil)
	r.w.start(t, run.ID)
	res, err := r.s.Grow(context.Background(), run.Name, 60*G, false)
	if err != nil || res.Action != Grown || res.Strategy != GrowLive || res.Before != 10*G || res.After != 60*G {
		t.Fatalf("%+v %v", res, err)
	}
	stopped := r.w.create(2, label("20G"))
	if res, err := r.s.Grow(context.Background(), stopped.ID[:12], 30*G, false); err != nil || res.Strategy != ViaEngine {
		t.Fatalf("%+v %v", res, err)
	}
	// The label (20G) is below the grown size: nothing changes, no rejection.
	r.mustEnsure(stopped.ID, Unchanged)
	r.w.crash()
	r.restartPlugin(Policy{})
	r.s.Reconcile(context.Background())
	drain(t, r.s)
	for _, id := range []string{run.ID, stopped.ID} {
		r.w.stop(id)
	}
	for id, want := range map[string]int64{run.ID: 60 * G, stopped.ID: 30 * G} {
		if got, err := r.w.start(t, id); err != nil || got != want {
			t.Fatalf("%s after a plugin restart: %d, %v", short(id), got, err)
		}
	}
	r.w.restartEngine()
	r.restartPlugin(Policy{})
	r.w.ctrs[stopped.ID].c.Labels = label("40G")
	if res := r.mustEnsure(stopped.ID, Grown); res.After != 40*G {
		t.Fatalf("%+v", res)
	}
	// Idempotent: already that size.
	if res, err := r.s.Grow(context.Background(), run.ID, 60*G, false); err != nil || res.Action != Unchanged {
		t.Fatalf("%+v %v", res, err)
	}
	st, err := r.s.Status(context.Background(), stopped.Name)
	if err != nil || !st.Known || st.Record.Grown != 30*G || st.Persisted != 40*G || st.Last.Action != Grown {
		t.Fatalf("status %+v %v", st, err)
	}
}

// Bad requests change nothing: a shrink, a size over MAX_SIZE, an unknown container, one not
// on the thin pool. A dry run changes nothing either.
func TestGrowRefusals(t *testing.T) {
	r := newRig(t)
	r.restartPlugin(Policy{Max: 100 * G})
	c := r.w.create(1, nil)
	for _, tc := range []struct {
		size   int64
		reason string
	}{{5 * G, "smaller than the current size 10GiB"}, {200 * G, "above the plugin's maximum 100GiB"}} {
		res, err := r.s.Grow(context.Background(), c.Name, tc.size, false)
		if !errs.IsRefusal(err) || res.Action != Rejected || !strings.Contains(err.Error(), tc.reason) {
			t.Fatalf("%d: %+v %v", tc.size, res, err)
		}
	}
	if _, err := r.s.Grow(context.Background(), "nosuch", 20*G, false); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	other := r.w.create(2, nil)
	r.w.ctrs[other.ID].c.Device = ""
	if _, err := r.s.Grow(context.Background(), other.ID, 20*G, false); !errs.IsRefusal(err) {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		size int64
		want Action
		err  bool
	}{{20 * G, WouldGrow, false}, {10 * G, Unchanged, false}, {5 * G, Unchanged, true}, {200 * G, Unchanged, true}} {
		res, err := r.s.Grow(context.Background(), c.ID, tc.size, true)
		if (err != nil) != tc.err || (!tc.err && res.Action != tc.want) {
			t.Fatalf("dry run %d: %+v %v", tc.size, res, err)
		}
	}
	if len(r.s.Store.All()) != 0 || r.w.meta[c.Device] != 10*G || r.w.devs[c.Device] != nil || r.w.Holds() != 0 {
		t.Fatalf("a refused or dry request changed something: records %d meta %d dev %+v", len(r.s.Store.All()), r.w.meta[c.Device], r.w.devs[c.Device])
	}
	known, err := r.s.Known(context.Background())
	if err != nil || len(known) != 0 {
		t.Fatalf("known %v %v", known, err)
	}
}

// Grows racing each other and a label sizing on one container are serialised: each finishes
// whole, and the container ends at the largest size asked.
func TestGrowRaces(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("25G"))
	r.w.start(t, c.ID)
	done := make(chan error, 4)
	for _, sz := range []int64{20 * G, 30 * G, 40 * G} {
		go func() { _, err := r.s.Grow(context.Background(), c.Name, sz, false); done <- err }()
	}
	go func() { _, err := r.ensure(c.ID); done <- err }()
	for range 4 {
		if err := <-done; err != nil && !errs.IsRefusal(err) {
			t.Fatal(err) // a grow that lost to a larger one is refused as a shrink, nothing else
		}
	}
	if got := r.w.fsOf(1); got != 40*G {
		t.Fatalf("filesystem %d after the race", got)
	}
	if r.s.Locks() != 0 {
		t.Fatalf("%d lock entries", r.s.Locks())
	}
}

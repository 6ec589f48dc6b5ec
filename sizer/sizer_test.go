package sizer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/kernel/errs"
)

// A stopped container is grown through the engine's mount before its first start, held, and
// starts at its size; stop/start keeps it; an engine restart makes the hold unnecessary.
func TestGrowStoppedViaEngine(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("42G"))
	res := r.mustEnsure(c.ID, Grown)
	if res.Strategy != ViaEngine || !res.Held || res.Before != 10*G || res.After != 42*G {
		t.Fatalf("result %+v", res)
	}
	if r.w.mounts != 0 {
		t.Fatalf("the engine's mount was not released: %d", r.w.mounts)
	}
	for i := 0; i < 3; i++ {
		if got, err := r.w.start(t, c.ID); err != nil || got != 42*G {
			t.Fatalf("start %d: %d, %v", i, got, err)
		}
		r.w.stop(c.ID)
	}
	r.mustEnsure(c.ID, Unchanged)
	if rec, _ := r.s.Store.Get(c.ID); rec.Applied != 42*G || rec.Want != 42*G {
		t.Fatalf("record %+v", rec)
	}
	r.w.restartEngine()
	r.restartPlugin(Policy{})
	res = r.mustEnsure(c.ID, Unchanged)
	if res.Held {
		t.Fatal("held after the engine restarted with the persisted size")
	}
	if got, err := r.w.start(t, c.ID); err != nil || got != 42*G {
		t.Fatalf("start after an engine restart: %d, %v", got, err)
	}
}

func TestGrowRunningLive(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("20G"))
	r.w.start(t, c.ID)
	res := r.mustEnsure(c.ID, Grown)
	if res.Strategy != GrowLive || r.w.fs[1] != 20*G {
		t.Fatalf("result %+v, fs %d", res, r.w.fs[1])
	}
	// Growing the label by the short ID and by the name resolves to the same container.
	r.w.ctrs[c.ID].c.Labels = label("30G")
	r.mustEnsure(c.Name, Grown)
	r.w.ctrs[c.ID].c.Labels = label("40G")
	r.mustEnsure(c.ID[:12], Grown)
	r.w.stop(c.ID)
	if got, err := r.w.start(t, c.ID); err != nil || got != 40*G {
		t.Fatalf("restart: %d, %v", got, err)
	}
}

// The kill -9 matrix: a crash right after each step, on a stopped and on a running container.
// Before the plugin is back the container starts at its old size or its new one (after the
// filesystem grew, only the restarted plugin can make it start: the documented window); once a
// fresh plugin reconciled, it starts at the new size. The same holds after an engine restart.
// StepActivated is the repair's step, not a growth's: a stopped container's grown device that
// the engine deactivated while dmsize was down is activated again by the next plugin, which is
// killed right after (crashAt sets that up).
func TestCrashAfterEachStep(t *testing.T) {
	steps := []string{StepIntent, StepPersisted, StepMounted, StepHeld, StepDevice, StepFilesystem, StepApplied, StepActivated}
	for _, running := range []bool{false, true} {
		for _, step := range steps {
			if running && (step == StepMounted || step == StepActivated) {
				continue // a running container's device is active: never mounted nor re-activated
			}
			// Before the re-activation: the first plugin finished its growth (""), or was
			// killed after the size was persisted, or after the filesystem grew.
			priors := []string{""}
			if step == StepActivated {
				priors = []string{"", StepPersisted, StepFilesystem}
			}
			for _, prior := range priors {
				for _, engineRestart := range []bool{false, true} {
					name := fmt.Sprintf("running=%v/%s/engine-restart=%v", running, step, engineRestart)
					if prior != "" {
						name = fmt.Sprintf("running=%v/%s-after-%s/engine-restart=%v", running, step, prior, engineRestart)
					}
					t.Run(name, func(t *testing.T) { crashAt(t, step, prior, running, engineRestart) })
				}
			}
		}
	}
}

// crashAt kills the plugin right after step. For StepActivated, a first plugin grows the
// stopped container (killed after prior, when set) and dies: its hold goes with it, the
// engine's deferred removal completes, and the device is gone; the next plugin re-activates it.
func crashAt(t *testing.T, step, prior string, running, engineRestart bool) {
	r := newRig(t)
	c := r.w.create(1, label("42G"))
	if running {
		r.w.start(t, c.ID)
	}
	if step == StepActivated {
		r.crash = prior
		if _, err := r.ensure(c.ID); (prior == "") != (err == nil) {
			t.Fatalf("the first plugin, to crash at %q: %v", prior, err)
		}
		r.w.crash()
		if st, _ := r.w.State(c.Device); st.Exists {
			t.Fatalf("the device outlived the first plugin's hold: %+v", st)
		}
		r.restartPlugin(Policy{Max: 1 << 40})
	}
	r.crash = step
	if _, err := r.ensure(c.ID); !errors.Is(err, errCrash) {
		t.Fatalf("no crash at %s: %v", step, err)
	}
	r.w.crash()
	if st, _ := r.w.State(c.Device); step == StepActivated && (!st.Active || st.Size != 42*G || r.w.Held(c.Device)) {
		t.Fatalf("killed after the re-activation: device %+v, held %v; want active at 42G, not held", st, r.w.Held(c.Device))
	}
	fsGrown := r.w.fs[1] > 10*G
	if running {
		// The engine kept its mount: the container runs on, and can be stopped and started
		// again as long as the filesystem fits its device.
		r.w.stop(c.ID)
	}
	if engineRestart {
		r.w.restartEngine()
	} else if got, err := r.w.start(t, c.ID); err == nil {
		if got != 10*G && got != 42*G {
			t.Fatalf("started at %d", got)
		}
		r.w.stop(c.ID)
	} else if !fsGrown {
		t.Fatalf("the container cannot start before the plugin is back, with its filesystem unchanged: %v", err)
	}
	r.restartPlugin(Policy{Max: 1 << 40})
	r.s.Reconcile(context.Background())
	drain(t, r.s)
	if got, err := r.w.start(t, c.ID); err != nil || got != 42*G {
		t.Fatalf("start after the plugin came back: %d, %v", got, err)
	}
	r.w.stop(c.ID)
	if got, err := r.w.start(t, c.ID); err != nil || got != 42*G {
		t.Fatalf("second start: %d, %v", got, err)
	}
	if rec, _ := r.s.Store.Get(c.ID); rec.Applied != 42*G {
		t.Fatalf("record %+v", rec)
	}
}

// drain runs the sizer's workers until its queue is empty.
func drain(t *testing.T, s *Sizer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, time.Second); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Queued() > 0 || s.Locks() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue not drained: %d queued, %d locks", s.Queued(), s.Locks())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

// A failure (not a crash) at any device or filesystem operation leaves a container that
// starts, and the next Ensure finishes the growth.
func TestFailureThenRetry(t *testing.T) {
	for _, op := range []string{"state", "grow", "growfs", "hold", "pool", "persist", "persisted"} {
		for _, running := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/running=%v", op, running), func(t *testing.T) {
				r := newRig(t)
				c := r.w.create(1, label("42G"))
				if running {
					r.w.start(t, c.ID)
				}
				r.w.fail[op] = errors.New("EIO")
				res, err := r.ensure(c.ID)
				if err == nil || res.Action != Failed {
					t.Fatalf("%+v, %v", res, err)
				}
				if errs.IsRefusal(err) {
					t.Fatal("a transient failure reported as a rejection")
				}
				if rec, _ := r.s.Store.Get(c.ID); rec.Rejected != "" {
					t.Fatalf("a transient failure recorded as a rejection: %+v", rec)
				}
				r.w.stop(c.ID)
				if got, err := r.w.start(t, c.ID); err != nil {
					t.Fatalf("cannot start after a failed %s: %v", op, err)
				} else if got != 10*G && got != 42*G {
					t.Fatalf("size %d", got)
				}
				r.w.stop(c.ID)
				delete(r.w.fail, op)
				r.ensure(c.ID)
				if got, err := r.w.start(t, c.ID); err != nil || got != 42*G {
					t.Fatalf("after the retry: %d, %v", got, err)
				}
				if r.obs.actions["failed"] != 1 || r.obs.actions["rejected"] != 0 {
					t.Fatalf("observed %v", r.obs.actions)
				}
			})
		}
	}
}

// Bad labels: one log line each, naming the container, the label and the reason; the
// container keeps its size; a second event logs nothing new.
func TestRejections(t *testing.T) {
	r := newRig(t)
	r.restartPlugin(Policy{Max: 100 * G, Overcommit: 1.5})
	r.w.pool = 20 * G
	for i, tc := range []struct{ label, reason string }{
		{"42X", "not a size in Docker's grammar"},
		{"0", "must be positive"},
		{"-1G", "not a size"},
		{"5G", "smaller than the current size"},
		{"200G", "above the plugin's maximum 100GiB"},
		{"40G", "the pool cannot hold it"},
	} {
		c := r.w.create(i+1, label(tc.label))
		for j := 0; j < 2; j++ {
			res, err := r.ensure(c.ID)
			if !errs.IsRefusal(err) || res.Action != Rejected || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("%s: %+v, %v", tc.label, res, err)
			}
		}
		if n := len(r.lines(logrus.WarnLevel, c.Name, "dm.size="+tc.label+" rejected", tc.reason)); n != 1 {
			t.Fatalf("%s: %d log lines", tc.label, n)
		}
		if got, err := r.w.start(t, c.ID); err != nil || got != 10*G {
			t.Fatalf("%s: %d, %v", tc.label, got, err)
		}
	}
	if r.obs.actions["rejected"] != 12 {
		t.Fatalf("observed %v", r.obs.actions)
	}
}

// Lowering MAX_SIZE or OVERCOMMIT after a size was applied never costs it: the safety steps
// run whatever the policy says now.
func TestPolicyLoweredAfterApplied(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("42G"))
	r.mustEnsure(c.ID, Grown)
	r.w.crash() // a plugin restart with the new settings, between a stop and the next start
	r.restartPlugin(Policy{Max: 20 * G, Overcommit: 0.1})
	res := r.mustEnsure(c.ID, Repaired)
	if res.Strategy != Reactivate || !res.Held {
		t.Fatalf("%+v", res)
	}
	if got, err := r.w.start(t, c.ID); err != nil || got != 42*G {
		t.Fatalf("start: %d, %v", got, err)
	}
	// A label raised past the new maximum is refused; the container keeps 42G.
	r.w.ctrs[c.ID].c.Labels = label("50G")
	if _, err := r.ensure(c.ID); !errs.IsRefusal(err) {
		t.Fatalf("50G over MAX_SIZE=20G: %v", err)
	}
	r.w.stop(c.ID)
	if got, err := r.w.start(t, c.ID); err != nil || got != 42*G {
		t.Fatalf("start: %d, %v", got, err)
	}
}

// A burst of concurrent growths never passes the over-commit bound together.
func TestOvercommitUnderBurst(t *testing.T) {
	r := newRig(t)
	r.restartPlugin(Policy{Overcommit: 1})
	r.w.pool = 100 * G
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for i := 1; i <= 20; i++ {
		c := r.w.create(i, label("20G"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, _ := r.ensure(c.ID); res.Action == Grown {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if granted != 5 {
		t.Fatalf("%d containers of 20G granted on a 100G pool with OVERCOMMIT=1", granted)
	}
	if r.s.Locks() != 0 {
		t.Fatalf("%d lock entries left", r.s.Locks())
	}
}

// With no bound (the default), a label above the pool's size is granted, with one LVM-style
// warning and the ratio exported.
func TestOvercommitWarns(t *testing.T) {
	r := newRig(t)
	r.w.pool = 8 * G
	c := r.w.create(1, label("20G"))
	r.mustEnsure(c.ID, Grown)
	if n := len(r.lines(logrus.WarnLevel, "exceeds the size of the thin pool", c.Name)); n != 1 {
		t.Fatalf("%d warnings", n)
	}
	if r.obs.ratio != 2.5 {
		t.Fatalf("ratio %v", r.obs.ratio)
	}
}

// A device the engine is activating right now is left alone, with an error; the next event
// finds it active.
func TestEngineActivating(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("42G"))
	r.mustEnsure(c.ID, Grown)
	r.w.crash()
	r.restartPlugin(Policy{})
	r.w.activating[c.Device] = true
	if _, err := r.ensure(c.ID); err == nil || !strings.Contains(err.Error(), "being activated by the engine") {
		t.Fatalf("%v", err)
	}
	delete(r.w.activating, c.Device)
	r.mustEnsure(c.ID, Repaired)
}

// The engine activated the device itself at its stale size while the plugin was down (the
// filesystem fitted: a crash before it grew): the device is grown back and the growth finished.
func TestEngineActivatedSmallWhileDown(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("42G"))
	r.crash = StepDevice
	r.ensure(c.ID)
	r.w.crash()
	if got, err := r.w.start(t, c.ID); err != nil || got != 10*G {
		t.Fatalf("%d %v", got, err)
	}
	r.restartPlugin(Policy{})
	r.mustEnsure(c.ID, Repaired)
	if r.w.fs[1] != 42*G || r.w.devs[c.Device].size != 42*G {
		t.Fatalf("fs %d dev %+v", r.w.fs[1], r.w.devs[c.Device])
	}
}

// The backend lost the size dmsize gave a device (containerd's devmapper snapshotter drops a
// record it cannot prove is the device's, such as one an older dmsize wrote): the sizer's own
// record, by container ID, says what it applied, and the next Ensure persists it again before
// the engine re-creates the device at its old size.
func TestBackendLostTheAppliedSize(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("42G"))
	r.mustEnsure(c.ID, Grown)
	r.w.meta[c.Device] = 10 * G // the backend's record dropped: it says what the engine does
	r.restartPlugin(Policy{})
	r.mustEnsure(c.ID, Repaired)
	if r.w.meta[c.Device] != 42*G {
		t.Fatalf("persisted %d GiB, want 42", r.w.meta[c.Device]/G)
	}
	r.w.restartEngine() // or a reboot: the engine re-creates the device from the persisted size
	if got, err := r.w.start(t, c.ID); err != nil || got != 42*G {
		t.Fatalf("start: %d, %v", got, err)
	}
}

// A read-only root filesystem refuses the engine's upload: the growth waits for the start.
func TestReadOnlyRootfs(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("42G"))
	r.w.mountErr = errors.New("container rootfs is marked read-only")
	if _, err := r.ensure(c.ID); err == nil || !strings.Contains(err.Error(), "sized when it starts") {
		t.Fatalf("%v", err)
	}
	r.w.mountErr = nil
	r.w.start(t, c.ID)
	r.mustEnsure(c.ID, Repaired)
	if r.w.fs[1] != 42*G {
		t.Fatalf("fs %d", r.w.fs[1])
	}
}

// An engine set up so that a hold cannot work refuses every growth, naming the container.
func TestRefuse(t *testing.T) {
	r := newRig(t)
	r.s.Refuse = errors.New("the engine runs without deferred device removal")
	c := r.w.create(1, label("42G"))
	if _, err := r.ensure(c.ID); !errs.IsRefusal(err) {
		t.Fatal(err)
	}
	if len(r.lines(logrus.WarnLevel, c.Name, "deferred device removal")) != 1 {
		t.Fatal("no line naming the container")
	}
	if err := r.s.CheckNew("42G", 10*G); !errs.IsRefusal(err) {
		t.Fatalf("strict mode's check let a growth through on such an engine: %v", err)
	}
}

// Events: create/start queue an Ensure, destroy a Forget that releases the hold and the record;
// unlabelled containers are ignored; a burst of events for one container is coalesced.
func TestEventsAndForget(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("42G"))
	plain := r.w.create(2, nil)
	for i := 0; i < 50; i++ {
		r.s.Handle(Event{Action: "start", ID: c.ID, Labels: c.Labels})
	}
	r.s.Handle(Event{Action: "create", ID: plain.ID})
	r.s.Handle(Event{Action: "die", ID: c.ID, Labels: c.Labels})
	if q := r.s.Queued(); q != 1 {
		t.Fatalf("%d queued", q)
	}
	drain(t, r.s)
	if r.w.fs[1] != 42*G || r.w.Holds() != 1 {
		t.Fatalf("fs %d holds %d", r.w.fs[1], r.w.Holds())
	}
	r.w.remove(c.ID)
	r.s.Handle(Event{Action: "destroy", ID: c.ID, Labels: c.Labels})
	drain(t, r.s)
	if r.w.Holds() != 0 || len(r.s.Store.All()) != 0 || r.w.devs[c.Device] != nil {
		t.Fatalf("holds %d records %d device %+v", r.w.Holds(), len(r.s.Store.All()), r.w.devs[c.Device])
	}
}

// Reconcile forgets records of containers that are gone, and an Ensure of a removed
// container forgets it too.
func TestReconcileForgetsGone(t *testing.T) {
	r := newRig(t)
	a, b := r.w.create(1, label("20G")), r.w.create(2, label("20G"))
	r.mustEnsure(a.ID, Grown)
	r.mustEnsure(b.ID, Grown)
	r.w.remove(a.ID)
	r.w.remove(b.ID)
	r.restartPlugin(Policy{})
	r.s.Reconcile(context.Background())
	drain(t, r.s)
	if n := len(r.s.Store.All()); n != 0 {
		t.Fatalf("%d records left", n)
	}
	r.w.fail["list"] = errors.New("EOF")
	r.s.Reconcile(context.Background()) // logged, nothing queued
	if len(r.lines(logrus.WarnLevel, "reconcile")) != 1 {
		t.Fatal("no warning for a failed listing")
	}
}

// Three rounds of 40 creates and removes leave no lock entries, records, holds or devices.
func TestRoundsLeaveNothing(t *testing.T) {
	r := newRig(t)
	for round := 0; round < 3; round++ {
		var ids []string
		for i := 1; i <= 40; i++ {
			c := r.w.create(round*100+i, label("12G"))
			ids = append(ids, c.ID)
			r.s.Handle(Event{Action: "create", ID: c.ID, Labels: c.Labels})
		}
		drain(t, r.s)
		for _, id := range ids {
			r.w.remove(id)
			r.s.Handle(Event{Action: "destroy", ID: id, Labels: label("12G")})
		}
		drain(t, r.s)
		if r.s.Locks() != 0 || len(r.s.Store.All()) != 0 || r.w.Holds() != 0 || len(r.w.devs) != 0 {
			t.Fatalf("round %d: locks %d records %d holds %d devices %d", round, r.s.Locks(), len(r.s.Store.All()), r.w.Holds(), len(r.w.devs))
		}
	}
}

// The per-container lock honours its context and is keyed by the full ID whatever the caller
// passed.
func TestLocks(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("42G"))
	unlock, err := r.s.locks.lock(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.s.Ensure(ctx, c.Name); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ensure by name while the ID is locked: %v", err)
	}
	if _, err := r.s.ReleaseForRemoval(ctx, c.Name); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReleaseForRemoval: %v", err)
	}
	r.s.Forget(ctx, c.ID) // gives up silently
	unlock()
	if r.s.Locks() != 0 {
		t.Fatalf("%d entries", r.s.Locks())
	}
}

// Strict mode: CheckNew applies the policy against the base size; ReleaseForRemoval lets the
// engine delete a held device at once.
func TestStrictModeHelpers(t *testing.T) {
	r := newRig(t)
	r.restartPlugin(Policy{Max: 100 * G, Overcommit: 1})
	r.w.pool = 50 * G
	for l, ok := range map[string]bool{"42G": true, "10G": true, "5G": false, "42X": false, "200G": false, "60G": false} {
		if err := r.s.CheckNew(l, 10*G); (err == nil) != ok {
			t.Errorf("CheckNew(%s): %v", l, err)
		}
	}
	c := r.w.create(1, label("42G"))
	r.mustEnsure(c.ID, Grown)
	// The container has just exited: the engine still has its device mounted, and unmounts it
	// (and asks for its deferred removal) a little later. dmsize lets go only after that.
	r.w.mu.Lock()
	r.w.devs[c.Device].opens++ // as the engine's start left it: mounted, no removal pending
	r.w.devs[c.Device].deferred = false
	r.w.mu.Unlock()
	var unmounted atomic.Bool
	go func() {
		time.Sleep(50 * time.Millisecond)
		r.w.mu.Lock()
		r.w.close(c.Device)
		r.w.deactivate(c.Device)
		unmounted.Store(true)
		r.w.mu.Unlock()
	}()
	id, err := r.s.ReleaseForRemoval(context.Background(), c.Name)
	if err != nil || id != c.ID || r.w.Holds() != 0 {
		t.Fatalf("%s %v holds %d", id, err, r.w.Holds())
	}
	if !unmounted.Load() {
		t.Fatal("dmsize let go of the device before the engine unmounted it")
	}
	if _, err := r.s.ReleaseForRemoval(context.Background(), "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	// A container that is not dmsize's gets no mark: its destroy event never reaches Forget.
	plain := r.w.create(2, nil)
	if id, err := r.s.ReleaseForRemoval(context.Background(), plain.ID); err != nil || id != "" {
		t.Fatalf("a plain container: %q %v, want \"\", nil", id, err)
	}
	if _, ok := r.s.removing.Load(plain.ID); ok {
		t.Fatal("a plain container was marked as being removed")
	}
	// Until the container is destroyed, no Ensure (a start event queued before the removal)
	// holds its device again, and no grow touches it.
	r.mustEnsure(c.ID, Skipped)
	if r.w.Holds() != 0 {
		t.Fatalf("an Ensure after the release held the device again")
	}
	if _, err := r.s.Grow(context.Background(), c.ID, 50*G, false); !errs.IsRefusal(err) || !strings.Contains(err.Error(), "being removed") {
		t.Fatalf("grow of a container being removed: %v", err)
	}
	// The removal failed: its Ensure is queued, and holds it again.
	r.s.RemovalFailed(c.ID)
	if r.s.Queued() != 1 {
		t.Fatalf("RemovalFailed queued %d", r.s.Queued())
	}
	r.s.removing.Delete(c.ID)    // what RemovalFailed did; the queued Ensure runs here
	r.mustEnsure(c.ID, Repaired) // the release let the stopped container's device go
	if r.w.Holds() != 1 {
		t.Fatalf("holds %d after the failed removal's Ensure, want 1", r.w.Holds())
	}
	// Destroyed after all: Forget clears the mark with the record.
	if _, err := r.s.ReleaseForRemoval(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	r.s.Forget(context.Background(), c.ID)
	if _, ok := r.s.removing.Load(c.ID); ok {
		t.Fatal("Forget left the removal mark")
	}
}

// While the engine says it is removing a container, no Ensure holds its device, whatever
// queued it and whether or not the removal mark is there (strict mode gave up looking, or the
// plugin restarted and its reconcile runs): a hold then would make the engine's delete of the
// device fail with EBUSY, and `docker rm` with it. Once the engine is done and the container is
// still there (the removal failed), its Ensure holds the device again.
func TestNoHoldWhileRemoving(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("42G"))
	r.mustEnsure(c.ID, Grown)
	if _, err := r.s.ReleaseForRemoval(context.Background(), c.Name); err != nil || r.w.Holds() != 0 {
		t.Fatalf("release: %v, holds %d", err, r.w.Holds())
	}
	r.w.ctrs[c.ID].c.State = "removing"
	r.s.removing.Delete(c.ID) // what RemovalFailed does
	r.mustEnsure(c.ID, Skipped)
	r.restartPlugin(Policy{Max: 1 << 40}) // no mark at all
	r.s.Reconcile(context.Background())
	drain(t, r.s)
	if r.w.Holds() != 0 {
		t.Fatalf("an Ensure held the device of a container the engine is removing")
	}
	if _, err := r.s.Grow(context.Background(), c.ID, 50*G, false); !errs.IsRefusal(err) || !strings.Contains(err.Error(), "being removed") {
		t.Fatalf("grow of a container being removed: %v", err)
	}
	r.w.ctrs[c.ID].c.State = "dead" // the removal failed
	r.mustEnsure(c.ID, Repaired)
	if r.w.Holds() != 1 {
		t.Fatalf("holds %d once the engine is done, want 1", r.w.Holds())
	}
}

// Containers that are not dmsize's are skipped; a gone container is skipped and forgotten.
func TestSkips(t *testing.T) {
	r := newRig(t)
	plain := r.w.create(1, nil)
	r.mustEnsure(plain.ID, Skipped)
	other := r.w.create(2, label("42G"))
	r.w.ctrs[other.ID].c.Device = "" // on overlay2
	r.mustEnsure(other.ID, Skipped)
	r.mustEnsure(id64(9), Skipped)
	r.w.fail["inspect"] = errors.New("EOF")
	if res, err := r.ensure(plain.ID); err == nil || res.Action != Failed {
		t.Fatalf("%+v %v", res, err)
	}
}

// A label equal to the current size, or lower than what dmsize gave, changes nothing.
func TestUnchanged(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("10G"))
	r.mustEnsure(c.ID, Unchanged)
	r.w.ctrs[c.ID].c.Labels = label("42G")
	r.mustEnsure(c.ID, Grown)
	r.w.ctrs[c.ID].c.Labels = label("20G")
	r.mustEnsure(c.ID, Unchanged)
	if rec, _ := r.s.Store.Get(c.ID); rec.Label != "20G" || rec.Applied != 42*G {
		t.Fatalf("record %+v", rec)
	}
}

// Run stops at its context's end and lets the work in flight finish.
func TestRunStops(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.s.Run(ctx, time.Second); close(done) }()
	c := r.w.create(1, label("42G"))
	r.s.Handle(Event{Action: "create", ID: c.ID, Labels: c.Labels})
	for r.w.fsOf(1) != 42*G {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

// A stopped container's held device is on its way out (deferred removal pending): a further
// growth goes through the engine's mount, whose activation cancels the removal, never through
// a private mount of a device the engine considers gone.
func TestGrowHeldStoppedDevice(t *testing.T) {
	r := newRig(t)
	c := r.w.create(1, label("42G"))
	r.mustEnsure(c.ID, Grown)
	r.w.start(t, c.ID)
	r.w.stop(c.ID)
	if d := r.w.devs[c.Device]; d == nil || !d.deferred || d.opens != 1 {
		t.Fatalf("held device after stop: %+v", d)
	}
	r.w.ctrs[c.ID].c.Labels = label("50G")
	if res := r.mustEnsure(c.ID, Grown); res.Strategy != ViaEngine {
		t.Fatalf("%+v", res)
	}
	if got, err := r.w.start(t, c.ID); err != nil || got != 50*G {
		t.Fatalf("start: %d, %v", got, err)
	}
}

// On an over-committed pool a burst warns when the pool first passes its size and each time
// the ratio doubles, not once per container.
func TestOvercommitWarnsRarely(t *testing.T) {
	r := newRig(t)
	r.w.pool = 10 * G
	for i := 1; i <= 40; i++ { // 10G each, +10G each growth: ratio 2, 4, ... 80
		c := r.w.create(i, label("20G"))
		r.mustEnsure(c.ID, Grown)
	}
	if n := len(r.lines(logrus.WarnLevel, "exceeds the size of the thin pool")); n < 5 || n > 8 {
		t.Fatalf("%d warnings for 40 growths on an over-committed pool", n)
	}
}

// Package sizer gives containers the root filesystem size their dm.size label asks for and
// keeps it: across stops and starts (a hold on the grown device), across engine restarts (the
// size persisted where the engine reads it at start), and across its own restarts and crashes
// (its records, and a repair pass on every container it sees).
//
// Crash safety comes from the order of the steps of a growth, each idempotent:
//
//	intent     record the admitted size               crash: nothing else changed
//	persisted  the engine's next start reads it        crash: device and filesystem as they were,
//	                                                   both no larger than the engine activates
//	mounted    (stopped container) the engine mounts   crash: the engine unmounts
//	held       dmsize holds the device open            crash: the hold goes with the process
//	device     the thin table grows                    crash: filesystem smaller than its device
//	fs         the filesystem grows                    crash: filesystem larger than the engine's
//	                                                   cached size: the next start repairs first
//	applied    the record says so
//
// The persisted size is never smaller than the filesystem. So the repair rule, run before
// anything else on every Ensure: a persisted size below the one the container's record says
// was applied is persisted again; a device the engine would re-create too small (persisted size
// above the engine's cached one) is activated at the persisted size and held, and a growth
// whose record is not applied is finished, whatever the label and the policy say now.
package sizer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/internal/crashpoint"
	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/size"
)

// Observer is told what the sizer does (the metrics).
type Observer interface {
	Sized(action string, err error)
	Overcommit(ratio float64)
}

// Config is what a Sizer is made of.
type Config struct {
	Engine  Engine
	Devices Devices
	Sizes   Sizes
	Store   *Store
	Policy  Policy
	Log     logrus.FieldLogger
	Obs     Observer // optional
	// MountTimeout bounds how long a growth waits for the engine to mount a stopped container.
	MountTimeout time.Duration
	// Workers bounds how many events are handled at once (4 when zero).
	Workers int
	// Refuse, when set, rejects every growth with this reason (an engine set up so that a
	// grown device would not survive a stop).
	Refuse error
}

// Sizer acts on the containers of one engine.
type Sizer struct {
	Config
	locks locks
	admit sync.Mutex // the over-commit check and the intent it admits, as one step
	last  sync.Map   // container ID -> Outcome of its last operation
	// removing holds the IDs whose device ReleaseForRemoval let go: no Ensure may hold it
	// again (a start event queued before the removal would) until the container is destroyed
	// or its removal failed (RemovalFailed).
	removing sync.Map
	// warned is the over-commit ratio last warned about (under admit).
	warned float64
	q      queue

	// step is called after each state-changing step; tests inject failures through it.
	step func(name string) error
}

// New makes a Sizer.
func New(c Config) *Sizer {
	if c.MountTimeout == 0 {
		c.MountTimeout = time.Minute
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	s := &Sizer{Config: c}
	s.q.init()
	s.step = func(name string) error { crashpoint.Here(name); return nil }
	return s
}

// Steps of a growth, as crash points and test hooks name them.
const (
	StepIntent     = "sizer-intent"
	StepPersisted  = "sizer-persisted"
	StepMounted    = "sizer-mounted"
	StepHeld       = "sizer-held"
	StepDevice     = "sizer-device-grown"
	StepFilesystem = "sizer-fs-grown"
	StepApplied    = "sizer-applied"
	StepActivated  = "sizer-reactivated"
)

// Result says what Ensure did.
type Result struct {
	Container      string
	Name           string
	Device         string
	Before, After  int64
	Held           bool
	Action         Action
	Strategy       Strategy
	Duration       time.Duration
	DeviceStall    time.Duration
	FilesystemTime time.Duration
}

// Ensure brings container ref (ID, short ID or name) to the size it should have: first it
// repairs what an interrupted sizing left, then it grows the container to its label (or to a
// larger size `dmsize grow` gave it). A label dmsize will not act on is logged once and
// returned as an *errs.Refusal; the container keeps its size.
func (s *Sizer) Ensure(ctx context.Context, ref string) (Result, error) {
	return s.observe(s.act(ctx, ref, request{}))
}

// Grow brings container ref to sz bytes (dmsize grow), with or without a label, running or
// not, under the same policy as labels; a larger label later still wins, a smaller one is
// unchanged. With dryRun it only says what it would do. A container already that size is
// Unchanged; a smaller size, a size over the policy and a container that is not on the
// engine's thin pool are *errs.Refusals; an unknown container is ErrNotFound.
func (s *Sizer) Grow(ctx context.Context, ref string, sz int64, dryRun bool) (Result, error) {
	return s.observe(s.act(ctx, ref, request{size: sz, dryRun: dryRun}))
}

func (s *Sizer) observe(r Result, err error) (Result, error) {
	if err != nil && !errs.IsRefusal(err) {
		r.Action = Failed
	}
	if s.Obs != nil && r.Action != WouldGrow {
		s.Obs.Sized(string(r.Action), err)
	}
	if idRE.MatchString(r.Container) && r.Action != Skipped && r.Action != WouldGrow {
		o := Outcome{Action: r.Action, At: time.Now()}
		if err != nil {
			o.Error = err.Error()
		}
		s.last.Store(r.Container, o)
	}
	return r, err
}

// request is what one operation asks of a container: its label's size (size 0), or an
// explicit size.
type request struct {
	size   int64
	dryRun bool
}

func (r request) explicit() bool { return r.size > 0 }

func (s *Sizer) act(ctx context.Context, ref string, req request) (Result, error) {
	start := time.Now()
	c, err := s.Engine.Container(ctx, ref)
	if errors.Is(err, ErrNotFound) && !req.explicit() {
		if idRE.MatchString(ref) {
			s.Forget(ctx, ref)
		}
		return Result{Container: ref, Action: Skipped}, nil
	}
	if err != nil {
		return Result{Container: ref}, err
	}
	res := Result{Container: c.ID, Name: c.Name, Device: c.Device, Action: Unchanged}
	if c.Device == "" {
		if req.explicit() {
			return res, &errs.Refusal{What: "size " + size.Format(req.size), Reason: "the container is not on the engine's devicemapper thin pool"}
		}
		res.Action = Skipped
		return res, nil
	}
	unlock, err := s.locks.lock(ctx, c.ID)
	if err != nil {
		return res, fmt.Errorf("container %s: waiting for another operation on it: %w", c.Name, err)
	}
	defer unlock()
	// Nothing holds the device of a container the engine is removing, marked or not (the
	// plugin restarted, or strict mode cleared the mark): it would be busy at the engine's
	// delete, and the removal would fail.
	if _, ok := s.removing.Load(c.ID); ok || c.State == "removing" {
		if req.explicit() {
			return res, &errs.Refusal{What: "size " + size.Format(req.size), Reason: "the container is being removed"}
		}
		res.Action = Skipped
		return res, nil
	}
	rec, known := s.Store.Get(c.ID)
	label, labelled := c.Labels[size.Label]
	if !req.explicit() && !labelled && !known {
		res.Action = Skipped
		return res, nil
	}
	log := s.Log.WithFields(logrus.Fields{"container": short(c.ID), "name": c.Name, "device": c.Device})
	if labelled {
		log = log.WithField("label", label)
	}
	if req.dryRun {
		return s.dryRun(c, rec, req.size, res)
	}

	// 1. Repair, whatever the label and the policy say now.
	st, persisted, err := s.repair(ctx, c, &rec, &res, log)
	if err != nil {
		log.WithError(err).Errorf("container %s: restoring its size %s failed; it may not start until the plugin succeeds", c.Name, size.Format(persisted))
		return res, err
	}
	current := max(c.Cached, persisted, st.Size, rec.Applied)
	res.Before, res.After = current, current

	// 2. The size asked: explicitly, or by the label (never below a size dmsize grow gave).
	a := ask{Explicit: req.size, Label: label, Labelled: labelled, Current: current,
		Cached: c.Cached, Persisted: persisted, Applied: rec.Applied, Grown: rec.Grown}
	want, what, err := decide(a)
	if what == "" {
		res.Duration = time.Since(start)
		return res, nil
	}
	// 3. Admitted by the policy (MAX_SIZE, OVERCOMMIT, the guard's ceiling), or rejected.
	if err == nil && want > current {
		err = s.admitGrowth(c, &rec, a, want, what)
	}
	if err != nil {
		if errs.IsRefusal(err) {
			res.Action = Rejected
			if !req.explicit() {
				s.reject(c, rec, label, err, current, log)
			}
		}
		return res, err
	}
	if want <= current {
		if labelled && (rec.Label != label || rec.Rejected != "") {
			rec.Label, rec.Rejected = label, ""
			s.Store.Put(rec) // only the label changes: a failed write loses nothing
		}
		res.Duration = time.Since(start)
		return res, nil
	}
	// 4. The growth, step by step (the table at the top of this file).
	if err := s.step(StepIntent); err != nil {
		return res, err
	}
	if err := s.grow(ctx, c, &rec, want, &res); err != nil {
		log.WithError(err).Errorf("container %s: growing its root filesystem to %s failed; it keeps %s", c.Name, size.Format(want), size.Format(current))
		return res, err
	}
	res.Action, res.After, res.Duration = Grown, want, time.Since(start)
	by := "its label"
	if req.explicit() {
		by = "dmsize grow"
	}
	log.WithFields(logrus.Fields{
		"from": res.Before, "to": res.After, "by": by, "strategy": res.Strategy, "duration_ms": res.Duration.Milliseconds(),
		"device_stall_ms": res.DeviceStall.Milliseconds(), "fs_ms": res.FilesystemTime.Milliseconds(), "held": res.Held,
	}).Infof("container %s: root filesystem %s -> %s", c.Name, size.Format(res.Before), size.Format(res.After))
	return res, nil
}

// dryRun says what Grow would do, reading only.
func (s *Sizer) dryRun(c Container, rec Record, want int64, res Result) (Result, error) {
	st, err := s.Devices.State(c.Device)
	if err != nil {
		return res, err
	}
	persisted, err := s.Sizes.Persisted(c.Device)
	if err != nil {
		return res, err
	}
	current := max(c.Cached, persisted, st.Size, rec.Applied)
	res.Before, res.After = current, current
	what := "size " + size.Format(want)
	switch {
	case want < current:
		return res, shrink(what, want, current)
	case want == current:
		return res, nil
	}
	s.admit.Lock()
	defer s.admit.Unlock()
	if _, err := s.admissible(c.ID, what, want); err != nil {
		return res, err
	}
	res.Action, res.After = WouldGrow, want
	return res, nil
}

// repair makes what dmsize gave container c safe before anything else: a device the engine
// would re-create too small is activated at its persisted size and held, and then a growth
// that did not finish is finished, as admitted. It returns the device's state and the
// persisted size.
func (s *Sizer) repair(ctx context.Context, c Container, rec *Record, res *Result, log logrus.FieldLogger) (DeviceState, int64, error) {
	st, err := s.Devices.State(c.Device)
	if err != nil {
		return st, 0, err
	}
	persisted, err := s.Sizes.Persisted(c.Device)
	if err != nil {
		return st, 0, err
	}
	if rec.ID == c.ID && rec.Device == c.Device && rec.DeviceID == c.DeviceID && rec.Applied > persisted {
		// The backend lost the size dmsize applied (the snapshotter drops a size record it
		// cannot prove is this device's): this record, by container ID, is proof enough, and
		// the filesystem may be that large.
		if err := s.Sizes.Persist(c.Device, rec.Applied); err != nil {
			return st, persisted, err
		}
		log.Infof("container %s: persisted its applied size %s again (the engine would re-create it at %s)", c.Name, size.Format(rec.Applied), size.Format(persisted))
		persisted, res.Action = rec.Applied, Repaired
	}
	if persisted > c.Cached {
		if err := s.keep(c, &st, persisted, res, log); err != nil {
			return st, persisted, err
		}
	}
	if rec.ID != "" && rec.Applied < persisted && rec.Want >= persisted {
		// The filesystem may be anywhere from its old size to the persisted one.
		log.Infof("container %s: finishing an interrupted growth to %s", c.Name, size.Format(persisted))
		if err := s.grow(ctx, c, rec, persisted, res); err != nil {
			return st, persisted, err
		}
		res.Action = Repaired
		st, err = s.Devices.State(c.Device)
	}
	return st, persisted, err
}

// keep makes sure the engine finds c's device at size (its persisted size, above the engine's
// cached one) whenever it starts the container: active at that size, and held.
func (s *Sizer) keep(c Container, st *DeviceState, sz int64, res *Result, log logrus.FieldLogger) error {
	if !st.Exists {
		if err := s.Devices.Activate(c.Device, c.DeviceID, sz); err != nil {
			return fmt.Errorf("re-activating %s at %s: %w", c.Device, size.Format(sz), err)
		}
		if err := s.step(StepActivated); err != nil {
			return err
		}
		log.WithField("size", sz).Infof("container %s: re-activated its grown device at %s (the engine would re-create it at %s)", c.Name, size.Format(sz), size.Format(c.Cached))
		res.Action, res.Strategy = Repaired, Reactivate
		var err error
		if *st, err = s.Devices.State(c.Device); err != nil {
			return err
		}
	}
	if !st.Active {
		// The engine is activating it right now, at its stale size: nothing dmsize can do
		// without racing it.
		return fmt.Errorf("device %s is being activated by the engine at %s, below its filesystem's %s", c.Device, size.Format(c.Cached), size.Format(sz))
	}
	if st.Size < sz {
		// The engine activated it itself while dmsize was down: grow it back to what the
		// filesystem may need.
		if _, err := s.Devices.Grow(c.Device, sz); err != nil {
			return err
		}
		st.Size = sz
	}
	if err := s.Devices.Hold(c.Device); err != nil {
		return err
	}
	res.Held = true
	return nil
}

// admitGrowth checks growth to want against the policy and records the intent, as one step
// across every container, so that a burst cannot pass the over-commit bound together. want and
// what are decide's answer to a.
func (s *Sizer) admitGrowth(c Container, rec *Record, a ask, want int64, what string) error {
	s.admit.Lock()
	defer s.admit.Unlock()
	poolData, err := s.admissible(c.ID, what, want)
	if err != nil {
		return err
	}
	// Applied starts at what the container has: a growth is interrupted only once its size
	// was persisted beyond it.
	*rec = Record{ID: c.ID, Name: c.Name, Device: c.Device, DeviceID: c.DeviceID, Label: a.Label, Grown: max(rec.Grown, a.Explicit),
		Want: want, Applied: max(rec.Applied, a.Current)}
	if err := s.Store.Put(*rec); err != nil {
		return err
	}
	s.warnOvercommit(c, want, a.Persisted, poolData)
	return nil
}

// admissible checks growth of container id to want bytes: refused outright on this engine, or
// against the policy with the pool's data size and what the other records hold, which it
// returns. The caller holds admit.
func (s *Sizer) admissible(id, what string, want int64) (int64, error) {
	if s.Refuse != nil {
		return 0, &errs.Refusal{What: what, Reason: "not applied: " + s.Refuse.Error()}
	}
	poolData, err := s.Devices.PoolData()
	if err != nil {
		return 0, err
	}
	return poolData, s.Policy.admit(what, want, poolData, s.Store.Granted(id))
}

// warnOvercommit says, as LVM does, when the virtual sizes of the pool's devices pass its data
// size. Thin provisioning exists to over-commit: it is a warning, never a refusal.
func (s *Sizer) warnOvercommit(c Container, want, persisted, poolData int64) {
	if poolData <= 0 {
		return
	}
	total, err := s.Sizes.Provisioned()
	if err != nil {
		s.Log.WithError(err).Debug("reading the pool's provisioned size")
		return
	}
	total += want - persisted
	ratio := float64(total) / float64(poolData)
	if s.Obs != nil {
		s.Obs.Overcommit(ratio)
	}
	// Once when the pool is first over-committed, then each time the ratio doubles: a burst of
	// creates on an over-committed pool says so a few times, not once per container.
	if ratio <= 1 {
		s.warned = 0
		return
	}
	if s.warned > 0 && ratio < 2*s.warned {
		s.Log.WithFields(logrus.Fields{"container": short(c.ID), "ratio": fmt.Sprintf("%.2f", ratio)}).Debug("pool over-committed")
		return
	}
	s.warned = ratio
	{
		s.Log.WithFields(logrus.Fields{"container": short(c.ID), "provisioned": total, "pool_data": poolData, "ratio": fmt.Sprintf("%.2f", ratio)}).
			Warnf("WARNING: container %s: sum of all thin device sizes (%s) exceeds the size of the thin pool (%s): %.2f× over-committed; the pool guard and the metrics are what keep it from filling",
				c.Name, size.Format(total), size.Format(poolData), ratio)
	}
}

// reject records and logs a rejection once per label and reason.
func (s *Sizer) reject(c Container, rec Record, label string, err error, current int64, log logrus.FieldLogger) {
	if rec.Rejected == err.Error() && rec.Label == label {
		return
	}
	log.WithField("size", size.Format(current)).Warnf("container %s: %v; it keeps its current size %s", c.Name, err, size.Format(current))
	rec.ID, rec.Name, rec.Device, rec.DeviceID = c.ID, c.Name, c.Device, c.DeviceID
	rec.Label, rec.Rejected, rec.Want = label, err.Error(), rec.Applied
	if perr := s.Store.Put(rec); perr != nil {
		log.WithError(perr).Error("recording the rejection")
	}
}

// grow brings container c's device and filesystem to want, in the crash-safe order, and
// records it applied. The intent (rec.Want >= want) is recorded before.
func (s *Sizer) grow(ctx context.Context, c Container, rec *Record, want int64, res *Result) error {
	if err := s.Sizes.Persist(c.Device, want); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("the engine deleted device %s: %w", c.Device, err)
		}
		return err
	}
	if err := s.step(StepPersisted); err != nil {
		return err
	}
	st, err := s.Devices.State(c.Device)
	if err != nil {
		return err
	}
	res.Strategy = GrowLive
	if (!st.Active || st.Deferred) && c.ReadOnly {
		// The engine refuses the upload of a read-only rootfs, and answers only once the
		// body is sent: it is grown live at its start instead.
		return fmt.Errorf("the container's root filesystem is read-only: it is sized when it starts")
	}
	if !st.Active || st.Deferred {
		// Absent, or going away: the engine deactivated it at the container's stop (a
		// holder or udev's probe may still have it open); its next activation cancels that.
		res.Strategy = ViaEngine
		m, err := s.mountViaEngine(ctx, c)
		if err != nil {
			return err
		}
		defer func() {
			if rerr := m.Release(); rerr != nil {
				// A read-only rootfs refuses the upload after the engine mounted it: what the
				// mount was for is done.
				s.Log.WithField("container", short(c.ID)).Debugf("releasing the engine's mount: %v", rerr)
			}
		}()
		if err := s.step(StepMounted); err != nil {
			return err
		}
	}
	// Hold before growing: a stop from now on leaves the device in place for the next start.
	if want > c.Cached {
		if err := s.Devices.Hold(c.Device); err != nil {
			return err
		}
		res.Held = true
		if err := s.step(StepHeld); err != nil {
			return err
		}
	}
	stall, err := s.Devices.Grow(c.Device, want)
	if err != nil {
		return err
	}
	res.DeviceStall = stall
	if err := s.step(StepDevice); err != nil {
		return err
	}
	fsTime, err := s.Devices.GrowFS(c.Device, want)
	if err != nil {
		return err
	}
	res.FilesystemTime = fsTime
	if err := s.step(StepFilesystem); err != nil {
		return err
	}
	rec.Applied = want
	rec.Rejected = ""
	if err := s.Store.Put(*rec); err != nil {
		return err
	}
	return s.step(StepApplied)
}

// mountViaEngine has the engine activate and mount a stopped container's device under its own
// locks, and waits until the engine's mount holds it (not only its activation: a private mount
// of dmsize's between the two could make the engine's own mount fail, e.g. with SELinux
// contexts).
func (s *Sizer) mountViaEngine(ctx context.Context, c Container) (Mount, error) {
	ctx, cancel := context.WithTimeout(ctx, s.MountTimeout)
	m := s.Engine.MountRootfs(ctx, c.ID)
	fail := func(err error) (Mount, error) {
		m.Release()
		cancel()
		return nil, err
	}
	for delay := 2 * time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		st, err := s.Devices.State(c.Device)
		if err != nil {
			return fail(err)
		}
		if mounted(st) {
			return releaseThen{m, cancel}, nil
		}
		select {
		case <-m.Done():
			if st, err = s.Devices.State(c.Device); err == nil && mounted(st) {
				return releaseThen{m, cancel}, nil
			}
			return fail(fmt.Errorf("the engine did not keep the container's root filesystem mounted (%v); it is sized when it starts", m.Err()))
		case <-ctx.Done():
			return fail(fmt.Errorf("waiting for the engine to mount the container's root filesystem: %w", ctx.Err()))
		case <-time.After(delay):
		}
	}
}

// mounted tells a device the engine activated and opened from one on its way out.
func mounted(st DeviceState) bool { return st.Active && st.Opens > 0 && !st.Deferred }

// releaseThen also ends the mount's context once the engine let go.
type releaseThen struct {
	Mount
	cancel context.CancelFunc
}

func (r releaseThen) Release() error {
	defer r.cancel()
	return r.Mount.Release()
}

// Forget lets go of a removed container: its device (so the engine can delete it) and its
// record.
func (s *Sizer) Forget(ctx context.Context, id string) {
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return
	}
	defer unlock()
	s.removing.Delete(id)
	s.last.Delete(id)
	rec, ok := s.Store.Get(id)
	if !ok {
		return
	}
	if s.Devices.Release(rec.Device) {
		s.Log.WithFields(logrus.Fields{"container": short(id), "device": rec.Device}).Info("released the device of a removed container")
	}
	if err := s.Store.Delete(id); err != nil {
		s.Log.WithError(err).Error("deleting a record")
	}

}

// CheckNew applies the policy to a label of a container about to be created (strict mode),
// whose root filesystem will be base bytes.
func (s *Sizer) CheckNew(label string, base int64) error {
	what := "label " + size.Label + "=" + label
	want, err := parse(what, label)
	if err != nil {
		return err
	}
	if want < base {
		return shrink(what, want, base)
	}
	if want == base {
		return nil
	}
	// The same refusal and policy check as a growth's, so that strict mode denies exactly
	// what Ensure would reject.
	s.admit.Lock()
	defer s.admit.Unlock()
	_, err = s.admissible("", what, want)
	return err
}

// ReleaseForRemoval lets go of container ref's device before the engine removes the container
// (strict mode sees `docker rm` before the engine acts), so that the engine can delete the
// device at once. The record stays until Forget; until then, or until RemovalFailed, no Ensure
// holds the device again. It returns the container's ID if dmsize sizes it (a label or a
// record), "" for any other container, which it leaves alone.
func (s *Sizer) ReleaseForRemoval(ctx context.Context, ref string) (string, error) {
	c, err := s.Engine.Container(ctx, ref)
	if err != nil {
		return "", err
	}
	unlock, err := s.locks.lock(ctx, c.ID)
	if err != nil {
		return c.ID, err
	}
	defer unlock()
	rec, ok := s.Store.Get(c.ID)
	if _, labelled := c.Labels[size.Label]; !ok && !labelled {
		// Not dmsize's: no mark, which only its destroy event (filtered out by Handle for
		// such a container) would clear.
		return "", nil
	}
	s.removing.Store(c.ID, struct{}{})
	if ok && c.State != "running" && c.State != "paused" && c.State != "restarting" {
		s.waitUnmounted(rec.Device)
	}
	if !ok || !s.Devices.Release(rec.Device) {
		return c.ID, nil
	}
	s.Log.WithFields(logrus.Fields{"container": short(c.ID), "device": rec.Device}).Info("let go of the device before the engine removes the container")
	// The kernel completes a pending deferred removal from a work queue after the last
	// close: wait for it, or the engine's delete finds the device still there and defers.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if st, err := s.Devices.State(rec.Device); err != nil || !st.Exists || !st.Deferred {
			break
		}
	}
	return c.ID, nil
}

// waitUnmounted waits, bounded, until the engine has let go of a stopped container's device.
// The engine marks a container exited before it unmounts it, and `docker start -a` returns in
// between: a `docker rm` right after finds the engine's mount (a second opener) still there.
// Let go then, and the engine's deactivation would come after dmsize's close; the kernel would
// complete it from a work queue that the engine's delete races (TestDmSizeStrictMode saw a
// deferred deletion). So once a mount was seen, wait for the removal the engine asks after it.
func (s *Sizer) waitUnmounted(device string) {
	mounted := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		st, err := s.Devices.State(device)
		switch {
		case err != nil || !st.Exists:
			return
		case st.Opens > 1:
			mounted = true
		case !mounted || st.Deferred:
			return
		}
	}
}

// Locks is the number of containers with an operation in flight or waiting (a metric).
func (s *Sizer) Locks() int { return s.locks.len() }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

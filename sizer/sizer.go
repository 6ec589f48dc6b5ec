// Package sizer gives containers the root filesystem size their dm.size label asks for, on
// Docker's devicemapper graph driver, and keeps it: across stops and starts (holding the grown
// device, see Holder), across daemon restarts (rewriting the device's metadata file), and
// across its own restarts (its records, and Reconcile).
//
// Every step of Ensure is idempotent and ordered so that a crash anywhere leaves a state the
// next Ensure finishes: record the intent, persist the size for the daemon, grow the device,
// grow the filesystem, hold, record the result.
package sizer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/driver/dm"
	"github.com/dmsize/dmsize/driver/fs"
	"github.com/dmsize/dmsize/driver/size"
	"github.com/dmsize/dmsize/driver/thin"
	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/engine/devmeta"
)

// Sizer acts on containers of one engine.
type Sizer struct {
	eng     *engine.Client
	ctl     *dm.Control
	storage engine.Storage
	pool    dm.Dev
	policy  Policy
	store   *Store
	holds   *Holder
	log     logrus.FieldLogger
	// ActivateTimeout bounds how long Ensure waits for the engine to mount a stopped container.
	ActivateTimeout time.Duration
	// Observe, when set, is told each Ensure's outcome (for the metrics).
	Observe func(action string, err error)

	locks sync.Map // container id -> *sync.Mutex: one Ensure at a time per container
}

// ErrDeferredRemovalOff means the engine would not leave a held device in place at stop.
var ErrDeferredRemovalOff = errors.New("the engine runs without deferred device removal; dmsize needs it (add \"dm.use_deferred_removal=true\" to storage-opts in /etc/docker/daemon.json and restart dockerd)")

// New prepares a Sizer for the engine's storage. It fails for engines that are not on the
// devicemapper graph driver.
func New(eng *engine.Client, ctl *dm.Control, st engine.Storage, policy Policy, store *Store, holds *Holder, log logrus.FieldLogger) (*Sizer, error) {
	if st.Driver != "devicemapper" {
		return nil, fmt.Errorf("the engine's storage driver is %q; dmsize sizes devicemapper thin devices", st.Driver)
	}
	info, err := ctl.Info(st.PoolName)
	if err != nil {
		return nil, fmt.Errorf("the engine's thin pool %q: %w", st.PoolName, err)
	}
	return &Sizer{eng: eng, ctl: ctl, storage: st, pool: info.Dev, policy: policy, store: store, holds: holds, log: log, ActivateTimeout: time.Minute}, nil
}

func (s *Sizer) lock(id string) func() {
	m, _ := s.locks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Result says what Ensure did.
type Result struct {
	Container      string
	Device         string
	Before, After  int64
	Held           bool
	Action         string // "grown", "unchanged", "rejected", "skipped"
	Duration       time.Duration
	DeviceStall    time.Duration
	FilesystemTime time.Duration
}

// Ensure brings container id to the size its label asks for. A container without the label,
// or not on devicemapper, is left alone. A label dmsize will not act on is logged once, with
// the reason, and returned as a *Rejection; the container keeps its current size.
func (s *Sizer) Ensure(ctx context.Context, id string) (Result, error) {
	r, err := s.ensure(ctx, id)
	if s.Observe != nil {
		s.Observe(r.Action, err)
	}
	return r, err
}

func (s *Sizer) ensure(ctx context.Context, id string) (Result, error) {
	defer s.lock(id)()
	start := time.Now()
	c, err := s.eng.Container(ctx, id)
	if errors.Is(err, engine.ErrNotFound) {
		s.forget(id)
		return Result{Container: id, Action: "skipped"}, nil
	}
	if err != nil {
		return Result{Container: id}, err
	}
	label, ok := c.Labels[engine.SizeLabel]
	if !ok || c.Driver != "devicemapper" || c.DeviceName == "" {
		return Result{Container: id, Action: "skipped"}, nil
	}
	log := s.log.WithFields(logrus.Fields{"container": short(c.ID), "name": c.Name, "device": c.DeviceName, "label": label})
	rec, _, err := s.store.Get(c.ID)
	if err != nil {
		return Result{Container: id}, err
	}
	res := Result{Container: c.ID, Device: c.DeviceName}

	live, active, err := s.liveSize(c.DeviceName)
	if err != nil {
		return res, err
	}
	current := max(c.DeviceSize, rec.Applied, live)
	res.Before, res.After = current, current
	want, err := s.check(c, label, current)
	if err != nil {
		res.Action = "rejected"
		if rec.Rejected != err.Error() || rec.Label != label {
			log.WithField("size", size.Format(current)).Warnf("container %s: %v; it keeps its current size %s", c.Name, err, size.Format(current))
			rec = Record{ID: c.ID, Name: c.Name, Device: c.DeviceName, DeviceID: c.DeviceID, Label: label, Applied: rec.Applied, Rejected: err.Error()}
			if perr := s.store.Put(rec); perr != nil {
				log.WithError(perr).Error("recording the rejection")
			}
		}
		return res, err
	}
	if !s.storage.DeferredRemoval && want > c.DeviceSize {
		err := fmt.Errorf("container %s: label %s=%s not applied: %w", c.Name, engine.SizeLabel, label, ErrDeferredRemovalOff)
		res.Action = "rejected"
		if rec.Rejected != err.Error() {
			log.Error(err)
			rec = Record{ID: c.ID, Name: c.Name, Device: c.DeviceName, DeviceID: c.DeviceID, Label: label, Applied: rec.Applied, Rejected: err.Error()}
			if perr := s.store.Put(rec); perr != nil {
				log.WithError(perr).Error("recording the rejection")
			}
		}
		return res, err
	}

	// 1. The intent, so a restarted plugin knows what this container was to become (written
	// only when it says something new: this runs on every event of a sized container).
	intent := Record{ID: c.ID, Name: c.Name, Device: c.DeviceName, DeviceID: c.DeviceID, Label: label, Want: want, Applied: rec.Applied}
	stored := rec
	stored.Updated = time.Time{}
	if stored != intent {
		if err := s.store.Put(intent); err != nil {
			return res, err
		}
	}
	rec = intent
	// 2. The size for the daemon's next start: from then on it activates the device at it.
	meta, err := s.metadataPath(c.DeviceName)
	if err != nil {
		return res, err
	}
	if _, err := devmeta.SetSize(meta, want); err != nil {
		return res, err
	}
	// 3. The device and its filesystem.
	switch {
	case active:
		err = s.grow(c, want, &res)
	case rec.Applied > c.DeviceSize:
		// Grown before, and the engine would re-create the device at its stale cached size,
		// smaller than the filesystem: only dmsize can activate it right (a plugin restart
		// between a stop and the next start).
		if err = s.activate(c, rec.Applied); err == nil {
			err = s.grow(c, want, &res)
		}
	case rec.Applied >= want:
		// The engine activates it at the right size by itself (it restarted since).
	default:
		err = s.growViaEngine(ctx, c, want, &res)
	}
	if err != nil {
		log.WithError(err).Errorf("container %s: sizing to %s failed; it keeps %s", c.Name, size.Format(want), size.Format(current))
		return res, err
	}
	// 4. Hold while the daemon's cached size is stale.
	if c.DeviceSize < want {
		if err := s.holds.Hold(c.DeviceName); err != nil {
			return res, err
		}
		res.Held = true
	}
	// 5. Done.
	if rec.Applied != want {
		rec.Applied = want
		if err := s.store.Put(rec); err != nil {
			return res, err
		}
	}
	res.After = want
	res.Duration = time.Since(start)
	if res.Before == res.After {
		res.Action = "unchanged"
		return res, nil
	}
	res.Action = "grown"
	log.WithFields(logrus.Fields{
		"from": res.Before, "to": res.After, "duration_ms": res.Duration.Milliseconds(),
		"device_stall_ms": res.DeviceStall.Milliseconds(), "fs_ms": res.FilesystemTime.Milliseconds(), "held": res.Held,
	}).Infof("container %s: root filesystem %s -> %s", c.Name, size.Format(res.Before), size.Format(res.After))
	return res, nil
}

// check applies the policy, counting what dmsize gave the other containers. The pool and the
// records are read only for a size that would grow the container: the over-commit bound is
// about growth, and every start event of a sized container passes here.
func (s *Sizer) check(c engine.Container, label string, current int64) (int64, error) {
	if want, err := size.Parse(label); err == nil && want <= current {
		return s.policy.Check(label, current, 0, 0)
	}
	p, err := thin.ReadPool(s.ctl, s.storage.PoolName)
	if err != nil {
		return 0, err
	}
	_, poolData := p.DataBytes()
	recs, err := s.store.All()
	if err != nil {
		return 0, err
	}
	var others int64
	for _, r := range recs {
		if r.ID != c.ID && r.Rejected == "" {
			others += max(r.Want, r.Applied)
		}
	}
	return s.policy.Check(label, current, poolData, others)
}

// liveSize is the active device's size, if it is active. A device that exists without a live
// table, or suspended, is one the engine is activating right now: not active yet.
func (s *Sizer) liveSize(name string) (int64, bool, error) {
	info, err := s.ctl.Info(name)
	if errors.Is(err, dm.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if !info.LiveTable || info.Suspended {
		return 0, false, nil
	}
	_, sectors, err := thin.CheckDevice(s.ctl, name, s.pool)
	if err != nil {
		return 0, false, err
	}
	return int64(sectors) * size.Sector, true, nil
}

func (s *Sizer) metadataPath(device string) (string, error) {
	hash, err := devmeta.HashFromDeviceName(device)
	if err != nil {
		return "", err
	}
	return devmeta.Path(s.storage.Home(), hash)
}

// grow grows the active device and then its filesystem, online (the filesystem is mounted by
// the engine, or privately by package fs for the duration).
func (s *Sizer) grow(c engine.Container, want int64, res *Result) error {
	g, err := thin.GrowDevice(s.ctl, c.DeviceName, s.pool, want)
	if err != nil {
		return err
	}
	res.DeviceStall = g.Stall
	r, err := fs.Grow("/dev/mapper/"+c.DeviceName, want)
	if err != nil {
		return err
	}
	res.FilesystemTime = r.Duration
	return nil
}

// growViaEngine has the engine activate and mount a stopped container's device under its own
// locks (engine.HoldMounted), grows it while the engine holds it, takes hold of it, and lets
// the engine go. A `docker start` racing this waits for the container lock.
func (s *Sizer) growViaEngine(ctx context.Context, c engine.Container, want int64, res *Result) error {
	ctx, cancel := context.WithTimeout(ctx, s.ActivateTimeout)
	defer cancel()
	m := s.eng.HoldMounted(ctx, c.ID)
	var err error
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		var active bool
		if _, active, err = s.liveSize(c.DeviceName); err != nil || active {
			break
		}
		select {
		case <-m.Done():
			// The engine answered before we saw the device: read-only rootfs, or gone.
			if _, active, err = s.liveSize(c.DeviceName); err == nil && !active {
				err = fmt.Errorf("the engine did not keep the container's rootfs mounted (%v); it is sized when it starts", m.Err())
			}
			break wait
		case <-ctx.Done():
			err = fmt.Errorf("waiting for the engine to mount the container's rootfs: %w", ctx.Err())
			break wait
		case <-tick.C:
		}
	}
	if err == nil {
		err = s.grow(c, want, res)
	}
	if err == nil && c.DeviceSize < want {
		err = s.holds.Hold(c.DeviceName)
	}
	if rerr := m.Release(); rerr != nil && err == nil {
		// Read-only rootfs containers refuse the upload after the engine mounted them: the
		// grow above already happened, which is all the hold was for.
		s.log.WithField("container", short(c.ID)).Debugf("releasing the engine's mount: %v", rerr)
	}
	return err
}

// activate creates the container's device at the given size, as the engine would, for a
// device the engine would re-create too small. Only for a device that does not exist.
func (s *Sizer) activate(c engine.Container, applied int64) error {
	if _, err := s.ctl.Create(c.DeviceName, ""); err != nil {
		return err
	}
	t := dm.Target{Start: 0, Length: uint64(applied / size.Sector), Type: "thin", Params: dm.ThinTable{PoolDev: s.pool.String(), DevID: uint64(c.DeviceID)}.String()}
	if err := s.ctl.Load(c.DeviceName, []dm.Target{t}); err != nil {
		s.ctl.Remove(c.DeviceName, false)
		return err
	}
	if err := s.ctl.Resume(c.DeviceName); err != nil {
		s.ctl.Remove(c.DeviceName, false)
		return err
	}
	s.log.WithFields(logrus.Fields{"container": short(c.ID), "device": c.DeviceName, "size": applied}).Info("re-activated a grown device the engine would re-create too small")
	return nil
}

// Forget lets go of a destroyed container: its device (so the engine can delete it) and its
// record.
func (s *Sizer) Forget(id string) {
	defer s.lock(id)()
	s.forget(id)
}

func (s *Sizer) forget(id string) {
	rec, ok, err := s.store.Get(id)
	if err != nil || !ok {
		return
	}
	if s.holds.Release(rec.Device) {
		s.log.WithFields(logrus.Fields{"container": short(id), "device": rec.Device}).Info("released the device of a removed container")
	}
	if err := s.store.Delete(id); err != nil {
		s.log.WithError(err).Error("deleting a record")
	}
}

// Reconcile ensures every labelled container and forgets records of containers that are gone.
// It runs on every (re)connection to the engine's event stream.
func (s *Sizer) Reconcile(ctx context.Context) {
	ids, err := s.eng.SizedContainers(ctx)
	if err != nil {
		s.log.WithError(err).Warn("reconcile: listing containers")
		return
	}
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
		if _, err := s.Ensure(ctx, id); err != nil && !isRejection(err) {
			s.log.WithError(err).WithField("container", short(id)).Warn("reconcile")
		}
	}
	recs, err := s.store.All()
	if err != nil {
		s.log.WithError(err).Warn("reconcile: reading records")
		return
	}
	for _, r := range recs {
		if !seen[r.ID] {
			if _, err := s.eng.Container(ctx, r.ID); errors.Is(err, engine.ErrNotFound) {
				s.Forget(r.ID)
			}
		}
	}
}

func isRejection(err error) bool {
	var r *Rejection
	return errors.As(err, &r)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// CheckNew applies the policy to a label of a container about to be created (strict mode),
// whose root filesystem will be the engine's base size.
func (s *Sizer) CheckNew(label string) error {
	base := int64(0)
	if p, err := devmeta.Path(s.storage.Home(), "base"); err == nil {
		if d, err := devmeta.Read(p); err == nil {
			base = d.Size
		}
	}
	_, err := s.check(engine.Container{}, label, base)
	return err
}

// ReleaseForRemoval lets go of container ref's device before the engine removes the container
// (strict mode sees `docker rm` before the engine acts), so that the engine can delete the
// device at once. It returns the container's full id; the record stays until Forget, and an
// Ensure puts the hold back if the removal fails.
func (s *Sizer) ReleaseForRemoval(ctx context.Context, ref string) (string, error) {
	c, err := s.eng.Container(ctx, ref)
	if err != nil {
		return "", err
	}
	defer s.lock(c.ID)()
	rec, ok, err := s.store.Get(c.ID)
	if err != nil || !ok {
		return c.ID, err
	}
	if !s.holds.Release(rec.Device) {
		return c.ID, nil
	}
	// The kernel completes a pending deferred removal from a work queue after the last close:
	// wait for it, or the engine's delete finds the device still there and defers.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		info, err := s.ctl.Info(rec.Device)
		if err != nil || !info.DeferredRemove {
			break
		}
	}
	return c.ID, nil
}

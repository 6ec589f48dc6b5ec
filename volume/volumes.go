package volume

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/size"
)

// Step names the crash points of the volume operations, in order (tests kill the plugin at each).
const (
	StepCreateIntent   = "volume-create-intent"
	StepThinCreated    = "volume-thin-created"
	StepTxnSet         = "volume-txn-set"
	StepPoolRecorded   = "volume-pool-recorded"
	StepFilesystem     = "volume-filesystem"
	StepMounted        = "volume-mounted"
	StepMountRecorded  = "volume-mount-recorded"
	StepRemoveIntent   = "volume-remove-intent"
	StepThinDeleted    = "volume-thin-deleted"
	StepGrowIntent     = "volume-grow-intent"
	StepDeviceGrown    = "volume-device-grown"
	StepRemoveTxnSet   = "volume-remove-txn-set"
	StepRemovePoolNote = "volume-remove-pool-recorded"
	// After a start's record of a volume without the mount IDs of containers that are gone,
	// before its unmount.
	StepMountsForgotten = "volume-mounts-forgotten"
	// After a grow's filesystem step, before the record that says the grow is done.
	StepFilesystemGrown = "volume-filesystem-grown"
)

// Volumes is the set of volumes and every operation on them. One mutex serializes them: pool
// messages must not interleave (the transaction id is a compare-and-swap), and creates are
// rare; a mount waits at most for one mkfs.
type Volumes struct {
	cfg   Config
	pool  Pool
	txn   Transactional // pool as a Transactional, or nil
	fs    Filesystems
	store records
	log   logrus.FieldLogger
	// Step is called after each state-changing step with its name (crash points); nil: none.
	Step func(string)

	mu        sync.Mutex
	recs      map[string]Record
	tid       uint64 // the transaction id dmsize last committed (pool.json)
	poolKnown bool   // pool.json exists
	broken    error  // the records and the pool disagree: no pool changes until an operator looks
}

func (v *Volumes) step(name string) {
	if v.Step != nil {
		v.Step(name)
	}
}

// canChange says why the pool may not be changed now, or nil.
func (v *Volumes) canChange() error {
	if v.broken != nil {
		return fmt.Errorf("dmsize changes no volume: %w", v.broken)
	}
	return nil
}

// Create makes volume name with opts. Everything is checked before anything is made; a failed
// step undoes the ones before it. Creating an existing volume with the same or no options
// succeeds (dockerd repeats a create whose answer it lost).
func (v *Volumes) Create(name string, opts map[string]string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	o, err := v.cfg.ParseOptions(opts)
	if err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if r, ok := v.recs[name]; ok {
		if r.State == Ready && (len(opts) == 0 || (r.Size == o.Size && r.FS == o.FS)) {
			return nil
		}
		return fmt.Errorf("volume %s exists (%s, %s, %s)", name, size.Format(r.Size), r.FS, r.State)
	}
	if err := v.canChange(); err != nil {
		return err
	}
	if err := v.checkTxn(name); err != nil {
		return err
	}
	if v.txn != nil && !v.poolKnown {
		if err := v.store.putPool(poolRecord{TransactionID: v.tid}); err != nil {
			return err
		}
		v.poolKnown = true
	}
	r := Record{Name: name, Pool: v.cfg.Pool, ThinID: v.freeID(0), Size: o.Size, FS: o.FS, State: Creating, Txn: v.nextTxn(), Created: time.Now().UTC()}
	if err := v.put(r); err != nil {
		return err
	}
	v.step(StepCreateIntent)
	fail := func(err error) error {
		if rerr := v.rollBackCreate(r); rerr != nil {
			v.log.WithError(rerr).WithField("volume", name).Error("volumes: undoing a failed create; the next start retries")
		}
		return fmt.Errorf("volume %s: %w", name, err)
	}
	for {
		err = v.pool.CreateThin(r)
		if !errors.Is(err, ErrExists) {
			break
		}
		// An id the pool has and no record names: leaked by something else. Leave it.
		v.log.WithField("thin_id", r.ThinID).Warn("volumes: the pool already has this thin id though no volume record names it; skipping it")
		r.ThinID = v.freeID(r.ThinID)
		if err := v.put(r); err != nil {
			return fail(err)
		}
	}
	if err != nil {
		return fail(err)
	}
	// Recorded before anything else: a rollback deletes only a device the record says this
	// create made. A SIGKILL between CreateThin and this write leaves a device the start
	// cannot tell from one the pool had before (no record names either), so it leaves it: an
	// empty thin device, never activated, that later creates skip (ErrExists). Leaking it is
	// the price of never deleting what might be someone's.
	r.Made = true
	if err := v.put(r); err != nil {
		return fail(err)
	}
	v.step(StepThinCreated)
	if err := v.commitTxn(r.Txn); err != nil {
		return fail(err)
	}
	dev, err := v.pool.Activate(r)
	if err == nil {
		err = v.fs.Make(dev, r.FS)
	}
	if err != nil {
		return fail(err)
	}
	v.step(StepFilesystem)
	r.State, r.Txn, r.Made = Ready, 0, false
	if err := v.put(r); err != nil {
		return fail(err)
	}
	v.log.WithFields(logrus.Fields{"volume": name, "size": size.Format(r.Size), "fs": r.FS, "thin_id": r.ThinID}).Info("volumes: created")
	v.warnOvercommit(name)
	return nil
}

// warnOvercommit warns, as LVM does, when the volumes' sizes add up to more than the pool's
// data: thin provisioning exists to over-commit, so it is a warning, never a refusal.
func (v *Volumes) warnOvercommit(name string) {
	sp, ok := v.pool.(Sized)
	if !ok {
		return
	}
	data, err := sp.DataBytes()
	if err != nil || data <= 0 {
		return
	}
	var total int64
	for _, r := range v.recs {
		total += r.Size
	}
	if total <= data {
		return
	}
	ratio := float64(total) / float64(data)
	v.log.WithFields(logrus.Fields{"volume": name, "provisioned": total, "pool_data": data, "ratio": fmt.Sprintf("%.2f", ratio)}).
		Warnf("WARNING: volume %s: sum of all thin volume sizes (%s) exceeds the size of the volume pool (%s): %.2f× over-committed; the pool guard and the metrics are what keep it from filling",
			name, size.Format(total), size.Format(data), ratio)
}

func (v *Volumes) put(r Record) error {
	if err := v.store.put(r); err != nil {
		return fmt.Errorf("volume %s: writing its record: %w", r.Name, err)
	}
	v.recs[r.Name] = r
	return nil
}

func (v *Volumes) drop(name string) error {
	if err := v.store.delete(name); err != nil {
		return err
	}
	delete(v.recs, name)
	os.Remove(v.mountPoint(name))
	return nil
}

// rollBackCreate undoes a create whose record is r. Its thin device is deactivated and
// deleted only if the create made it: r says so (Made), or, in dmsize's own pool, the
// create's transaction id step ran (k == r.Txn), which follows its create_thin (and Made; a
// record from before Made existed has only the id to tell). A device with that id otherwise
// is not the create's (its CreateThin failed, found the id taken, or never ran) and is left
// as it is, active or not. If the create's transaction id step ran, the new id is kept and
// recorded.
func (v *Volumes) rollBackCreate(r Record) error {
	v.fs.Unmount(v.mountPoint(r.Name))
	moved := false
	if v.txn != nil {
		k, err := v.txn.TransactionID()
		if err != nil {
			return err
		}
		moved = r.Txn == v.tid+1 && k == r.Txn
	}
	if r.Made || moved {
		if err := v.pool.Deactivate(r); err != nil {
			return err
		}
		if err := v.pool.DeleteThin(r); err != nil {
			return err
		}
	}
	if moved {
		if err := v.store.putPool(poolRecord{TransactionID: r.Txn}); err != nil {
			return err
		}
		v.tid = r.Txn
	}
	return v.drop(r.Name)
}

// finishRemove completes a removal whose record says Removing. A device still open (something
// outside Docker uses it) keeps the record Removing. The removal's transaction id step is
// taken unless it ran; a removal left from before later operations (Txn not v.tid+1) takes
// none.
func (v *Volumes) finishRemove(r Record) error {
	if err := v.fs.Unmount(v.mountPoint(r.Name)); err != nil {
		return err
	}
	if err := v.pool.Deactivate(r); err != nil {
		return err
	}
	if err := v.pool.DeleteThin(r); err != nil {
		return err
	}
	v.step(StepThinDeleted)
	if v.txn != nil && r.Txn == v.tid+1 {
		k, err := v.txn.TransactionID()
		if err != nil {
			return err
		}
		if k == v.tid {
			if err := v.txn.SetTransactionID(v.tid, r.Txn); err != nil {
				return err
			}
			v.step(StepRemoveTxnSet)
		}
		if err := v.store.putPool(poolRecord{TransactionID: r.Txn}); err != nil {
			return err
		}
		v.tid = r.Txn
		v.step(StepRemovePoolNote)
	}
	return v.drop(r.Name)
}

// Remove removes volume name and its blocks. inUse, if set, asks the engine whether any
// container still uses the volume: mount IDs the engine no longer has (lost in a dockerd
// crash) do not keep a volume forever.
func (v *Volumes) Remove(name string, inUse func(string) (bool, error)) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := v.recs[name]
	if !ok {
		return fmt.Errorf("volume %s: %w", name, ErrNotFound)
	}
	if err := v.canChange(); err != nil {
		return err
	}
	if len(r.Mounts) > 0 {
		used := true
		if inUse != nil {
			u, err := inUse(name)
			if err != nil {
				return fmt.Errorf("volume %s is mounted for %d containers, and asking the engine whether they still exist failed: %w", name, len(r.Mounts), err)
			}
			used = u
		}
		if used {
			return fmt.Errorf("volume %s is in use: mounted for %d containers", name, len(r.Mounts))
		}
		v.log.WithFields(logrus.Fields{"volume": name, "mounts": r.Mounts}).Warn("volumes: forgetting mount IDs no container has any more")
		r.Mounts = nil
	}
	if err := v.checkTxn(name); err != nil {
		return err
	}
	// Unmounted and deactivated before the intent is written: a device open outside Docker
	// refuses the removal and leaves the volume as it was.
	if err := v.fs.Unmount(v.mountPoint(name)); err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if err := v.unmountCopies(r, v.pool.Node(r), "", false); err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if err := v.pool.Deactivate(r); err != nil {
		if errors.Is(err, ErrBusy) {
			return fmt.Errorf("volume %s: its device %s is open outside Docker; nothing was removed", name, r.Device())
		}
		return fmt.Errorf("volume %s: %w", name, err)
	}
	r.State, r.Txn = Removing, v.nextTxn()
	if err := v.put(r); err != nil {
		return err
	}
	v.step(StepRemoveIntent)
	if err := v.finishRemove(r); err != nil {
		return fmt.Errorf("volume %s: removing (the next start completes it): %w", name, err)
	}
	v.log.WithFields(logrus.Fields{"volume": name, "thin_id": r.ThinID}).Info("volumes: removed")
	return nil
}

// Grow grows volume name to newSize, online if it is mounted. The record holds the new size as
// a pending grow (GrowTo) before the device grows, and takes it as its size once the device
// and the filesystem have it: a grow a crash or a failure cut short is run again, every step
// of it, by the same grow asked again and by each start (finishGrow); meanwhile the volume
// mounts at the size it has. before is the size the volume had (for a grow asked again, the
// size before the first try): before == newSize is a grow that had nothing to do.
func (v *Volumes) Grow(name string, newSize int64) (before int64, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := v.recs[name]
	if !ok {
		return 0, fmt.Errorf("volume %s: %w", name, ErrNotFound)
	}
	if r.State != Ready {
		return r.Size, errs.Refuse("volume %s is %s", name, r.State)
	}
	newSize &^= 4095
	switch {
	case newSize < r.Size:
		return r.Size, errs.Refuse("volume %s is %s; dmsize never shrinks a volume (asked %s)", name, size.Format(r.Size), size.Format(newSize))
	case newSize == r.Size:
		return r.Size, nil
	case v.cfg.MaxSize > 0 && newSize > v.cfg.MaxSize:
		return r.Size, &errs.Refusal{Setting: "MAX_SIZE", Reason: fmt.Sprintf("volume %s to %s: above the plugin's maximum %s (MAX_SIZE)", name, size.Format(newSize), size.Format(v.cfg.MaxSize))}
	}
	if err := v.canChange(); err != nil {
		return r.Size, &errs.Refusal{Reason: err.Error()}
	}
	before = r.Size
	if r.GrowTo != newSize {
		r.GrowTo = newSize
		if err := v.put(r); err != nil {
			return before, err
		}
	}
	v.step(StepGrowIntent)
	if err := v.finishGrow(&r); err != nil {
		return before, fmt.Errorf("volume %s: %w; so does this grow asked again, and the volume stays %s meanwhile", name, err, size.Format(before))
	}
	v.log.WithFields(logrus.Fields{"volume": name, "from": before, "to": newSize}).Infof("volumes: %s grown %s -> %s", name, size.Format(before), size.Format(newSize))
	return before, nil
}

// finishGrow runs r's pending grow to r.GrowTo: the device, the filesystem, then the record
// (Size = GrowTo, no grow pending). Each step is safe to run again (a device or a filesystem
// already that large is left as it is), which is how a grow cut short is finished. On a
// failure r and its record keep their size and the pending grow.
func (v *Volumes) finishGrow(r *Record) error {
	g := *r
	g.Size, g.GrowTo = r.GrowTo, 0
	dev, err := v.pool.Activate(g)
	if err != nil {
		return fmt.Errorf("growing its device to %s (the next start retries): %w", size.Format(g.Size), err)
	}
	v.step(StepDeviceGrown)
	if err := v.fs.Grow(dev, g.Size); err != nil {
		return fmt.Errorf("growing its filesystem (the next start retries): %w", err)
	}
	v.step(StepFilesystemGrown)
	if err := v.put(g); err != nil {
		return err
	}
	*r = g
	return nil
}

// Get returns volume name's record. It answers from the records alone, whatever the pool's
// state: an error would make dockerd forget the volume.
func (v *Volumes) Get(name string) (Record, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := v.recs[name]
	return r, ok
}

// List returns every record, by name.
func (v *Volumes) List() []Record {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]Record, 0, len(v.recs))
	for _, n := range sortedNames(v.recs) {
		out = append(out, v.recs[n])
	}
	return out
}

// Broken says why the volumes refuse changes, or nil.
func (v *Volumes) Broken() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.broken
}

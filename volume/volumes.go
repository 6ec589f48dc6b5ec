package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/size"
)

// Pool is what the volumes need of their thin pool: ownpool.go implements it on
// device-mapper and loop files (dmsize's own pool), lvmpool.go with the host's lvm (an
// operator's LVM thin pool), the unit tests with a fake kernel.
type Pool interface {
	// CreateThin makes r's thin device (r.ThinID, r.Size); ErrExists if the pool has it.
	CreateThin(r Record) error
	// DeleteThin deletes r's thin device and its blocks; an absent one is not an error.
	DeleteThin(r Record) error
	// Activate makes r's device exist at r.Size or larger (never smaller) and returns its
	// node. Repeating it does nothing.
	Activate(r Record) (string, error)
	// Deactivate removes r's device; absent is not an error, ErrBusy if it is open.
	Deactivate(r Record) error
	// Node is r's device node, whether or not it is active.
	Node(r Record) string
}

// Transactional is a pool whose transaction id is dmsize's (its own pool, to which it sends
// the create and delete messages itself): each change moves the id by one, recorded in
// pool.json, so that a start can tell whether an interrupted change reached the pool. An LVM
// pool is not one: LVM owns that pool's id and commits its own changes; there a removal
// happened iff the LV is gone, and a create's LV is its own iff its record says it made it.
type Transactional interface {
	// TransactionID is the pool's transaction id as the kernel has it.
	TransactionID() (uint64, error)
	// SetTransactionID moves the pool's transaction id from old to new.
	SetTransactionID(old, new uint64) error
}

// Sized is a pool that can say how many bytes of data it has now (for the over-commit
// warning); a pool not made yet has 0.
type Sized interface {
	DataBytes() (int64, error)
}

// Filesystems is what the volumes need of mkfs and the mount table.
type Filesystems interface {
	Make(dev, fs string) error
	Mount(dev, dir, fs string) error
	Unmount(dir string) error // not mounted is not an error
	Mounted(dir string) (bool, error)
	// MountPoints lists where dev is mounted in the plugin's namespace; with unsharedOnly, by
	// mounts in no peer group (unmounting those touches no other namespace).
	MountPoints(dev string, unsharedOnly bool) ([]string, error)
	Grow(dev string, size int64) error // never shrinks; the same size does nothing
}

// Refusal is a request dmsize will not carry out (a shrink, a size over the policy, a volume
// in the wrong state): nothing was changed.
type Refusal struct{ Msg string }

func (r *Refusal) Error() string { return r.Msg }

func refuse(format string, a ...any) error { return &Refusal{Msg: fmt.Sprintf(format, a...)} }

var (
	ErrExists = errors.New("exists")
	ErrBusy   = errors.New("in use")
	// ErrNotFound: no such volume (dockerd's message for it is its own).
	ErrNotFound = errors.New("no such volume")
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

// Open loads the records and repairs what a crash interrupted: creates in flight are rolled
// back, removals completed, ready volumes activated at their recorded size (grown if a grow
// was interrupted) and mounted again where the engine still has mount IDs on them. It needs
// no engine: it runs before the plugin answers dockerd.
func Open(cfg Config, pool Pool, fs Filesystems, log logrus.FieldLogger, step func(string)) (*Volumes, error) {
	v := &Volumes{cfg: cfg, pool: pool, fs: fs, store: records{dir: cfg.Dir}, log: log, Step: step}
	v.txn, _ = pool.(Transactional)
	recs, err := v.store.load()
	if err != nil {
		return nil, err
	}
	v.recs = recs
	for _, n := range sortedNames(recs) {
		if r := recs[n]; r.Pool != cfg.Pool && v.broken == nil {
			v.broken = fmt.Errorf("volume %s is in %s, but the volume pool is now %s: set VOLUME_POOL back to reach it", n, poolLabel(r.Pool), poolLabel(cfg.Pool))
		}
	}
	if v.txn == nil {
		v.repair(0)
		return v, nil
	}
	k, err := v.txn.TransactionID()
	if err != nil {
		return nil, err
	}
	p, known, err := v.store.loadPool()
	if err != nil {
		return nil, err
	}
	if !known {
		if len(recs) > 0 && v.broken == nil {
			v.broken = fmt.Errorf("%d volume records but no %s: the pool's transaction id %d cannot be checked", len(recs), poolFile, k)
		}
		// Written by the first create: a plugin that makes no volume writes nothing.
		p.TransactionID = k
	}
	v.tid, v.poolKnown = p.TransactionID, known
	v.repair(k)
	return v, nil
}

func (v *Volumes) step(name string) {
	if v.Step != nil {
		v.Step(name)
	}
}

// repair settles the operations a crash interrupted; k is the kernel's transaction id, v.tid
// the committed one. Each operation in flight carries Txn = v.tid+1; its transaction-id step
// happened iff k == Txn. A pool whose id is not dmsize's needs no such check: rolling back a
// create deletes the thin device if the record says the create made it, finishing a removal
// deletes it if it exists.
func (v *Volumes) repair(k uint64) {
	var inflight []Record
	for _, n := range sortedNames(v.recs) {
		if r := v.recs[n]; r.State != Ready {
			inflight = append(inflight, r)
		}
	}
	switch {
	case v.broken != nil:
	case v.txn == nil:
	case k == v.tid:
	case k == v.tid+1 && countTxn(inflight, k) == 1:
	default:
		v.broken = fmt.Errorf("the volume pool's transaction id is %d, dmsize's records say %d with %d operations in flight: the records do not describe this pool (restored from a backup?)", k, v.tid, len(inflight))
	}
	if v.broken != nil {
		v.log.WithError(v.broken).Error("volumes: no volume is created, removed or grown until this is resolved; existing ones still mount")
	} else {
		for _, r := range inflight {
			var err error
			switch r.State {
			case Creating:
				err = v.rollBackCreate(r)
				if err == nil {
					v.log.WithField("volume", r.Name).Warn("volumes: rolled back a create a crash interrupted; dockerd got no answer for it")
				}
			case Removing:
				err = v.finishRemove(r)
				if err == nil {
					v.log.WithField("volume", r.Name).Info("volumes: completed a removal a crash interrupted")
				}
			}
			if err != nil {
				v.log.WithError(err).WithField("volume", r.Name).Error("volumes: repairing an interrupted operation failed; it is retried at the next start")
			}
		}
	}
	for _, n := range sortedNames(v.recs) {
		r := v.recs[n]
		if r.State != Ready || r.Pool != v.cfg.Pool {
			continue
		}
		if err := v.ready(r); err != nil {
			v.log.WithError(err).WithField("volume", r.Name).Error("volumes: bringing the volume back failed; its next mount retries")
		}
	}
}

// poolLabel names a volume pool in messages.
func poolLabel(pool string) string {
	if pool == "" {
		return "dmsize's own pool (VOLUME_POOL empty)"
	}
	return "the LVM thin pool " + pool
}

func countTxn(rs []Record, txn uint64) int {
	n := 0
	for _, r := range rs {
		if r.Txn == txn {
			n++
		}
	}
	return n
}

// ready finishes r's grow if one is pending, activates r at its size, and mounts it if the
// engine holds mount IDs on it, or unmounts it if none. A grow that cannot be finished (the
// pool refuses the device's growth) leaves the volume at the size it has, usable.
func (v *Volumes) ready(r Record) error {
	if r.GrowTo > 0 {
		log := v.log.WithFields(logrus.Fields{"volume": r.Name, "from": r.Size, "to": r.GrowTo})
		if err := v.finishGrow(&r); err != nil {
			log.WithError(err).Errorf("volumes: finishing the grow of %s failed; it stays at %s, and the grow asked again retries it", r.Name, size.Format(r.Size))
		} else {
			log.Infof("volumes: finished a grow of %s to %s that a crash or a failure interrupted", r.Name, size.Format(r.Size))
		}
	}
	dev, err := v.pool.Activate(r)
	if err != nil {
		return err
	}
	if err := v.fs.Grow(dev, r.Size); err != nil {
		return fmt.Errorf("growing its filesystem to %s: %w", size.Format(r.Size), err)
	}
	dir := v.mountPoint(r.Name)
	if err := v.unmountCopies(r, dev, dir, true); err != nil {
		return err
	}
	if len(r.Mounts) == 0 {
		return v.fs.Unmount(dir)
	}
	return v.ensureMounted(r, dev)
}

// unmountCopies unmounts every mount of r's device dev in the plugin's namespace but keep
// (with unsharedOnly, every unshared one). Isolate detaches, at start, the copies a restarted
// plugin gets through its bind of the data root; this is the fallback when it could not, and
// for any other copy a mount by path still reaches. At start a shared copy is left alone (its
// unmount would reach the host's); a removal unmounts every copy.
func (v *Volumes) unmountCopies(r Record, dev, keep string, unsharedOnly bool) error {
	points, err := v.fs.MountPoints(dev, unsharedOnly)
	if err != nil {
		return err
	}
	for _, p := range points {
		if p == keep {
			continue
		}
		if err := v.fs.Unmount(p); err != nil {
			return fmt.Errorf("unmounting a stray mount of %s at %s: %w", r.Device(), p, err)
		}
		v.log.WithFields(logrus.Fields{"volume": r.Name, "dir": p}).Info("volumes: unmounted a stray copy of the volume's mount")
	}
	return nil
}

func (v *Volumes) mountPoint(name string) string { return filepath.Join(v.cfg.MountRoot, name) }

func (v *Volumes) ensureMounted(r Record, dev string) error {
	dir := v.mountPoint(r.Name)
	if m, err := v.fs.Mounted(dir); err != nil || m {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := v.fs.Mount(dev, dir, r.FS); err != nil {
		return err
	}
	v.log.WithFields(logrus.Fields{"volume": r.Name, "device": dev, "dir": dir}).Info("volumes: mounted")
	return nil
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

// checkTxn refuses to change a pool whose transaction id is not the one dmsize committed
// (something else changed it); a pool whose id is not dmsize's passes.
func (v *Volumes) checkTxn(name string) error {
	if v.txn == nil {
		return nil
	}
	k, err := v.txn.TransactionID()
	if err != nil {
		return err
	}
	if k != v.tid {
		return fmt.Errorf("volume %s: the pool's transaction id is %d, dmsize committed %d; refusing to change the pool", name, k, v.tid)
	}
	return nil
}

// nextTxn is the transaction id the next change moves the pool to; 0 (none) for a pool whose
// id is not dmsize's.
func (v *Volumes) nextTxn() uint64 {
	if v.txn == nil {
		return 0
	}
	return v.tid + 1
}

// commitTxn moves the pool's transaction id to txn (= v.tid+1) and records it; nothing for a
// pool whose id is not dmsize's.
func (v *Volumes) commitTxn(txn uint64) error {
	if v.txn == nil {
		return nil
	}
	if err := v.txn.SetTransactionID(v.tid, txn); err != nil {
		return err
	}
	v.step(StepTxnSet)
	if err := v.store.putPool(poolRecord{TransactionID: txn}); err != nil {
		return err
	}
	v.tid = txn
	v.step(StepPoolRecorded)
	return nil
}

// freeID is the lowest thin id above after that no record holds.
func (v *Volumes) freeID(after uint32) uint32 {
	used := map[uint32]bool{}
	for _, r := range v.recs {
		used[r.ThinID] = true
	}
	id := after + 1
	for used[id] {
		id++
	}
	return id
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

// Mount makes sure volume name is mounted, then records mount ID id on it, and returns where.
// The same ID twice counts once (dockerd repeats mounts after its own restart). A mount that
// fails records no ID: dockerd never unmounts a mount that failed, so an ID kept for it would
// keep the volume mounted after the last real unmount.
func (v *Volumes) Mount(name, id string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := v.recs[name]
	if !ok {
		return "", fmt.Errorf("volume %s: %w", name, ErrNotFound)
	}
	if r.State != Ready {
		return "", fmt.Errorf("volume %s is %s", name, r.State)
	}
	if r.Pool != v.cfg.Pool {
		return "", fmt.Errorf("volume %s is in %s, but the volume pool is now %s: set VOLUME_POOL back to reach it", name, poolLabel(r.Pool), poolLabel(v.cfg.Pool))
	}
	dev, err := v.pool.Activate(r)
	if err == nil {
		err = v.ensureMounted(r, dev)
	}
	if err != nil {
		return "", fmt.Errorf("volume %s: mounting: %w", name, err)
	}
	v.step(StepMounted)
	// A SIGKILL here leaves the volume mounted without this ID, and dockerd, which got no
	// answer, sends no unmount for it. With no other ID the next start unmounts the volume
	// (ready: no mount ID, not mounted); with others it stays mounted for them, and the last
	// one's unmount unmounts it. A record that cannot be written is the same: no ID, and the
	// volume unmounted if no other holds it.
	if !slices.Contains(r.Mounts, id) {
		alone := len(r.Mounts) == 0
		r.Mounts = append(r.Mounts, id)
		if err := v.put(r); err != nil {
			if alone {
				v.fs.Unmount(v.mountPoint(name))
			}
			return "", err
		}
	}
	v.step(StepMountRecorded)
	return v.mountPoint(name), nil
}

// Unmount forgets mount ID id; the last one unmounts the volume. An unknown ID is not an error:
// dockerd's stop paths cannot act on one.
func (v *Volumes) Unmount(name, id string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := v.recs[name]
	if !ok {
		return fmt.Errorf("volume %s: %w", name, ErrNotFound)
	}
	if i := slices.Index(r.Mounts, id); i >= 0 {
		r.Mounts = slices.Delete(r.Mounts, i, i+1)
		if err := v.put(r); err != nil {
			return err
		}
	}
	if len(r.Mounts) > 0 {
		return nil
	}
	if err := v.fs.Unmount(v.mountPoint(name)); err != nil {
		v.log.WithError(err).WithField("volume", name).Warn("volumes: unmounting failed; the next start unmounts it")
	}
	return nil
}

// ForgetStaleMounts drops the mount IDs of every volume no container refers to any more, and
// unmounts it: dockerd's unmount of a container that went while the plugin was down (disabled,
// crashed) never arrived. referenced says whether any container, in any state, refers to a
// volume; a container refers to it from its create on, before it mounts it. Only the IDs
// recorded before the question are dropped: a mount that comes meanwhile is kept. It returns
// how many volumes it unmounted.
func (v *Volumes) ForgetStaleMounts(referenced func(name string) (bool, error)) int {
	v.mu.Lock()
	asked := map[string][]string{}
	for name, r := range v.recs {
		if r.State == Ready && len(r.Mounts) > 0 {
			asked[name] = slices.Clone(r.Mounts)
		}
	}
	v.mu.Unlock()
	n := 0
	for name, ids := range asked {
		ref, err := referenced(name)
		if err != nil {
			v.log.WithError(err).WithField("volume", name).Warn("volumes: cannot tell whether the volume's mount IDs are stale; kept")
			continue
		}
		if !ref && v.forgetMounts(name, ids) {
			n++
		}
	}
	return n
}

// forgetMounts drops mount IDs ids of volume name and unmounts it if none is left; it says
// whether it unmounted it.
func (v *Volumes) forgetMounts(name string, ids []string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := v.recs[name]
	if !ok || r.State != Ready {
		return false
	}
	keep := slices.DeleteFunc(slices.Clone(r.Mounts), func(id string) bool { return slices.Contains(ids, id) })
	if len(keep) == len(r.Mounts) {
		return false
	}
	log := v.log.WithFields(logrus.Fields{"volume": name, "mounts": len(r.Mounts) - len(keep)})
	r.Mounts = keep
	// The record first: a crash before the unmount leaves a volume with no mount ID, which
	// the next start unmounts.
	if err := v.put(r); err != nil {
		log.WithError(err).Warn("volumes: recording the volume without its stale mount IDs failed; kept")
		return false
	}
	log.Warn("volumes: forgot mount IDs of containers that are gone (their unmount never reached dmsize)")
	v.step(StepMountsForgotten)
	if len(keep) > 0 {
		return false
	}
	if err := v.fs.Unmount(v.mountPoint(name)); err != nil {
		log.WithError(err).Warn("volumes: unmounting failed; the next start unmounts it")
		return false
	}
	return true
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
		return r.Size, refuse("volume %s is %s", name, r.State)
	}
	newSize &^= 4095
	switch {
	case newSize < r.Size:
		return r.Size, refuse("volume %s is %s; dmsize never shrinks a volume (asked %s)", name, size.Format(r.Size), size.Format(newSize))
	case newSize == r.Size:
		return r.Size, nil
	case v.cfg.MaxSize > 0 && newSize > v.cfg.MaxSize:
		return r.Size, refuse("volume %s to %s: above the plugin's maximum %s (MAX_SIZE)", name, size.Format(newSize), size.Format(v.cfg.MaxSize))
	}
	if err := v.canChange(); err != nil {
		return r.Size, &Refusal{Msg: err.Error()}
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

// Path is where volume name is mounted (whether or not it is now).
func (v *Volumes) Path(name string) string { return v.mountPoint(name) }

// Broken says why the volumes refuse changes, or nil.
func (v *Volumes) Broken() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.broken
}

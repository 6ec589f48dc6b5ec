package volume

import (
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/size"
)

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

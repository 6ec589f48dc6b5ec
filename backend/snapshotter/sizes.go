package snapshotter

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/internal/atomicfile"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/thin"
	"github.com/dmsize/dmsize/size"
)

// containerd activates a snapshot device at the size in its own records, and dmsize never
// writes those while containerd runs. So dmsize keeps the size it gave each device in a file
// of its own, and gives it back whenever containerd re-created the device smaller (after a
// reboot): at the plugin's start, before it answers the engine (Repair), and in every Ensure.

// SizesDir is where the sizes are kept, under the plugin's state directory.
func SizesDir(stateDir string) string { return filepath.Join(stateDir, "snapshotter") }

// Size is what dmsize gave one snapshot device.
//
// containerd gives a new device the name and the thin id of an old one once its state was
// reset (both count from 1 again), so a record is applied only to the device of its snapshot:
// containerd's records must say that Device is Snapshot's, of thin id ThinID (Records.proof).
// Records an older dmsize wrote have no Snapshot: nothing can prove them, and they are dropped,
// logged once (prune); the sizer persists again what its own records, by container ID, say it
// applied (sizer.Sizer's repair).
type Size struct {
	Device   string `json:"device"`             // <pool>-snap-<id>
	Pool     string `json:"pool"`               // the thin pool's device-mapper name
	ThinID   uint64 `json:"thin_id"`            // the device's id in the pool, checked before each grow
	Size     int64  `json:"size"`               // bytes: the device and its filesystem may be this large
	Snapshot string `json:"snapshot,omitempty"` // the snapshotter's key of its snapshot (Records.snapshot)
}

// unproven says why record s may not be applied to the device of its name: containerd's
// record of the device is d (known: there is one), of the snapshot the snapshotter's key
// snapshot. "" when they prove it is the device's.
func unproven(s Size, d DeviceInfo, known bool, snapshot string) string {
	switch {
	case s.Snapshot == "":
		return "recorded by an older dmsize, without the device's snapshot: it cannot be told from a device containerd made again under the same name"
	case !known || d.State == Removed:
		return "containerd has no record of it (removed)"
	case snapshot != s.Snapshot:
		return fmt.Sprintf("it is the device of snapshot %q, dmsize sized snapshot %q's (containerd's state was reset?)", snapshot, s.Snapshot)
	case uint64(d.DeviceID) != s.ThinID:
		return fmt.Sprintf("containerd's record has thin id %d, dmsize sized %d", d.DeviceID, s.ThinID)
	}
	return ""
}

// proof is containerd's records of the pool's devices and of their snapshots.
type proof struct {
	devs  map[string]DeviceInfo
	snaps map[string]string // device -> the snapshotter's key of its snapshot
}

func (r Records) proof() (proof, error) {
	devs, err := r.Devices()
	if err != nil {
		return proof{}, err
	}
	snaps, err := r.snapshots()
	return proof{devs, snaps}, err
}

// prune drops the size records that are not their device's: every record an older dmsize
// wrote without a snapshot, and, when r (containerd's records) is given and can be read, the
// records of r's pool that r does not prove. Each is logged as it is dropped, so once. It
// returns the proven records of r's pool, before an error reading r.
func prune(r *Records, store sizeStore, sizes []Size, log logrus.FieldLogger) ([]Size, error) {
	var p proof
	var err error
	if r != nil {
		p, err = r.proof()
	}
	var proven []Size
	for _, s := range sizes {
		if s.Snapshot != "" && (r == nil || err != nil || s.Pool != r.Pool) {
			continue // nothing to judge it by
		}
		d, known := p.devs[s.Device]
		why := unproven(s, d, known, p.snaps[s.Device])
		if why == "" {
			proven = append(proven, s)
			continue
		}
		l := log.WithFields(logrus.Fields{"device": s.Device, "size": size.Format(s.Size), "thin_id": s.ThinID, "snapshot": s.Snapshot})
		if rerr := store.remove(s.Device); rerr != nil {
			l.WithError(rerr).Error("snapshotter: removing a size record that is not the device's")
			continue
		}
		msg := "snapshotter: dropped dmsize's size record of the device, not applied: " + why
		if s.Snapshot != "" && known && d.State != Removed {
			l.Warn(msg) // containerd made the device again, or it is not the one sized
			continue
		}
		l.Info(msg) // removed, or an older dmsize's
	}
	return proven, err
}

// recordsFile is where New tells Repair, which runs before the engine answers, where
// containerd's records are (a JSON {root, pool}), in the state directory: SizesDir holds the
// sizes alone, and is empty once every sized container is gone.
const recordsFile = "containerd-records.json"

type recordsAt struct {
	Root string `json:"root"`
	Pool string `json:"pool"`
}

func saveRecords(stateDir string, r Records) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(recordsAt{r.Root, r.Pool})
	return atomicfile.Write(filepath.Join(stateDir, recordsFile), append(b, '\n'), 0o600)
}

// loadRecords is the records saveRecords saved, copied as the plugin's copies.
func loadRecords(stateDir string) (Records, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, recordsFile))
	if err != nil {
		return Records{}, err
	}
	var at recordsAt
	if err := json.Unmarshal(b, &at); err != nil || at.Root == "" || at.Pool == "" {
		return Records{}, fmt.Errorf("%s: unreadable (%v)", recordsFile, err)
	}
	return Records{Root: at.Root, Pool: at.Pool, copies: pluginCopies(stateDir)}, nil
}

var deviceRE = regexp.MustCompile(`^[A-Za-z0-9_.+-]+-snap-[0-9]+$`)

type sizeStore struct{ dir string }

func (s sizeStore) path(device string) (string, error) {
	if !deviceRE.MatchString(device) {
		return "", fmt.Errorf("%q is not a snapshot device name", device)
	}
	return filepath.Join(s.dir, device+".json"), nil
}

// get returns the device's size, and whether there is one.
func (s sizeStore) get(device string) (Size, bool, error) {
	p, err := s.path(device)
	if err != nil {
		return Size{}, false, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return Size{}, false, nil
	}
	if err != nil {
		return Size{}, false, err
	}
	var r Size
	if err := json.Unmarshal(b, &r); err != nil || r.Device != device {
		return Size{}, false, fmt.Errorf("%s: unreadable size record", p)
	}
	return r, true, nil
}

// raise records r, never below a size already recorded for the same snapshot (a record of
// another is replaced); the file is replaced atomically.
func (s sizeStore) raise(r Size) error {
	old, ok, err := s.get(r.Device)
	if err != nil {
		return err
	}
	if ok && old.Size >= r.Size && old.ThinID == r.ThinID && old.Snapshot == r.Snapshot && old.Pool == r.Pool {
		return nil
	}
	p, _ := s.path(r.Device)
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	return atomicfile.Write(p, append(b, '\n'), 0o600)
}

func (s sizeStore) remove(device string) error {
	p, err := s.path(device)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// all lists the recorded sizes, by device name; unreadable files are skipped and returned as
// errors for the caller to log.
func (s sizeStore) all() ([]Size, []error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, []error{err}
	}
	var out []Size
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if filepath.Ext(name) != ".json" || !deviceRE.MatchString(name[:len(name)-5]) {
			continue
		}
		r, ok, err := s.get(name[:len(name)-5])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out, errs
}

// Repair gives every recorded snapshot device back its size where containerd re-created it
// smaller (after a reboot, or a device removed and re-activated from containerd's records).
// It reads only dmsize's files, copies of containerd's and device-mapper, so the plugin runs it
// before it answers the engine, which starts containers with a restart policy only after its
// plugins. First it drops the records containerd's records do not prove are their device's
// (prune): a device containerd made again under an old name is never grown to the old size.
// A device that is absent, inactive, of another thin id or already at its size is left
// alone; its filesystem is never touched (it already has the size). It returns how many it
// grew.
func Repair(ctl *dm.Control, stateDir string, log logrus.FieldLogger) int {
	if err := pluginCopies(stateDir).clear(); err != nil {
		log.WithError(err).Warn("snapshotter: removing the copies of containerd's databases a previous run left")
	}
	store := sizeStore{SizesDir(stateDir)}
	sizes, errs := store.all()
	for _, err := range errs {
		log.WithError(err).Error("snapshotter: skipping a size record")
	}
	if len(sizes) == 0 {
		return 0
	}
	r, err := loadRecords(stateDir)
	if err != nil {
		// An older dmsize did not say where they are: New does, once the engine is up.
		log.WithError(err).Info("snapshotter: where containerd's records are is not known yet; sizes are restored once the engine is up")
		prune(nil, store, sizes, log)
		return 0
	}
	sizes, err = prune(&r, store, sizes, log)
	if err != nil {
		log.WithError(err).Warn("snapshotter: reading containerd's records; sizes are restored once the engine is up")
		return 0
	}
	m := mapper(ctl)
	info, err := m.Info(r.Pool)
	if err != nil {
		log.WithError(err).WithField("pool", r.Pool).Warn("snapshotter: the pool is not there; sizes are restored later")
		return 0
	}
	grown := 0
	for _, s := range sizes {
		if restore(m, info.Dev, s, log) {
			grown++
		}
	}
	return grown
}

// restore grows device s.Device of pool to s.Size if it is active and smaller.
func restore(m thin.Mapper, pool dm.Dev, s Size, log logrus.FieldLogger) bool {
	l := log.WithFields(logrus.Fields{"device": s.Device, "size": size.Format(s.Size)})
	info, err := m.Info(s.Device)
	if errors.Is(err, dm.ErrNotFound) || (err == nil && (!info.LiveTable || info.Suspended)) {
		return false // containerd activates it, and the next Ensure checks it
	}
	if err != nil {
		l.WithError(err).Warn("snapshotter: reading the device")
		return false
	}
	tt, sectors, err := thin.CheckDevice(m, s.Device, pool)
	if err != nil || tt.DevID != s.ThinID {
		l.WithError(err).WithField("thin_id", tt.DevID).Warn("snapshotter: the device is not the one dmsize sized; left alone")
		return false
	}
	if int64(sectors)*size.Sector >= s.Size {
		return false
	}
	g, err := thin.GrowDevice(m, s.Device, pool, s.Size)
	if err != nil {
		l.WithError(err).Error("snapshotter: restoring the device's size failed; its container may not start until the plugin succeeds")
		return false
	}
	l.WithField("from", size.Format(g.Before)).Info("snapshotter: containerd re-created the device at its recorded size; restored dmsize's size")
	return true
}

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

	"github.com/dmsize/dmsize/driver/dm"
	"github.com/dmsize/dmsize/driver/size"
	"github.com/dmsize/dmsize/driver/thin"
	"github.com/dmsize/dmsize/internal/atomicfile"
)

// containerd activates a snapshot device at the size in its own records, and dmsize never
// writes those while containerd runs. So dmsize keeps the size it gave each device in a file
// of its own, and gives it back whenever containerd re-created the device smaller (after a
// reboot): at the plugin's start, before it answers the engine (Repair), and in every Ensure.

// SizesDir is where the sizes are kept, under the plugin's state directory.
func SizesDir(stateDir string) string { return filepath.Join(stateDir, "snapshotter") }

// Size is what dmsize gave one snapshot device.
type Size struct {
	Device string `json:"device"`  // <pool>-snap-<id>: containerd never reuses a name
	Pool   string `json:"pool"`    // the thin pool's device-mapper name
	ThinID uint64 `json:"thin_id"` // the device's id in the pool, checked before each grow
	Size   int64  `json:"size"`    // bytes: the device and its filesystem may be this large
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

// raise records r, never below a size already recorded; the file is replaced atomically.
func (s sizeStore) raise(r Size) error {
	old, ok, err := s.get(r.Device)
	if err != nil {
		return err
	}
	if ok && old.Size >= r.Size && old.ThinID == r.ThinID {
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
// It reads only dmsize's files and device-mapper, so the plugin runs it before it answers the
// engine, which starts containers with a restart policy only after its plugins. A device
// that is absent, inactive, of another thin id or already at its size is left alone; its
// filesystem is never touched (it already has the size). It returns how many it grew.
func Repair(ctl *dm.Control, stateDir string, log logrus.FieldLogger) int {
	if err := pluginCopies(stateDir).clear(); err != nil {
		log.WithError(err).Warn("snapshotter: removing the copies of containerd's databases a previous run left")
	}
	sizes, errs := sizeStore{SizesDir(stateDir)}.all()
	for _, err := range errs {
		log.WithError(err).Error("snapshotter: skipping a size record")
	}
	pools := map[string]dm.Dev{}
	grown := 0
	for _, r := range sizes {
		l := log.WithFields(logrus.Fields{"device": r.Device, "size": size.Format(r.Size)})
		pool, ok := pools[r.Pool]
		if !ok {
			info, err := ctl.Info(r.Pool)
			if err != nil {
				l.WithError(err).Warn("snapshotter: the device's pool is not there; its size is restored later")
				continue
			}
			pool, pools[r.Pool] = info.Dev, info.Dev
		}
		info, err := ctl.Info(r.Device)
		if errors.Is(err, dm.ErrNotFound) || (err == nil && (!info.LiveTable || info.Suspended)) {
			continue // containerd activates it, and the next Ensure checks it
		}
		if err != nil {
			l.WithError(err).Warn("snapshotter: reading the device")
			continue
		}
		tt, sectors, err := thin.CheckDevice(ctl, r.Device, pool)
		if err != nil || tt.DevID != r.ThinID {
			l.WithError(err).WithField("thin_id", tt.DevID).Warn("snapshotter: the device is not the one dmsize sized; left alone")
			continue
		}
		if int64(sectors)*size.Sector >= r.Size {
			continue
		}
		g, err := thin.GrowDevice(ctl, r.Device, pool, r.Size)
		if err != nil {
			l.WithError(err).Error("snapshotter: restoring the device's size failed; its container may not start until the plugin succeeds")
			continue
		}
		grown++
		l.WithField("from", size.Format(g.Before)).Info("snapshotter: containerd re-created the device at its recorded size; restored dmsize's size")
	}
	return grown
}

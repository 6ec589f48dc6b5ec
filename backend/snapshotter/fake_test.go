package snapshotter

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/backend/thinpool"
	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/thin"
	"github.com/dmsize/dmsize/size"
)

// fakeDM is device-mapper as Repair and Persist see it: thin pool "pool" (253:0) and thin
// devices on it, each with its live table and the one loaded for the next resume.
type fakeDM struct {
	info     map[string]dm.Info
	live     map[string][]dm.Target
	inactive map[string][]dm.Target
}

var _ thin.Mapper = (*fakeDM)(nil)

var poolDev = dm.Dev{Major: 253, Minor: 0}

func newFakeDM() *fakeDM {
	return &fakeDM{info: map[string]dm.Info{"pool": {Name: "pool", Dev: poolDev, LiveTable: true}},
		live: map[string][]dm.Target{}, inactive: map[string][]dm.Target{}}
}

// thin makes an active thin device of the pool, as containerd activates it.
func (f *fakeDM) thin(name string, id uint64, sz int64) {
	f.info[name] = dm.Info{Name: name, Dev: dm.Dev{Major: 253, Minor: uint32(len(f.info))}, LiveTable: true}
	f.live[name] = []dm.Target{{Length: uint64(sz / size.Sector), Type: "thin", Params: dm.ThinTable{PoolDev: poolDev.String(), DevID: id}.String()}}
}

// size is a device's live size in bytes.
func (f *fakeDM) size(name string) int64 { return int64(f.live[name][0].Length) * size.Sector }

func (f *fakeDM) Info(name string) (dm.Info, error) {
	i, ok := f.info[name]
	if !ok {
		return dm.Info{}, &dm.Error{Op: "info", Name: name, Err: dm.ErrNotFound}
	}
	return i, nil
}
func (f *fakeDM) Table(name string) ([]dm.Target, error) { return f.live[name], nil }
func (f *fakeDM) Status(string) ([]dm.Target, error) {
	return nil, errors.New("Status commits the pool's metadata")
}
func (f *fakeDM) Load(name string, t []dm.Target) error { f.inactive[name] = t; return nil }
func (f *fakeDM) ClearInactive(name string) error       { delete(f.inactive, name); return nil }
func (f *fakeDM) Resume(name string) error {
	if t, ok := f.inactive[name]; ok {
		f.live[name] = t
		delete(f.inactive, name)
	}
	return nil
}

// host is containerd (fakeContainerd) and device-mapper with its three devices at 10 GiB, and
// dmsize's state directory, with the plugin's seams pointing at them.
type host struct {
	ctrd
	dm    *fakeDM
	state string
	log   *logrus.Logger
	logs  *test.Hook
}

func newHost(t *testing.T) *host {
	h := &host{ctrd: fakeContainerd(t), dm: newFakeDM(), state: t.TempDir()}
	h.dm.thin("pool-snap-6", 3, 10<<30)
	h.dm.thin("pool-snap-7", 4, 10<<30)
	h.dm.thin("pool-snap-8", 5, 10<<30)
	h.log, h.logs = test.NewNullLogger()
	set(t, &openPool, func(_ *dm.Control, name string) (*thinpool.Pool, error) {
		return &thinpool.Pool{Name: name, Dev: poolDev}, nil
	})
	set(t, &mapper, func(*dm.Control) thin.Mapper { return h.dm })
	return h
}

// start is the plugin's backend starting (New).
func (h *host) start(t *testing.T) *Backend {
	t.Helper()
	cfg := Config{ContainerdRoot: filepath.Dir(filepath.Dir(h.MetaDB)), Root: h.Root, StateDir: h.state, Log: h.log}
	b, err := New(nil, nil, engine.Storage{Snapshotter: "devmapper"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// record writes dmsize's size record of device as dmsize writes it; without a snapshot, as
// dmsize wrote it before it recorded one.
func (h *host) record(t *testing.T, device string, thinID uint64, sz int64, snapshot string) {
	t.Helper()
	rec := map[string]any{"device": device, "pool": "pool", "thin_id": thinID, "size": sz}
	if snapshot != "" {
		rec["snapshot"] = snapshot
	}
	b, _ := json.Marshal(rec)
	if err := os.MkdirAll(SizesDir(h.state), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(SizesDir(h.state), device+".json"), append(b, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
}

// recorded lists the devices with a size record.
func (h *host) recorded(t *testing.T) []string {
	t.Helper()
	all, errs := sizeStore{SizesDir(h.state)}.all()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var out []string
	for _, s := range all {
		out = append(out, s.Device)
	}
	return out
}

// lines counts the log lines at level or above that contain every one of words.
func (h *host) lines(level logrus.Level, words ...string) int {
	n := 0
next:
	for _, e := range h.logs.AllEntries() {
		if e.Level > level {
			continue
		}
		for _, w := range words {
			if !strings.Contains(fmt.Sprint(e.Message, " ", e.Data["device"], " ", errText(e)), w) {
				continue next
			}
		}
		n++
	}
	return n
}

func errText(e *logrus.Entry) string {
	if err, ok := e.Data[logrus.ErrorKey].(error); ok {
		return err.Error()
	}
	return ""
}

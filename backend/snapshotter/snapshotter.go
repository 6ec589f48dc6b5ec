// Package snapshotter is the sizer's backend for Docker 25+ on containerd's devmapper
// snapshotter (the containerd image store): the engine's API for containers, containerd's
// records (read from copies) for each container's thin device, device-mapper for the devices.
//
// containerd keeps a snapshot's device active for the snapshot's whole life, never reloads an
// active device's table, and re-creates a device at the size in its records only when it finds
// it absent at its start (a reboot). So a device grown in place stays grown; dmsize records
// the size it gave (sizes.go) and gives it back after containerd re-created it. dmsize never
// activates, holds or removes a snapshot device: containerd does, and `docker rm` removes it
// with `dmsetup remove --force`.
package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/backend/thinpool"
	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/thin"
	"github.com/dmsize/dmsize/sizer"
)

// Seams for the unit tests, since a *dm.Control reaches the kernel: openPool is thinpool.Open,
// mapper gives a *dm.Control as what Repair and Persist use of it.
var (
	openPool = thinpool.Open
	mapper   = func(ctl *dm.Control) thin.Mapper { return ctl }
)

// Engine is what the backend asks the container engine.
type Engine interface {
	Container(ctx context.Context, ref string) (engine.Container, error)
	SizedContainers(ctx context.Context) ([]string, error)
}

// Config says where containerd's records are, as the plugin sees them.
type Config struct {
	// ContainerdRoot is containerd's root directory (its "root", /var/lib/containerd).
	ContainerdRoot string
	// Root is the snapshotter's root_path; "" for containerd's default under ContainerdRoot.
	Root string
	// StateDir is dmsize's state directory (the sizes it gave, SizesDir; the copies of
	// containerd's databases, CopiesDir).
	StateDir string
	// Log gets what New finds and does not return; the standard logger when nil.
	Log logrus.FieldLogger
}

// DefaultRoot is the devmapper snapshotter's root_path when its configuration names none.
func DefaultRoot(containerdRoot string) string {
	return filepath.Join(containerdRoot, "io.containerd.snapshotter.v1.devmapper")
}

// Backend implements sizer.Engine, sizer.Devices and sizer.Sizes for one engine on containerd's
// devmapper snapshotter.
type Backend struct {
	*thinpool.Pool
	eng         Engine
	snapshotter string // the engine's storage driver: containerd's name of the snapshotter
	records     Records
	sizes       sizeStore
	log         logrus.FieldLogger

	mu        sync.Mutex
	devices   map[string]string // container ID -> its device: a snapshot's device never changes
	snapshots map[string]string // device -> the snapshotter's key of its snapshot
}

var (
	_ sizer.Engine  = (*Backend)(nil)
	_ sizer.Devices = (*Backend)(nil)
	_ sizer.Sizes   = (*Backend)(nil)
)

// New finds the snapshotter's pool from its records, tells Repair where they are, and drops
// the sizes they do not prove are their devices' (prune).
func New(eng Engine, ctl *dm.Control, st engine.Storage, cfg Config) (*Backend, error) {
	if st.Snapshotter != "devmapper" {
		return nil, fmt.Errorf("the engine's storage is %q (snapshotter %q); this backend sizes containerd's devmapper snapshots", st.Driver, st.Snapshotter)
	}
	root := cfg.Root
	if root == "" {
		root = DefaultRoot(cfg.ContainerdRoot)
	}
	pool, err := poolName(root)
	if err != nil {
		return nil, err
	}
	p, err := openPool(ctl, pool)
	if err != nil {
		return nil, fmt.Errorf("containerd's devmapper snapshotter: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	copies := pluginCopies(cfg.StateDir)
	if err := copies.clear(); err != nil {
		log.WithError(err).Warn("snapshotter: removing the copies of containerd's databases a previous run left")
	}
	b := &Backend{
		Pool: p, eng: eng, snapshotter: st.Snapshotter,
		records: Records{MetaDB: MetaDB(cfg.ContainerdRoot), Root: root, Pool: pool, Namespace: "moby", Snapshotter: st.Snapshotter, copies: copies},
		sizes:   sizeStore{SizesDir(cfg.StateDir)},
		devices: map[string]string{}, snapshots: map[string]string{},
		log: log,
	}
	if _, err := os.Stat(b.records.MetaDB); err != nil {
		return nil, fmt.Errorf("containerd's metadata (is containerd's root mounted in the plugin?): %w", err)
	}
	if err := saveRecords(cfg.StateDir, b.records); err != nil {
		log.WithError(err).Warn("snapshotter: saving where containerd's records are; the next start restores sizes only once the engine is up")
	}
	return b, b.prune()
}

// poolName is the pool whose device database is in the snapshotter's root: <pool_name>.db,
// next to the snapshotter's own metadata.db.
func poolName(root string) (string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return "", fmt.Errorf("containerd's devmapper snapshotter root (its root_path): %w", err)
	}
	var pools []string
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".db") && n != "metadata.db" {
			pools = append(pools, strings.TrimSuffix(n, ".db"))
		}
	}
	if len(pools) != 1 {
		return "", fmt.Errorf("containerd's devmapper snapshotter root %s holds %d pool databases (%s), want 1", root, len(pools), strings.Join(pools, ", "))
	}
	return pools[0], nil
}

// prune drops the sizes containerd's records do not prove are their devices': of devices it
// removed, of devices it made again under an old name, and those an older dmsize recorded.
func (b *Backend) prune() error {
	all, _ := b.sizes.all()
	_, err := prune(&b.records, b.sizes, all, b.log)
	return err
}

// --- sizer.Engine

// Container inspects a container and finds its snapshot's device in containerd's records.
func (b *Backend) Container(ctx context.Context, ref string) (sizer.Container, error) {
	c, out, err := thinpool.Inspect(ctx, b.eng, ref)
	if err != nil || c.Driver != b.snapshotter {
		return out, err
	}
	dev, err := b.device(c.ID)
	if err != nil || dev == "" {
		return out, err
	}
	devs, err := b.records.Devices()
	if err != nil {
		return out, err
	}
	d, ok := devs[dev]
	if !ok {
		return out, fmt.Errorf("containerd has no record of device %s of container %s", dev, c.Name)
	}
	out.Device, out.DeviceID, out.Cached = dev, int(d.DeviceID), int64(d.Size)
	return out, nil
}

// device is the container's rootfs device; "" while containerd has no snapshot for it.
func (b *Backend) device(id string) (string, error) {
	b.mu.Lock()
	dev, ok := b.devices[id]
	b.mu.Unlock()
	if ok {
		return dev, nil
	}
	dev, snapshot, err := b.records.snapshot(id)
	if err != nil || dev == "" {
		return "", err
	}
	b.mu.Lock()
	b.devices[id], b.snapshots[dev] = dev, snapshot
	b.mu.Unlock()
	return dev, nil
}

// snapshot is the snapshotter's key of the device's snapshot; "" when containerd has none.
func (b *Backend) snapshot(device string) (string, error) {
	b.mu.Lock()
	snapshot, ok := b.snapshots[device]
	b.mu.Unlock()
	if ok {
		return snapshot, nil
	}
	all, err := b.records.snapshots()
	if err != nil || all[device] == "" {
		return "", err
	}
	b.mu.Lock()
	b.snapshots[device] = all[device]
	b.mu.Unlock()
	return all[device], nil
}

// SizedContainers lists the labelled containers.
func (b *Backend) SizedContainers(ctx context.Context) ([]string, error) {
	return b.eng.SizedContainers(ctx)
}

// MountRootfs is never needed: containerd keeps a snapshot's device active while the snapshot
// exists, stopped container or not, so the sizer grows it in place.
func (b *Backend) MountRootfs(context.Context, string) sizer.Mount {
	return failedMount{errors.New("containerd keeps snapshot devices active: an absent one was deactivated outside containerd; it is sized when containerd activates it again")}
}

type failedMount struct{ err error }

func (m failedMount) Done() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
func (m failedMount) Err() error     { return m.err }
func (m failedMount) Release() error { return nil }

// --- sizer.Devices (State, Grow, GrowFS, FS and PoolData: thinpool.Pool)

// ErrActivate: dmsize never activates a snapshot device. containerd activates the absent
// devices it records as active when it starts, and a device of dmsize's there at that moment
// would make containerd's activation fail, and its snapshotter with it.
var ErrActivate = errors.New("containerd activates snapshot devices when it starts; dmsize never does")

// Activate refuses: ErrActivate.
func (b *Backend) Activate(string, int, int64) error { return ErrActivate }

// Hold does nothing: containerd does not deactivate a device at the container's stop, and
// removes it by force at `docker rm`.
func (b *Backend) Hold(string) error { return nil }

// Release forgets the size of a device containerd no longer has.
func (b *Backend) Release(name string) bool {
	devs, err := b.records.Devices()
	if err != nil {
		return false
	}
	if _, ok := devs[name]; !ok {
		b.sizes.remove(name)
	}
	b.mu.Lock()
	for id, dev := range b.devices {
		if dev == name {
			delete(b.devices, id)
		}
	}
	delete(b.snapshots, name)
	b.mu.Unlock()
	return false
}

// Holds is 0: nothing is held on this backend.
func (b *Backend) Holds() int { return 0 }

// Held is false: nothing is held on this backend.
func (b *Backend) Held(string) bool { return false }

// --- sizer.Sizes

// Persisted is the size containerd would re-create the device at, or the one dmsize gave it
// (and restores), whichever is larger; dmsize's only if it was given to the device's snapshot.
func (b *Backend) Persisted(device string) (int64, error) {
	devs, err := b.records.Devices()
	if err != nil {
		return 0, err
	}
	d, ok := devs[device]
	if !ok {
		return 0, fmt.Errorf("containerd has no record of device %s: %w", device, os.ErrNotExist)
	}
	r, ok, err := b.sizes.get(device)
	if err != nil || !ok {
		return int64(d.Size), err
	}
	snapshot, err := b.snapshot(device)
	if err != nil {
		return 0, err
	}
	if unproven(r, d, true, snapshot) != "" {
		return int64(d.Size), nil // another snapshot's: Persist replaces it
	}
	return max(int64(d.Size), r.Size), nil
}

// Persist records sz as the device's size, never lower.
func (b *Backend) Persist(device string, sz int64) error {
	devs, err := b.records.Devices()
	if err != nil {
		return err
	}
	d, ok := devs[device]
	if !ok || d.State == Removed {
		return fmt.Errorf("containerd has no record of device %s: %w", device, os.ErrNotExist)
	}
	tt, _, err := thin.CheckDevice(mapper(b.Ctl), device, b.Dev)
	if err != nil {
		return err
	}
	if tt.DevID != uint64(d.DeviceID) {
		return fmt.Errorf("device %s has thin id %d, containerd's records say %d: refusing to touch it", device, tt.DevID, d.DeviceID)
	}
	snapshot, err := b.snapshot(device)
	if err != nil {
		return err
	}
	if snapshot == "" {
		return fmt.Errorf("containerd has no snapshot of device %s: %w", device, os.ErrNotExist)
	}
	return b.sizes.raise(Size{Device: device, Pool: b.Name, ThinID: tt.DevID, Size: sz, Snapshot: snapshot})
}

// Provisioned sums the sizes of the pool's devices: containerd's, or dmsize's where larger
// (a record of the device's thin id: New dropped those of other snapshots).
func (b *Backend) Provisioned() (int64, error) {
	devs, err := b.records.Devices()
	if err != nil {
		return 0, err
	}
	all, _ := b.sizes.all()
	sizes := make(map[string]Size, len(all))
	for _, r := range all {
		sizes[r.Device] = r
	}
	var total int64
	for name, d := range devs {
		if d.State == Removed {
			continue
		}
		sz := int64(d.Size)
		if r, ok := sizes[name]; ok && r.ThinID == uint64(d.DeviceID) && r.Snapshot != "" {
			sz = max(sz, r.Size)
		}
		total += sz
	}
	return total, nil
}

// BaseSize is the size of the newest device: containerd creates every device at
// base_image_size.
func (b *Backend) BaseSize() (int64, error) {
	devs, err := b.records.Devices()
	if err != nil {
		return 0, err
	}
	newest, base := -1, int64(0)
	for name, d := range devs {
		n, err := strconv.Atoi(name[strings.LastIndex(name, "-")+1:])
		if err == nil && n > newest {
			newest, base = n, int64(d.Size)
		}
	}
	if newest < 0 {
		return 0, errors.New("containerd's pool has no device yet")
	}
	return base, nil
}

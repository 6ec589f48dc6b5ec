// Package graphdriver is the sizer's backend for Docker's devicemapper graph driver (Docker
// 17.06–24.x): the engine's API, the engine's thin pool through device-mapper, and the
// engine's per-device metadata files, where it reads each device's size at start.
package graphdriver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/backend/thinpool"
	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/engine/devmeta"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/size"
	"github.com/dmsize/dmsize/sizer"
)

// Backend implements sizer.Engine, sizer.Devices and sizer.Sizes for one engine.
type Backend struct {
	*thinpool.Pool
	ctl     deviceControl // Pool.Ctl
	eng     *engine.Client
	storage engine.Storage
	holds   *Holder
	prov    provisioned
	// Log gets what Release cannot return (New sets the standard logger).
	Log logrus.FieldLogger
}

var (
	_ sizer.Engine  = (*Backend)(nil)
	_ sizer.Devices = (*Backend)(nil)
	_ sizer.Sizes   = (*Backend)(nil)
)

// deviceControl is the part of *dm.Control the backend uses itself (the unit tests' fake
// kernel stands in for it).
type deviceControl interface {
	List() ([]dm.NameDev, error)
	Info(name string) (dm.Info, error)
	Create(name, uuid string) (dm.Dev, error)
	Load(name string, table []dm.Target) error
	Resume(name string) error
	Rename(old, new string) error
	Remove(name string, deferred bool) error
	CancelDeferredRemove(name string) error
}

var _ deviceControl = (*dm.Control)(nil)

// Seams for the unit tests, which reach neither the kernel nor /dev/mapper: readDevice is
// devmeta.Read (Provisioned's, counted), openPool is thinpool.Open, control gives New's ctl as the backend's deviceControl, ensureNode is
// dm.EnsureNode.
var (
	readDevice = devmeta.Read
	openPool   = thinpool.Open
	control    = func(ctl *dm.Control) deviceControl { return ctl }
	ensureNode = dm.EnsureNode
)

// ErrDeferredRemovalOff means the engine would not leave a held device in place at stop.
var ErrDeferredRemovalOff = errors.New("the engine runs without deferred device removal; dmsize needs it (add \"dm.use_deferred_removal=true\" to storage-opts in /etc/docker/daemon.json and restart dockerd)")

// ErrDeferredDeletionOff means `docker rm` would fail on a device dmsize holds (events mode
// lets go only at the destroy event, after the engine's delete).
var ErrDeferredDeletionOff = errors.New("the engine runs without deferred device deletion; dmsize needs it (add \"dm.use_deferred_deletion=true\" to storage-opts in /etc/docker/daemon.json and restart dockerd), or a held container could not be removed")

// WhyNotGrow is why no container may grow on this engine, or nil.
func WhyNotGrow(st engine.Storage) error {
	if !st.DeferredRemoval {
		return ErrDeferredRemovalOff
	}
	if !st.DeferredDeletion {
		return ErrDeferredDeletionOff
	}
	return nil
}

// New prepares the backend for an engine on the devicemapper graph driver, and removes what
// an Activate interrupted by a crash left.
func New(eng *engine.Client, ctl *dm.Control, st engine.Storage) (*Backend, error) {
	if st.Driver != "devicemapper" {
		return nil, fmt.Errorf("the engine's storage driver is %q; dmsize sizes devicemapper thin devices", st.Driver)
	}
	pool, err := openPool(ctl, st.PoolName)
	if err != nil {
		return nil, fmt.Errorf("the engine's %w", err)
	}
	b := &Backend{Pool: pool, ctl: control(ctl), eng: eng, storage: st, holds: NewHolder(), Log: logrus.StandardLogger()}
	return b, b.removeStaging()
}

// --- sizer.Engine

// Container inspects a container.
func (b *Backend) Container(ctx context.Context, ref string) (sizer.Container, error) {
	c, out, err := thinpool.Inspect(ctx, b.eng, ref)
	if err == nil && c.Driver == "devicemapper" {
		out.Device, out.DeviceID, out.Cached = c.DeviceName, c.DeviceID, c.DeviceSize
	}
	return out, err
}

// SizedContainers lists the labelled containers.
func (b *Backend) SizedContainers(ctx context.Context) ([]string, error) {
	return b.eng.SizedContainers(ctx)
}

// MountRootfs has the engine mount the container's rootfs (engine.HoldMounted).
func (b *Backend) MountRootfs(ctx context.Context, id string) sizer.Mount {
	return b.eng.HoldMounted(ctx, id)
}

// --- sizer.Devices (State, Grow, GrowFS, FS and PoolData: thinpool.Pool)

// stagingSuffix names the temporary device Activate builds before renaming it into place.
const stagingSuffix = ".dmsize-activate"

// Activate brings up the absent thin device name (thin id deviceID) at sz bytes: under a
// temporary name first, table loaded and resumed, then renamed into place. The engine, which
// uses an existing device as it finds it, never finds one without a table; if it creates the
// device meanwhile, the rename fails and the temporary device is removed.
func (b *Backend) Activate(name string, deviceID int, sz int64) error {
	tmp := name + stagingSuffix
	if _, err := b.ctl.Info(tmp); err == nil {
		if err := b.ctl.Remove(tmp, false); err != nil {
			return err
		}
	}
	if _, err := b.ctl.Create(tmp, ""); err != nil {
		return err
	}
	t := dm.Target{Start: 0, Length: uint64(sz / size.Sector), Type: "thin", Params: dm.ThinTable{PoolDev: b.Dev.String(), DevID: uint64(deviceID)}.String()}
	err := b.ctl.Load(tmp, []dm.Target{t})
	if err == nil {
		err = b.ctl.Resume(tmp)
	}
	if err == nil {
		err = b.ctl.Rename(tmp, name)
	}
	if err != nil {
		b.ctl.Remove(tmp, false)
		return err
	}
	return nil
}

// removeStaging removes temporary devices an interrupted Activate left: each maps a thin device
// the engine may want to delete.
func (b *Backend) removeStaging() error {
	list, err := b.ctl.List()
	if err != nil {
		return err
	}
	for _, d := range list {
		if strings.HasSuffix(d.Name, stagingSuffix) {
			if err := b.ctl.Remove(d.Name, false); err != nil {
				return fmt.Errorf("removing %s, left by an interrupted activation: %w", d.Name, err)
			}
		}
	}
	return nil
}

// Hold keeps the device open. The engine's activation waits for udev's node in the host's
// /dev; dmsize may get there first, so it makes the node as libdevmapper's fallback would.
func (b *Backend) Hold(name string) error {
	if b.holds.Held(name) {
		return nil
	}
	info, err := b.ctl.Info(name)
	if err != nil {
		return err
	}
	if err := ensureNode(name, info.Dev, b.Ctl.NodeWait); err != nil {
		return err
	}
	return b.holds.Hold(name)
}

// Release lets go of a held device. If the engine has asked for the device's removal (at the
// container's stop, deferred because dmsize held it), Release completes that removal itself,
// synchronously. Left to the kernel, the removal runs on a work queue after the last close,
// and drops the device's name before it closes the thin device in the pool: an engine delete
// in between fails with EBUSY, and the engine marks the device for deferred deletion (seen in
// the VM, strict mode's `docker rm`). Cancelling the deferral before the close and removing
// after it has no such window. Another opener (udev probes a device after each change, and
// dmsize's raw ioctls do not wait for it as libdevmapper does) would start that work queue at
// its close: Release waits for it first, and retries its removal while one comes and goes,
// for releaseWait at most. Past that, the deferred removal is given back, as the engine left it.
func (b *Backend) Release(name string) bool {
	info, err := b.ctl.Info(name)
	if err != nil || !info.DeferredRemove || !b.holds.Held(name) {
		return b.holds.Release(name)
	}
	deadline := time.Now().Add(releaseWait)
	for info.OpenCount > 1 && time.Now().Before(deadline) {
		time.Sleep(releasePoll)
		if info, err = b.ctl.Info(name); err != nil {
			return b.holds.Release(name)
		}
	}
	finish := info.DeferredRemove && info.OpenCount == 1 && b.ctl.CancelDeferredRemove(name) == nil
	held := b.holds.Release(name)
	if finish {
		b.removeReleased(name, deadline)
	}
	return held
}

// How long Release waits for other openers of a device the engine asked to remove, and how
// often it looks.
var (
	releaseWait = 5 * time.Second
	releasePoll = 10 * time.Millisecond
)

// removeReleased removes the device Release just closed, retrying while another opener has it
// (until deadline), or gives it back the deferred removal the engine asked for.
func (b *Backend) removeReleased(name string, deadline time.Time) {
	for {
		err := b.ctl.Remove(name, false)
		if err == nil || errors.Is(err, dm.ErrNotFound) {
			return
		}
		if !errors.Is(err, unix.EBUSY) || !time.Now().Before(deadline) {
			break
		}
		time.Sleep(releasePoll)
	}
	if err := b.ctl.Remove(name, true); err != nil && !errors.Is(err, dm.ErrNotFound) {
		b.Log.WithError(err).WithField("device", name).Warn("the engine asked for this device's removal; giving it back its deferred removal failed")
	}
}

// Held tells whether dmsize holds the device.
func (b *Backend) Held(name string) bool { return b.holds.Held(name) }

// Holds is the number of devices held.
func (b *Backend) Holds() int { return b.holds.Count() }

// --- sizer.Sizes

func (b *Backend) metadataPath(device string) (string, error) {
	hash, err := devmeta.HashFromDeviceName(device)
	if err != nil {
		return "", err
	}
	return devmeta.Path(b.storage.Home(), hash)
}

// Persisted is the size in the device's metadata file.
func (b *Backend) Persisted(device string) (int64, error) {
	p, err := b.metadataPath(device)
	if err != nil {
		return 0, err
	}
	d, err := devmeta.Read(p)
	return d.Size, err
}

// Persist rewrites the size in the device's metadata file.
func (b *Backend) Persist(device string, sz int64) error {
	p, err := b.metadataPath(device)
	if err != nil {
		return err
	}
	_, err = devmeta.SetSize(p, sz)
	return err
}

// BaseSize is the size of the engine's base device: what a new container gets.
func (b *Backend) BaseSize() (int64, error) {
	p, err := devmeta.Path(b.storage.Home(), "base")
	if err != nil {
		return 0, err
	}
	d, err := devmeta.Read(p)
	return d.Size, err
}

// Provisioned sums the sizes of the pool's devices from their metadata files, reading again
// only the files that changed since the last call (provisioned).
func (b *Backend) Provisioned() (int64, error) {
	dir, err := os.Open(filepath.Join(b.storage.Home(), "metadata"))
	if err != nil {
		return 0, err
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	return b.prov.sum(b.storage.Home(), int(dir.Fd()), names), nil
}

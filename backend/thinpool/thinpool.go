// Package thinpool is what every storage backend does the same way on a thin pool's devices:
// read a device's state, grow its table, grow its filesystem, read the filesystem and the pool.
// The graph driver and containerd's devmapper snapshotter differ only in who activates the
// devices and where their sizes are kept.
package thinpool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/fs"
	"github.com/dmsize/dmsize/kernel/thin"
	"github.com/dmsize/dmsize/size"
	"github.com/dmsize/dmsize/sizer"
)

// Pool is one thin pool, by name, and the device-mapper handle that reaches it.
type Pool struct {
	Ctl  *dm.Control
	Name string
	Dev  dm.Dev
}

// mapper is how Open and Pool's methods reach ctl: ctl itself. Tests substitute a fake, since a
// *dm.Control reaches the kernel.
var mapper = func(ctl *dm.Control) thin.NoFlushMapper { return ctl }

// Open finds the pool named name.
func Open(ctl *dm.Control, name string) (*Pool, error) {
	info, err := mapper(ctl).Info(name)
	if err != nil {
		return nil, fmt.Errorf("thin pool %q: %w", name, err)
	}
	return &Pool{Ctl: ctl, Name: name, Dev: info.Dev}, nil
}

// State reads a device's state; its size only from a thin table on this pool.
func (p *Pool) State(name string) (sizer.DeviceState, error) {
	info, err := mapper(p.Ctl).Info(name)
	if errors.Is(err, dm.ErrNotFound) {
		return sizer.DeviceState{}, nil
	}
	if err != nil {
		return sizer.DeviceState{}, err
	}
	st := sizer.DeviceState{Exists: true, Active: info.LiveTable && !info.Suspended, Opens: info.OpenCount, Deferred: info.DeferredRemove}
	if st.Active {
		_, sectors, err := thin.CheckDevice(mapper(p.Ctl), name, p.Dev)
		if err != nil {
			return st, err
		}
		st.Size = int64(sectors) * size.Sector
	}
	return st, nil
}

// Grow grows an active thin device's table.
func (p *Pool) Grow(name string, sz int64) (time.Duration, error) {
	g, err := thin.GrowDevice(mapper(p.Ctl), name, p.Dev, sz)
	return g.Stall, err
}

// GrowFS grows the filesystem on an active device.
func (p *Pool) GrowFS(name string, sz int64) (time.Duration, error) {
	r, err := fs.Grow(dm.Node(name), sz)
	return r.Duration, err
}

// FS reads the filesystem on an active device (statfs when mounted, else its superblock).
func (p *Pool) FS(name string) (int64, int64, error) {
	u, err := fs.UsageOf(dm.Node(name))
	return u.Size, u.Used, err
}

// PoolData reads the pool's data size without a metadata commit.
func (p *Pool) PoolData() (int64, error) {
	s, err := thin.ReadPoolNoFlush(mapper(p.Ctl), p.Name)
	if err != nil {
		return 0, err
	}
	_, total := s.DataBytes()
	return total, nil
}

// Inspect asks the engine for a container, as the sizer sees it: ErrNotFound wrapped as
// sizer.ErrNotFound, no device yet (the backend finds it).
func Inspect(ctx context.Context, eng interface {
	Container(context.Context, string) (engine.Container, error)
}, ref string) (engine.Container, sizer.Container, error) {
	c, err := eng.Container(ctx, ref)
	if errors.Is(err, engine.ErrNotFound) {
		return c, sizer.Container{}, fmt.Errorf("%w: %w", sizer.ErrNotFound, err)
	}
	if err != nil {
		return c, sizer.Container{}, err
	}
	return c, sizer.Container{ID: c.ID, Name: c.Name, Labels: c.Labels, Running: c.Running, State: c.State, ReadOnly: c.ReadonlyRootfs}, nil
}

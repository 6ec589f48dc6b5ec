// Package thin grows device-mapper thin devices and thin pools in place, over package dm.
//
// It only ever rewrites the length of an existing table and resumes: never a pool message,
// never a device created, deleted or renumbered, never the transaction id (the engine owns
// those). Every step is safe to repeat: a crash between load and resume leaves an inactive
// table that the next attempt overwrites.
package thin

import (
	"fmt"
	"time"

	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/size"
)

// Mapper is the part of *dm.Control this package uses; tests substitute a fake to inject the
// failures a real kernel will not produce on demand.
type Mapper interface {
	Info(name string) (dm.Info, error)
	Table(name string) ([]dm.Target, error)
	Status(name string) ([]dm.Target, error)
	Load(name string, table []dm.Target) error
	ClearInactive(name string) error
	Resume(name string) error
}

// Grown says what a grow did. Stall is how long the device's I/O was held: the kernel's
// suspend, table swap and resume inside the resume ioctl.
type Grown struct {
	Name          string
	Before, After int64 // bytes
	Stall         time.Duration
}

// CheckDevice returns the thin table of device name and its length in sectors, or an error if
// the device's live table is not a single thin target on pool (any pool when pool is zero).
func CheckDevice(c Mapper, name string, pool dm.Dev) (dm.ThinTable, uint64, error) {
	table, err := c.Table(name)
	if err != nil {
		return dm.ThinTable{}, 0, err
	}
	if len(table) != 1 || table[0].Type != "thin" || table[0].Start != 0 {
		return dm.ThinTable{}, 0, fmt.Errorf("thin: %s is not a thin device (table %s); refusing to touch it", name, describe(table))
	}
	tt, err := dm.ParseThinTable(table[0].Params)
	if err != nil {
		return dm.ThinTable{}, 0, fmt.Errorf("thin: %s: %w", name, err)
	}
	if pool != (dm.Dev{}) && tt.PoolDev != pool.String() {
		return dm.ThinTable{}, 0, fmt.Errorf("thin: %s is a thin device of pool %s, not of the engine's pool %s; refusing to touch it", name, tt.PoolDev, pool)
	}
	return tt, table[0].Length, nil
}

// GrowDevice makes thin device name newSize bytes long (rounded down to sectors). Growing to
// the current size does nothing; a smaller size is refused with *errs.Refusal. The device
// must be a thin device of pool. On a failed resume the new table is dropped and the device is
// left resumed at its old size.
func GrowDevice(c Mapper, name string, pool dm.Dev, newSize int64) (Grown, error) {
	tt, cur, err := CheckDevice(c, name, pool)
	if err != nil {
		return Grown{}, err
	}
	want := uint64(newSize) / size.Sector
	g := Grown{Name: name, Before: int64(cur) * size.Sector, After: int64(cur) * size.Sector}
	switch {
	case want < cur:
		return g, errs.Shrink("thin device "+name, g.Before, int64(want)*size.Sector)
	case want == cur:
		return g, nil
	}
	old := dm.Target{Start: 0, Length: cur, Type: "thin", Params: tt.String()}
	t := old
	t.Length = want
	if err := reload(c, name, old, t, &g.Stall); err != nil {
		return g, err
	}
	g.After = int64(want) * size.Sector
	return g, nil
}

// reload loads t as name's only target in place of old and resumes, which swaps it in (the
// kernel suspends, flushing, around the swap). If that fails, the device is put back running
// on old: a resume can fail after the kernel swapped the table in (a target's pre-resume
// check), leaving the device suspended on the new table, which a second resume would only
// retry; so the old table is loaded back when the live one is not old.
func reload(c Mapper, name string, old, t dm.Target, stall *time.Duration) error {
	if err := c.Load(name, []dm.Target{t}); err != nil {
		return err
	}
	start := time.Now()
	err := c.Resume(name)
	*stall = time.Since(start)
	if err == nil {
		return nil
	}
	if cerr := c.ClearInactive(name); cerr != nil {
		err = fmt.Errorf("%w (and clearing the new table: %v)", err, cerr)
	}
	info, ierr := c.Info(name)
	if ierr != nil || !info.Suspended {
		return err
	}
	if live, lerr := c.Table(name); lerr != nil || len(live) != 1 || live[0] != old {
		if lerr := c.Load(name, []dm.Target{old}); lerr != nil {
			return fmt.Errorf("%w (and loading the old table back: %v)", err, lerr)
		}
	}
	if rerr := c.Resume(name); rerr != nil {
		return fmt.Errorf("%w (and %s stays suspended: %v)", err, name, rerr)
	}
	return err
}

func describe(table []dm.Target) string {
	if len(table) == 0 {
		return "empty"
	}
	s := ""
	for i, t := range table {
		if i > 0 {
			s += "; "
		}
		s += fmt.Sprintf("%d %d %s %s", t.Start, t.Length, t.Type, t.Params)
	}
	return s
}

package thin

import (
	"fmt"
	"time"

	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/size"
)

// Pool is a thin pool's table and status, read together.
type Pool struct {
	Name   string
	Length uint64 // sectors: the data device's size as the pool table says
	Table  dm.PoolTable
	Status dm.PoolStatus
}

// ReadPool reads pool's table and status. It fails if pool is not a single thin-pool target.
func ReadPool(c Mapper, pool string) (Pool, error) {
	return readPool(c, pool, c.Status)
}

// NoFlushMapper can read a status without making a thin pool commit its metadata.
type NoFlushMapper interface {
	Mapper
	StatusNoFlush(name string) ([]dm.Target, error)
}

// ReadPoolNoFlush is ReadPool without the metadata commit a status read otherwise causes: the
// counts are the kernel's in-core ones, exact, and a watcher may read them often.
func ReadPoolNoFlush(c NoFlushMapper, pool string) (Pool, error) {
	return readPool(c, pool, c.StatusNoFlush)
}

func readPool(c Mapper, pool string, statusOf func(string) ([]dm.Target, error)) (Pool, error) {
	table, err := c.Table(pool)
	if err != nil {
		return Pool{}, err
	}
	if len(table) != 1 || table[0].Type != "thin-pool" {
		return Pool{}, fmt.Errorf("thin: %s is not a thin pool (table %s)", pool, describe(table))
	}
	pt, err := dm.ParsePoolTable(table[0].Params)
	if err != nil {
		return Pool{}, fmt.Errorf("thin: pool %s: %w", pool, err)
	}
	status, err := statusOf(pool)
	if err != nil {
		return Pool{}, err
	}
	if len(status) != 1 {
		return Pool{}, fmt.Errorf("thin: pool %s has %d status lines", pool, len(status))
	}
	ps, err := dm.ParsePoolStatus(status[0].Params)
	if err != nil {
		return Pool{}, fmt.Errorf("thin: pool %s: %w", pool, err)
	}
	return Pool{Name: pool, Length: table[0].Length, Table: pt, Status: ps}, nil
}

// DataBytes and MetaBytes are the pool's used and total space in bytes.
func (p Pool) DataBytes() (used, total int64) {
	bs := int64(p.Table.DataBlockSectors) * size.Sector
	return int64(p.Status.UsedDataBlocks) * bs, int64(p.Status.TotalDataBlocks) * bs
}

// MetaBytes: thin-pool metadata blocks are 4 KiB.
func (p Pool) MetaBytes() (used, total int64) {
	const metaBlock = 4096
	return int64(p.Status.UsedMetaBlocks) * metaBlock, int64(p.Status.TotalMetaBlocks) * metaBlock
}

// Reloaded says what a pool reload did.
type Reloaded struct {
	Before, After Pool
	Stall         time.Duration
}

// ReloadPool reloads pool's table with its data length set to newLength sectors, keeping every
// other parameter the engine chose, and resumes. The kernel re-reads both devices' sizes on
// resume, so this is also how a grown metadata device is taken in (newLength unchanged).
// newLength must not be below the current length, and the data device must already be that
// big (grow the backing file or LV first).
func ReloadPool(c Mapper, pool string, newLength uint64) (Reloaded, error) {
	before, err := ReadPool(c, pool)
	if err != nil {
		return Reloaded{}, err
	}
	r := Reloaded{Before: before}
	if newLength < before.Length {
		return r, errs.Shrink("thin pool "+pool, int64(before.Length)*size.Sector, int64(newLength)*size.Sector)
	}
	if before.Status.Fail || before.Status.NeedsCheck {
		return r, fmt.Errorf("thin: pool %s is failed or needs a check (status %+v); not reloading it", pool, before.Status)
	}
	old := dm.Target{Start: 0, Length: before.Length, Type: "thin-pool", Params: before.Table.String()}
	t := old
	t.Length = newLength
	if err := reload(c, pool, old, t, &r.Stall); err != nil {
		return r, err
	}
	r.After, err = ReadPool(c, pool)
	return r, err
}

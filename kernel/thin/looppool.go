package thin

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/internal/crashpoint"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/kernel/loop"
	"github.com/dmsize/dmsize/size"
)

// GrowLoopPool grows a loop-backed pool (the engine's loop-lvm): the sparse data file to
// dataSize bytes and the metadata file to metaSize bytes, or to a file's current size where
// that is larger (growTo; an empty file name leaves that one alone), refreshes their loop
// devices' capacity, and reloads the pool table with the new data length so the kernel takes
// both in, online.
//
// The files must be the pool's own: a file whose loop device is not the pool's data (or
// metadata) device is refused before anything changes, and so is any shrink. Repeating a grow
// that completed, or completing one that a crash interrupted, is safe: each step only ever
// makes a size equal to or bigger than it was.
func GrowLoopPool(c Mapper, pool, dataFile string, dataSize int64, metaFile string, metaSize int64) (Reloaded, error) {
	p, err := ReadPool(c, pool)
	if err != nil {
		return Reloaded{Before: p}, err
	}
	newLength := p.Length
	files := []struct {
		what, path, dev string
		plan, to        int64
	}{{"data", dataFile, p.Table.DataDev, dataSize, 0}, {"metadata", metaFile, p.Table.MetaDev, metaSize, 0}}
	for i := range files {
		f := &files[i]
		if f.path == "" {
			continue
		}
		if err := checkBacking(pool, f.what, f.path, f.dev); err != nil {
			return Reloaded{Before: p}, err
		}
		if f.what == "data" && f.plan/size.Sector < int64(p.Length) {
			return Reloaded{Before: p}, errs.Shrink("thin pool "+pool+" data", int64(p.Length)*size.Sector, f.plan)
		}
		st, err := os.Stat(f.path)
		if err != nil {
			return Reloaded{Before: p}, err
		}
		var sectors uint64
		if f.to, sectors = growTo(f.plan, st.Size()); f.what == "data" {
			newLength = sectors
		}
	}
	// Files first (each refuses to shrink), then the loops, then the pool: a crash anywhere
	// leaves sizes that only a later, identical call needs to finish.
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if err := loop.GrowFile(f.path, f.to); err != nil {
			return Reloaded{Before: p}, err
		}
		crashpoint.Here("pool-file-grown")
		if _, capacity, err := loop.Refresh(f.path); err != nil {
			return Reloaded{Before: p}, err
		} else if want := f.to - f.to%size.Sector; capacity < want {
			return Reloaded{Before: p}, fmt.Errorf("thin: pool %s: loop device over %s reports %d bytes after refresh, want %d", pool, f.path, capacity, want)
		}
		crashpoint.Here("pool-loop-refreshed")
	}
	return ReloadPool(c, pool, newLength)
}

// growTo is the size a pool file planned to plan bytes, now cur bytes long, is grown to, and
// the pool length in sectors that gives for the data file. A crash between a file's grow and
// the pool's reload leaves the file longer than the pool: a later, smaller plan must take the
// file's size, or GrowFile refuses the shrink on every check and the pool never grows again.
func growTo(plan, cur int64) (bytes int64, sectors uint64) {
	bytes = max(plan, cur)
	return bytes, uint64(bytes / size.Sector)
}

// checkBacking verifies that file backs the loop device the pool table names as dev.
func checkBacking(pool, what, file, dev string) error {
	want, err := dm.ParseDev(dev)
	if err != nil {
		return fmt.Errorf("thin: pool %s %s device %q: %w", pool, what, dev, err)
	}
	loops, err := loop.FindByFile(file)
	if err != nil {
		return err
	}
	for _, l := range loops {
		var st unix.Stat_t
		if err := unix.Stat(l, &st); err != nil {
			return &os.PathError{Op: "stat", Path: l, Err: err}
		}
		if unix.Major(uint64(st.Rdev)) == want.Major && unix.Minor(uint64(st.Rdev)) == want.Minor {
			return nil
		}
	}
	return fmt.Errorf("thin: %s is not the %s file of pool %s (its %s device is %s; loop devices over the file: %v); refusing to touch it", file, what, pool, what, dev, loops)
}

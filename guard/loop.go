package guard

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/kernel/thin"
	"github.com/dmsize/dmsize/size"
)

// loopExtender grows loop-lvm's sparse files and reloads the pool (thin.GrowLoopPool).
type loopExtender struct {
	c          thin.Mapper
	pool       string
	data, meta string // the engine's sparse files
	minFree    int64
}

func (l *loopExtender) Kind() string { return "loop-lvm" }

// Room is the host filesystem's free space, less MinHostFree, less what the sparse files may
// still take: their length not yet allocated is a promise the pool has already made.
func (l *loopExtender) Room() (int64, string, error) {
	var fs unix.Statfs_t
	dir := filepath.Dir(l.data)
	if err := unix.Statfs(dir, &fs); err != nil {
		return 0, "", &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	free := int64(fs.Bavail) * fs.Bsize
	var owed int64
	for _, f := range []string{l.data, l.meta} {
		if f == "" {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(f, &st); err != nil {
			return 0, "", &os.PathError{Op: "stat", Path: f, Err: err}
		}
		owed += max(st.Size-st.Blocks*512, 0)
	}
	room := free - l.minFree - owed
	why := fmt.Sprintf("the filesystem holding %s has %s free; the pool's sparse files may still take %s of it and MIN_HOST_FREE keeps %s",
		l.data, size.Decimal(free), size.Decimal(owed), size.Format(l.minFree))
	return room, why, nil
}

func (l *loopExtender) Extend(p thin.Pool, data, meta int64) (time.Duration, error) {
	_, dataNow := p.DataBytes()
	_, metaNow := p.MetaBytes()
	dataFile, metaFile := l.data, ""
	if data <= dataNow {
		dataFile = "" // the pool keeps its length, aligned to its blocks or not
	}
	if meta > metaNow {
		if l.meta == "" {
			return 0, fmt.Errorf("guard: pool %s: the engine reports no metadata loop file", l.pool)
		}
		metaFile = l.meta
	}
	r, err := thin.GrowLoopPool(l.c, l.pool, dataFile, data, metaFile, meta)
	return r.Stall, err
}

package graphdriver

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/engine/devmeta"
)

// racyWindow: a metadata file whose modification or change time is less than this before a
// scan may change again within the same tick of the file system's coarse clock, leaving its
// times as they were: it is read at every scan until it is older.
var racyWindow = time.Second

// clock is the time racyWindow counts from (the unit tests set it).
var clock = time.Now

// provisioned is what Provisioned last read of each metadata file, and the file as it was then:
// a file is read again when its inode, length, modification time or change time differ. Each
// write of the engine (a new file renamed into place) and of dmsize (devmeta.SetSize, swapped
// in) makes a new inode with new times; an in-place write changes the times, and a second one
// in the same clock tick is caught by racyWindow. Only in memory: a new plugin reads every file
// once, so nothing a crash leaves can make it under-count.
type provisioned struct {
	mu    sync.Mutex
	files map[string]metaFile // by file name
}

// metaFile is one metadata file as it was read, and what it adds to the sum.
type metaFile struct {
	ino, size, mtime, ctime int64
	adds                    int64 // its size, 0 when the device is marked deleted
}

// sum adds up the metadata files of home among names, the entries of its metadata directory,
// open as dirfd.
func (p *provisioned) sum(home string, dirfd int, names []string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := clock()
	seen := make(map[string]metaFile, len(names))
	var total int64
	for _, name := range names {
		old, cached := p.files[name] // a name read before is a device's
		path := ""
		if !cached {
			var err error
			if path, err = devmeta.Path(home, name); err != nil {
				continue // deviceset-metadata, transaction-metadata, temp files
			}
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		f := metaFile{ino: int64(st.Ino), size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
		if cached && old.ino == f.ino && old.size == f.size && old.mtime == f.mtime && old.ctime == f.ctime {
			seen[name] = old
			total += old.adds
			continue
		}
		if path == "" {
			path, _ = devmeta.Path(home, name)
		}
		// Read after the stat: a change in between shows as a new stat next time.
		d, err := readDevice(path)
		if err != nil {
			continue // replaced or removed meanwhile, or malformed: not counted, read again
		}
		if !d.Deleted {
			f.adds = d.Size
		}
		total += f.adds
		if settled := now.Add(-racyWindow).UnixNano(); f.mtime < settled && f.ctime < settled {
			seen[name] = f
		}
	}
	p.files = seen
	return total
}

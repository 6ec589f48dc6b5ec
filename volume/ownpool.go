package volume

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/internal/atomicfile"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/loop"
	"github.com/dmsize/dmsize/kernel/thin"
	"github.com/dmsize/dmsize/size"
)

// PoolName is the device-mapper name of the volume pool.
const PoolName = "dmsize-vpool"

// blockSectors is the pool's data block size: 64 KiB, as the engine's loop pool has.
const blockSectors = 128

// OwnPool is the volume pool: a thin pool on two sparse files under Config.Dir/pool, made and
// owned by dmsize. New blocks are zeroed (a volume never reads another's old data).
type OwnPool struct {
	ctl      poolControl
	dir      string
	dataSize int64
	pool     dm.Dev
	DataFile string
	MetaFile string
}

var (
	_ Pool          = (*OwnPool)(nil)
	_ Transactional = (*OwnPool)(nil)
)

// poolControl is the part of *dm.Control the volume pool uses (the unit tests' fake kernel
// stands in for it).
type poolControl interface {
	thin.Mapper
	Create(name, uuid string) (dm.Dev, error)
	Remove(name string, deferred bool) error
	OwnPoolMessage(pool string, m dm.PoolMsg) error
}

var _ poolControl = (*dm.Control)(nil)

// attachLoop is loop.Attach (the unit tests attach no loop device).
var attachLoop = loop.Attach

// OpenPool finds the volume pool, or assembles it from its files, creating them on first use.
// Each step is safe to repeat: a crash leaves files (whole, kept; a temp file or an empty one:
// made again), loop devices (autoclear: gone with the process) or a pool device without a
// table (removed and made again).
func OpenPool(ctl *dm.Control, dir string, dataSize int64) (*OwnPool, error) {
	return openOwnPool(ctl, dir, dataSize)
}

func openOwnPool(ctl poolControl, dir string, dataSize int64) (*OwnPool, error) {
	p := &OwnPool{ctl: ctl, dir: filepath.Join(dir, "pool"), dataSize: dataSize}
	p.DataFile, p.MetaFile = filepath.Join(p.dir, "data"), filepath.Join(p.dir, "metadata")
	info, err := ctl.Info(PoolName)
	switch {
	case err == nil && info.LiveTable:
		if len(info.UUID) < len(dm.OwnPoolUUIDPrefix) || info.UUID[:len(dm.OwnPoolUUIDPrefix)] != dm.OwnPoolUUIDPrefix {
			return nil, fmt.Errorf("volume pool: a device named %s exists that dmsize did not make (uuid %q)", PoolName, info.UUID)
		}
		p.pool = info.Dev
		return p, nil
	case err == nil:
		// Made, never loaded: a crash in assemble.
		if err := ctl.Remove(PoolName, false); err != nil {
			return nil, fmt.Errorf("volume pool: removing a half-made %s: %w", PoolName, err)
		}
	case !errors.Is(err, dm.ErrNotFound):
		return nil, err
	}
	if err := p.assemble(); err != nil {
		return nil, fmt.Errorf("volume pool: %w", err)
	}
	return p, nil
}

// metaSize is the metadata file's size for a pool of data bytes: twice what the kernel's
// guide asks (48 bytes per data block), at least 16 MiB (the guard grows it as it grows data).
func metaSize(data int64) int64 {
	return max(16<<20, 2*48*(data/(blockSectors*size.Sector))) &^ 4095
}

func (p *OwnPool) assemble() error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	data, err := sparse(p.DataFile, p.dataSize)
	if err != nil {
		return err
	}
	// The metadata file is zero at creation (a sparse file reads zeros), which is what a new
	// pool needs; one that exists is never zeroed.
	if _, err := sparse(p.MetaFile, metaSize(data)); err != nil {
		return err
	}
	metaDev, metaF, err := attachLoop(p.MetaFile)
	if err != nil {
		return err
	}
	defer metaF.Close()
	dataDev, dataF, err := attachLoop(p.DataFile)
	if err != nil {
		return err
	}
	defer dataF.Close()
	var id [8]byte
	rand.Read(id[:])
	dev, err := p.ctl.Create(PoolName, dm.OwnPoolUUIDPrefix+hex.EncodeToString(id[:]))
	if err != nil {
		return err
	}
	t := dm.PoolTable{MetaDev: metaDev, DataDev: dataDev, DataBlockSectors: blockSectors, LowWaterBlocks: 0}
	err = p.ctl.Load(PoolName, []dm.Target{{Start: 0, Length: uint64(data) / size.Sector, Type: "thin-pool", Params: t.String()}})
	if err == nil {
		err = p.ctl.Resume(PoolName)
	}
	if err != nil {
		p.ctl.Remove(PoolName, false)
		return err
	}
	p.pool = dev
	return nil
}

// sparse creates file path of size bytes (sparse) if it does not exist, and returns its size.
// It is made under a temp name, sized, synced and renamed into place, the directory synced
// after: a crash leaves it whole or absent (the temp file is made again). An empty file is
// one a crash left (an older dmsize made it in place, created then truncated): made again.
func sparse(path string, bytes int64) (int64, error) {
	fi, err := os.Stat(path)
	if err == nil && fi.Size() > 0 {
		return fi.Size(), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	err = f.Truncate(bytes)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return bytes, atomicfile.SyncDir(filepath.Dir(path))
}

// TransactionID reads the pool's status.
func (p *OwnPool) TransactionID() (uint64, error) {
	st, err := thin.ReadPool(p.ctl, PoolName)
	if err != nil {
		return 0, err
	}
	if st.Status.Fail || st.Status.NeedsCheck {
		return 0, fmt.Errorf("volume pool %s has failed or needs a check (thin_check): dmsize changes nothing in it", PoolName)
	}
	return st.Status.TransactionID, nil
}

func (p *OwnPool) message(m dm.PoolMsg, err error) error {
	if err != nil {
		return err
	}
	return p.ctl.OwnPoolMessage(PoolName, m)
}

// CreateThin sends create_thin.
func (p *OwnPool) CreateThin(r Record) error {
	err := p.message(dm.CreateThin(r.ThinID))
	if errors.Is(err, unix.EEXIST) {
		return ErrExists
	}
	return err
}

// DeleteThin sends delete; ENODATA (no such id) is success.
func (p *OwnPool) DeleteThin(r Record) error {
	id := r.ThinID
	err := p.message(dm.DeleteThin(id))
	switch {
	case errors.Is(err, unix.ENODATA):
		return nil
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("thin %d: %w", id, ErrBusy)
	}
	return err
}

// DataBytes is the pool's data size now.
func (p *OwnPool) DataBytes() (int64, error) { return poolDataBytes(p.ctl, PoolName) }

// poolDataBytes is thin pool name's data size now, for either kind of volume pool.
func poolDataBytes(c thin.Mapper, name string) (int64, error) {
	st, err := thin.ReadPool(c, name)
	if err != nil {
		return 0, err
	}
	_, total := st.DataBytes()
	return total, nil
}

// DataBytes is 0 for a pool not made yet.
func (l *LazyPool) DataBytes() (int64, error) {
	if p, _ := l.get(false); p != nil {
		return p.DataBytes()
	}
	return 0, nil
}

// SetTransactionID sends set_transaction_id.
func (p *OwnPool) SetTransactionID(old, new uint64) error {
	return p.ctl.OwnPoolMessage(PoolName, dm.SetTransactionID(old, new))
}

// Activate makes r's thin device active at r.Size, growing it if it is smaller; one that is
// larger (a grow whose filesystem step has not run yet) is left as it is.
func (p *OwnPool) Activate(r Record) (string, error) {
	name := r.Device()
	info, err := p.ctl.Info(name)
	switch {
	case err == nil && info.LiveTable:
		_, sectors, err := thin.CheckDevice(p.ctl, name, p.pool)
		if err == nil && int64(sectors)*size.Sector < r.Size {
			_, err = thin.GrowDevice(p.ctl, name, p.pool, r.Size)
		}
		if err != nil {
			return "", err
		}
		return dm.Node(name), nil
	case errors.Is(err, dm.ErrNotFound):
		if _, err := p.ctl.Create(name, "DMSIZE-VOL-"+strconv.FormatUint(uint64(r.ThinID), 10)); err != nil {
			return "", err
		}
	case err != nil:
		return "", err
	}
	t := dm.ThinTable{PoolDev: p.pool.String(), DevID: uint64(r.ThinID)}
	err = p.ctl.Load(name, []dm.Target{{Start: 0, Length: uint64(r.Size) / size.Sector, Type: "thin", Params: t.String()}})
	if err == nil {
		err = p.ctl.Resume(name)
	}
	if err != nil {
		p.ctl.Remove(name, false)
		return "", err
	}
	return dm.Node(name), nil
}

// Node is r's device node.
func (p *OwnPool) Node(r Record) string { return dm.Node(r.Device()) }

// Node is r's device node.
func (l *LazyPool) Node(r Record) string { return dm.Node(r.Device()) }

// Deactivate removes r's device.
func (p *OwnPool) Deactivate(r Record) error {
	err := p.ctl.Remove(r.Device(), false)
	switch {
	case err == nil, errors.Is(err, dm.ErrNotFound):
		return nil
	case errors.Is(err, unix.EBUSY):
		return ErrBusy
	}
	return err
}

// LazyPool is the volume pool, assembled at its first use: a plugin that never makes a volume
// creates no file, no loop device and no device-mapper device.
type LazyPool struct {
	mu   sync.Mutex
	p    *OwnPool
	open func() (*OwnPool, error)
}

var (
	_ Pool          = (*LazyPool)(nil)
	_ Transactional = (*LazyPool)(nil)
	_ Sized         = (*LazyPool)(nil)
)

// NewLazyPool opens the volume pool at once if it was ever made (its data file or its device
// exists), else at the first create.
func NewLazyPool(ctl *dm.Control, dir string, dataSize int64) (*LazyPool, error) {
	return newLazyOwnPool(ctl, dir, dataSize)
}

func newLazyOwnPool(ctl poolControl, dir string, dataSize int64) (*LazyPool, error) {
	l := &LazyPool{open: func() (*OwnPool, error) { return openOwnPool(ctl, dir, dataSize) }}
	_, statErr := os.Stat(filepath.Join(dir, "pool", "data"))
	_, infoErr := ctl.Info(PoolName)
	if statErr == nil || infoErr == nil {
		if _, err := l.get(true); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// get returns the pool, assembling it if need; nil if it is not made and not needed.
func (l *LazyPool) get(need bool) (*OwnPool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p != nil || !need {
		return l.p, nil
	}
	p, err := l.open()
	if err != nil {
		return nil, err
	}
	l.p = p
	return p, nil
}

// Pool is the assembled pool, or nil.
func (l *LazyPool) Pool() *OwnPool { p, _ := l.get(false); return p }

// TransactionID is 0 for a pool not made yet: what a new pool starts at.
func (l *LazyPool) TransactionID() (uint64, error) {
	if p, _ := l.get(false); p != nil {
		return p.TransactionID()
	}
	return 0, nil
}

func (l *LazyPool) CreateThin(r Record) error {
	p, err := l.get(true)
	if err != nil {
		return err
	}
	return p.CreateThin(r)
}

func (l *LazyPool) SetTransactionID(old, new uint64) error {
	p, err := l.get(true)
	if err != nil {
		return err
	}
	return p.SetTransactionID(old, new)
}

func (l *LazyPool) Activate(r Record) (string, error) {
	p, err := l.get(true)
	if err != nil {
		return "", err
	}
	return p.Activate(r)
}

// DeleteThin and Deactivate have nothing to do in a pool not made yet.
func (l *LazyPool) DeleteThin(r Record) error {
	if p, _ := l.get(false); p != nil {
		return p.DeleteThin(r)
	}
	return nil
}

func (l *LazyPool) Deactivate(r Record) error {
	if p, _ := l.get(false); p != nil {
		return p.Deactivate(r)
	}
	return nil
}

package volume

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dmsize/dmsize/internal/atomicfile"
)

// State is where a volume is in its life. A record is written before each step that changes
// the pool or a device, so that the next start knows what a crash interrupted.
type State string

const (
	// Creating: the thin id is reserved in the record; the pool may or may not have it yet,
	// and if it has it, the device is the create's only if Made says so. Start-up rolls it
	// back: a create dockerd got no answer to is not a volume.
	Creating State = "creating"
	// Ready: the thin device exists with a filesystem of the record's Size; GrowTo, if set, is
	// a grow not done yet (start-up and the grow asked again finish it). A record written
	// before GrowTo existed may say a Size its device does not have yet: start-up grows it.
	Ready State = "ready"
	// Removing: the removal was decided; start-up completes it.
	Removing State = "removing"
)

// Record is dmsize's account of one volume.
type Record struct {
	Name    string    `json:"name"`
	Pool    string    `json:"pool,omitempty"` // the LVM thin pool VG/LV (VOLUME_POOL); "": dmsize's own
	ThinID  uint32    `json:"thin_id"`
	Size    int64     `json:"size"` // bytes: the device has at least this, the filesystem this
	FS      string    `json:"fs"`
	State   State     `json:"state"`
	Txn     uint64    `json:"txn"`              // the pool transaction id the step in flight moves to
	Mounts  []string  `json:"mounts,omitempty"` // the engine's mount IDs using the volume
	Created time.Time `json:"created"`
	// Made (Creating only): the thin device at ThinID is this create's, made by it; rolling
	// the create back deletes it. Until it is set, a device with that id is not the create's
	// to delete: the pool may have had it before (an id no record names).
	Made bool `json:"made,omitempty"`
	// GrowTo (Ready only): the size a grow in progress, interrupted or failed aims at; Size is
	// still what the device and the filesystem are known to have, and what activation asks.
	GrowTo int64 `json:"grow_to,omitempty"`
}

// Device is the volume's device-mapper name in dmsize's own pool, and its LV name in an LVM
// pool.
func (r Record) Device() string { return fmt.Sprintf("dmsize-vol-%d", r.ThinID) }

// records keeps one JSON file per volume in dir/records, and the pool's committed
// transaction id in dir/pool.json, each written atomically.
type records struct{ dir string }

func (s records) recordDir() string { return filepath.Join(s.dir, "records") }

func (s records) path(name string) string { return filepath.Join(s.recordDir(), name+".json") }

func (s records) put(r Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.recordDir(), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(s.path(r.Name), append(b, '\n'), 0o600)
}

func (s records) delete(name string) error {
	err := os.Remove(s.path(name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("volume %s: removing its record: %w", name, err)
	}
	return atomicfile.SyncDir(s.recordDir())
}

// load reads every record. An unreadable one is an error: its thin id must not be given out.
func (s records) load() (map[string]Record, error) {
	ents, err := os.ReadDir(s.recordDir())
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Record{}, nil // nothing made yet: nothing is written until a create
	}
	if err != nil {
		return nil, err
	}
	out := map[string]Record{}
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.recordDir(), n))
		if err != nil {
			return nil, err
		}
		var r Record
		if err := json.Unmarshal(b, &r); err != nil || r.Name+".json" != n {
			return nil, fmt.Errorf("volume record %s: unreadable (%v): move it away once the volume is accounted for", filepath.Join(s.recordDir(), n), err)
		}
		out[r.Name] = r
	}
	return out, nil
}

// poolFile holds the pool's transaction id as dmsize last committed it.
const poolFile = "pool.json"

type poolRecord struct {
	TransactionID uint64 `json:"transaction_id"`
}

func (s records) putPool(p poolRecord) error {
	b, _ := json.Marshal(p)
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.dir, poolFile), append(b, '\n'), 0o600)
}

func (s records) loadPool() (poolRecord, bool, error) {
	var p poolRecord
	b, err := os.ReadFile(filepath.Join(s.dir, poolFile))
	if errors.Is(err, os.ErrNotExist) {
		return p, false, nil
	}
	if err != nil {
		return p, false, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, false, fmt.Errorf("%s: %w", filepath.Join(s.dir, poolFile), err)
	}
	return p, true, nil
}

// sortedNames lists the records' names in order.
func sortedNames(m map[string]Record) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

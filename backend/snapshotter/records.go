package snapshotter

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// containerd's records, read from copies (copyDir.view). Layouts as containerd 1.7 and 2.x write
// them (docs/research/containerd-devmapper-snapshotter.md):
//
//   - containerd's metadata, <containerd root>/io.containerd.metadata.v1.bolt/meta.db:
//     v1/<namespace>/snapshots/<snapshotter>/<key>/name = the snapshotter's own key;
//   - the snapshotter's metadata, <root_path>/metadata.db: v1/snapshots/<its key>/id = the
//     snapshot's id (uvarint), and the device is <pool_name>-snap-<id>;
//   - the pool's devices, <root_path>/<pool_name>.db: devices/<device name> = DeviceInfo (JSON).

// MetaDB is containerd's metadata database under its root directory.
func MetaDB(containerdRoot string) string {
	return filepath.Join(containerdRoot, "io.containerd.metadata.v1.bolt", "meta.db")
}

// DeviceState is containerd's state of a snapshot device (a JSON number in its records).
type DeviceState int

// The states dmsize tells apart; containerd has more (creating, suspending, ...).
const (
	Activated   DeviceState = 4
	Deactivated DeviceState = 10
	Removed     DeviceState = 12
	Faulty      DeviceState = 13
)

// DeviceInfo is containerd's record of one thin device of its pool.
type DeviceInfo struct {
	DeviceID   uint32      `json:"device_id"`
	Size       uint64      `json:"size"` // what containerd activates it at
	Name       string      `json:"name"`
	ParentName string      `json:"parent_name"`
	State      DeviceState `json:"state"`
	Error      string      `json:"error"`
}

// bucket walks a path of nested buckets; nil if one is missing.
func bucket(tx *bolt.Tx, path ...string) *bolt.Bucket {
	b := tx.Bucket([]byte(path[0]))
	for _, p := range path[1:] {
		if b == nil {
			return nil
		}
		b = b.Bucket([]byte(p))
	}
	return b
}

// Records reads containerd's records of one devmapper snapshotter.
type Records struct {
	MetaDB      string  // containerd's metadata database (MetaDB)
	Root        string  // the snapshotter's root_path, as dmsize sees it
	Pool        string  // its pool_name
	Namespace   string  // "moby" for dockerd
	Snapshotter string  // the snapshotter's name in containerd: "devmapper"
	copies      copyDir // where the databases are copied to (pluginCopies, syncCopies)
}

// Device is the name of the thin device of the snapshot key (a container ID for dockerd); ""
// and no error when containerd has no such snapshot.
func (r Records) Device(key string) (string, error) {
	var backendKey string
	err := r.copies.view(r.MetaDB, func(tx *bolt.Tx) error {
		if b := bucket(tx, "v1", r.Namespace, "snapshots", r.Snapshotter, key); b != nil {
			backendKey = string(b.Get([]byte("name")))
		}
		return nil
	})
	if err != nil || backendKey == "" {
		return "", err
	}
	var id uint64
	err = r.copies.view(filepath.Join(r.Root, "metadata.db"), func(tx *bolt.Tx) error {
		b := bucket(tx, "v1", "snapshots", backendKey)
		if b == nil {
			return nil
		}
		v := b.Get([]byte("id"))
		n := 0
		if id, n = binary.Uvarint(v); n <= 0 {
			return fmt.Errorf("snapshot %q: unreadable id %x", backendKey, v)
		}
		return nil
	})
	if err != nil || id == 0 {
		return "", err
	}
	return fmt.Sprintf("%s-snap-%d", r.Pool, id), nil
}

// PoolDB is the pool's device database.
func (r Records) PoolDB() string { return filepath.Join(r.Root, r.Pool+".db") }

// Devices reads every device record of the pool.
func (r Records) Devices() (map[string]DeviceInfo, error) {
	out := map[string]DeviceInfo{}
	err := r.copies.view(r.PoolDB(), func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("devices"))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var d DeviceInfo
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("device record %q: %w", k, err)
			}
			out[string(k)] = d
			return nil
		})
	})
	return out, err
}

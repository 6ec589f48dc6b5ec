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
	dev, _, err := r.snapshot(key)
	return dev, err
}

// snapshot is Device, and the snapshotter's own key of the snapshot (<namespace>/<n>/<key>):
// what dmsize records its sizes against, since containerd never gives it to another snapshot,
// not even after its state was reset (it ends with the container's ID).
func (r Records) snapshot(key string) (device, snapshot string, err error) {
	err = r.copies.view(r.MetaDB, func(tx *bolt.Tx) error {
		if b := bucket(tx, "v1", r.Namespace, "snapshots", r.Snapshotter, key); b != nil {
			snapshot = string(b.Get([]byte("name")))
		}
		return nil
	})
	if err != nil || snapshot == "" {
		return "", "", err
	}
	var id uint64
	err = r.copies.view(r.snapshotsDB(), func(tx *bolt.Tx) error {
		b := bucket(tx, "v1", "snapshots", snapshot)
		if b == nil {
			return nil
		}
		v := b.Get([]byte("id"))
		n := 0
		if id, n = binary.Uvarint(v); n <= 0 {
			return fmt.Errorf("snapshot %q: unreadable id %x", snapshot, v)
		}
		return nil
	})
	if err != nil || id == 0 {
		return "", "", err
	}
	return r.device(id), snapshot, nil
}

// snapshots maps each device of the pool that has a snapshot to the snapshotter's key of it.
func (r Records) snapshots() (map[string]string, error) {
	out := map[string]string{}
	err := r.copies.view(r.snapshotsDB(), func(tx *bolt.Tx) error {
		b := bucket(tx, "v1", "snapshots")
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if v != nil {
				return nil // a value, not a snapshot's bucket
			}
			if id, n := binary.Uvarint(b.Bucket(k).Get([]byte("id"))); n > 0 && id > 0 {
				out[r.device(id)] = string(k)
			}
			return nil // an unreadable id proves nothing
		})
	})
	return out, err
}

// snapshotsDB is the snapshotter's metadata.
func (r Records) snapshotsDB() string { return filepath.Join(r.Root, "metadata.db") }

// device is the name of the pool's device of snapshot id.
func (r Records) device(id uint64) string { return fmt.Sprintf("%s-snap-%d", r.Pool, id) }

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

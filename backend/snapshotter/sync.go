package snapshotter

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Sync writes the sizes dmsize gave snapshot devices into containerd's own records, so that
// containerd itself re-creates them at those sizes after a reboot, plugin or no plugin. It is
// the host hook run just before containerd starts (dmsize containerd-sync, a systemd
// ExecStartPre): containerd holds its pool database locked while it runs, so Sync can only
// write it while containerd is stopped, and a containerd starting meanwhile waits for Sync's
// one transaction. A size is only ever raised, and only on the device of the same name, thin
// id and snapshot (its key in the snapshotter's metadata.db, read from a copy: containerd may
// start meanwhile); every other field of containerd's record is kept as it is.

// ErrContainerdRunning is Sync finding the pool database locked.
var ErrContainerdRunning = errors.New("containerd holds its pool database (it is running): containerd-sync runs before containerd starts")

// Synced is what one Sync did to one device.
type Synced struct {
	Device   string
	From, To int64  // containerd's size before and after (equal when skipped)
	Skipped  string // why not, or ""
}

// Sync raises the sizes in the pool database under the snapshotter's root (root_path) to those
// dmsize recorded under stateDir, waiting at most timeout for the database's lock.
func Sync(root, stateDir string, timeout time.Duration) (pool string, out []Synced, err error) {
	pool, err = poolName(root)
	if err != nil {
		return "", nil, err
	}
	// What a killed run left; a directory that cannot be cleared fails the copies themselves.
	syncCopies(stateDir).clear()
	sizes, errs := sizeStore{SizesDir(stateDir)}.all()
	if len(errs) > 0 {
		return pool, nil, errors.Join(errs...)
	}
	r := Records{Root: root, Pool: pool, copies: syncCopies(stateDir)}
	db, err := bolt.Open(r.PoolDB(), 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return pool, nil, fmt.Errorf("%s: %w", r.PoolDB(), ErrContainerdRunning)
	}
	if err != nil {
		return pool, nil, err
	}
	defer db.Close()
	snapshots, err := r.snapshots()
	if err != nil {
		return pool, nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		out = nil
		b := tx.Bucket([]byte("devices"))
		for _, s := range sizes {
			if s.Pool != pool {
				continue
			}
			res := Synced{Device: s.Device}
			var raw []byte
			if b != nil {
				raw = b.Get([]byte(s.Device))
			}
			var d DeviceInfo
			var fields map[string]json.RawMessage
			if raw != nil {
				if err := json.Unmarshal(raw, &d); err != nil {
					return fmt.Errorf("containerd's record of %s: %w", s.Device, err)
				}
				if err := json.Unmarshal(raw, &fields); err != nil {
					return fmt.Errorf("containerd's record of %s: %w", s.Device, err)
				}
			}
			res.From, res.To = int64(d.Size), int64(d.Size)
			switch why := unproven(s, d, raw != nil, snapshots[s.Device]); {
			case why != "":
				res.Skipped = why
			case int64(d.Size) >= s.Size:
				res.Skipped = "already at its size"
			default:
				fields["size"] = json.RawMessage(fmt.Sprint(s.Size))
				v, err := json.Marshal(fields)
				if err != nil {
					return err
				}
				if err := b.Put([]byte(s.Device), v); err != nil {
					return err
				}
				res.To = s.Size
			}
			out = append(out, res)
		}
		return nil
	})
	return pool, out, err
}

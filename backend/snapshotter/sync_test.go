package snapshotter

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestSync(t *testing.T) {
	root, state := filepath.Join(t.TempDir(), "root"), t.TempDir()
	if err := mkdir(root); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "pool.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	// containerd's records as it writes them, with a field of a later version kept as is.
	for name, rec := range map[string]string{
		"pool-snap-7": `{"device_id":4,"size":10737418240,"name":"pool-snap-7","parent_name":"pool-snap-6","state":4,"error":"","future":{"x":1}}`,
		"pool-snap-8": `{"device_id":5,"size":10737418240,"name":"pool-snap-8","parent_name":"pool-snap-6","state":4,"error":""}`,
		"pool-snap-9": `{"device_id":9,"size":10737418240,"name":"pool-snap-9","parent_name":"pool-snap-6","state":4,"error":""}`,
	} {
		put(t, db, []byte(rec), "devices", name)
	}
	snaps := openDB(t, filepath.Join(root, "metadata.db"))
	for id, key := range map[uint64]string{7: "moby/7/c7", 8: "moby/8/c8", 9: "moby/9/c9"} {
		put(t, snaps, binary.AppendUvarint(nil, id), "v1", "snapshots", key, "id")
	}
	snaps.Close()
	sizes := sizeStore{SizesDir(state)}
	for _, s := range []Size{
		{Device: "pool-snap-7", Pool: "pool", ThinID: 4, Size: 24 << 30, Snapshot: "moby/7/c7"}, // raised
		{Device: "pool-snap-8", Pool: "pool", ThinID: 6, Size: 24 << 30, Snapshot: "moby/8/c8"}, // another thin id: left
		{Device: "pool-snap-9", Pool: "pool", ThinID: 9, Size: 5 << 30, Snapshot: "moby/9/c9"},  // never lowered
		{Device: "pool-snap-3", Pool: "pool", ThinID: 2, Size: 24 << 30, Snapshot: "moby/3/c3"}, // removed
		{Device: "other-snap-7", Pool: "other", ThinID: 4, Size: 24 << 30, Snapshot: "moby/7/c7"},
	} {
		if err := sizes.raise(s); err != nil {
			t.Fatal(err)
		}
	}

	// containerd running: its lock is held; Sync changes nothing.
	if _, _, err := Sync(root, state, 100*time.Millisecond); !errors.Is(err, ErrContainerdRunning) {
		t.Fatalf("Sync while the database is locked: %v, want ErrContainerdRunning", err)
	}
	db.Close()

	pool, out, err := Sync(root, state, time.Second)
	if err != nil || pool != "pool" {
		t.Fatalf("Sync: %q %v", pool, err)
	}
	got := map[string]Synced{}
	for _, s := range out {
		got[s.Device] = s
	}
	if s := got["pool-snap-7"]; s.Skipped != "" || s.From != 10<<30 || s.To != 24<<30 {
		t.Errorf("pool-snap-7: %+v, want raised from 10 to 24 GiB", s)
	}
	if s := got["pool-snap-8"]; !strings.Contains(s.Skipped, "thin id") || s.To != 10<<30 {
		t.Errorf("pool-snap-8: %+v, want skipped for its thin id", s)
	}
	if s := got["pool-snap-9"]; s.Skipped == "" || s.To != 10<<30 {
		t.Errorf("pool-snap-9: %+v, want left at 10 GiB", s)
	}
	if s := got["pool-snap-3"]; !strings.Contains(s.Skipped, "no record") {
		t.Errorf("pool-snap-3: %+v, want skipped as removed", s)
	}
	if _, ok := got["other-snap-7"]; ok || len(out) != 4 {
		t.Errorf("Sync touched %d devices (%+v), want the 4 of its pool", len(out), out)
	}

	devs, err := Records{Root: root, Pool: "pool"}.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if d := devs["pool-snap-7"]; d.Size != 24<<30 || d.DeviceID != 4 || d.State != Activated || d.ParentName != "pool-snap-6" {
		t.Errorf("pool-snap-7 after Sync: %+v", d)
	}
	err = view(path, func(tx *bolt.Tx) error {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(tx.Bucket([]byte("devices")).Get([]byte("pool-snap-7")), &m); err != nil {
			return err
		}
		if string(m["future"]) != `{"x":1}` {
			t.Errorf("a field dmsize does not know was not kept: %s", m["future"])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Again: nothing left to do.
	_, out, err = Sync(root, state, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range out {
		if s.Skipped == "" || s.From != s.To {
			t.Errorf("second Sync changed %+v", s)
		}
	}
}

package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// containerd-sync on the host: raises containerd's record, says what it did; refuses, exit 1,
// while containerd holds the database.
func TestContainerdSync(t *testing.T) {
	root, state := t.TempDir(), t.TempDir()
	db, err := bolt.Open(filepath.Join(root, "pool.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("devices"))
		if err != nil {
			return err
		}
		return b.Put([]byte("pool-snap-7"), []byte(`{"device_id":4,"size":10737418240,"name":"pool-snap-7","parent_name":"pool-snap-6","state":4,"error":""}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	// The snapshotter's own records: snapshot 7 is moby's moby/7/c, which a size must name.
	snaps, err := bolt.Open(filepath.Join(root, "metadata.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = snaps.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucket([]byte("v1"))
		if err != nil {
			return err
		}
		all, err := v1.CreateBucket([]byte("snapshots"))
		if err != nil {
			return err
		}
		snap, err := all.CreateBucket([]byte("moby/7/c"))
		if err != nil {
			return err
		}
		return snap.Put([]byte("id"), binary.AppendUvarint(nil, 7))
	})
	if err != nil {
		t.Fatal(err)
	}
	snaps.Close()
	if err := os.MkdirAll(filepath.Join(state, "snapshotter"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "snapshotter", "pool-snap-7.json"), []byte(`{"device":"pool-snap-7","pool":"pool","thin_id":4,"size":25769803776,"snapshot":"moby/7/c"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := dmsize(t, nil, "", "containerd-sync", "--root", root, "--state", state, "--wait", "100ms")
	r.check(t, exitRefused)
	if !strings.Contains(r.stderr, "containerd holds its pool database") {
		t.Errorf("while locked: %q", r.stderr)
	}
	db.Close()
	r = dmsize(t, nil, "", "containerd-sync", "--root", root, "--state", state)
	r.check(t, exitOK)
	for _, want := range []string{"pool-snap-7", "10GiB", "-> 24GiB", "pool pool: 1 of 1 sized devices raised"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("containerd-sync output lacks %q:\n%s", want, r.stdout)
		}
	}
}

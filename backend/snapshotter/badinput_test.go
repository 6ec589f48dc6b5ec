package snapshotter

import (
	"encoding/binary"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/dmsize/dmsize/internal/badinput"
)

// TestBadInputRecords: containerd's records as dmsize reads them, malformed: 1,500 sets of the
// three databases whose values are not what containerd writes (snapshot names, varint ids,
// device records' JSON), then 1,500 copies of the pool's database with bytes flipped in its
// data pages. Reading them answers a device of the pool, nothing, or an error: never a panic.
func TestBadInputRecords(t *testing.T) {
	const sets, flips = 1500, 1500
	names := badinput.Strings([]string{"moby/12/cid", "", "moby/12/cid\x00", "../../x"}, sets)
	ids := badinput.Strings([]string{string(binary.AppendUvarint(nil, 7)), "", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "\x00"}, sets)
	devs := badinput.Strings([]string{`{"device_id":4,"size":10737418240,"name":"pool-snap-7","parent_name":"pool-snap-6","state":2}`,
		`{"device_id":-1}`, `{"size":"big"}`, `null`, ``, `[]`}, sets)
	device := regexp.MustCompile(`^pool-snap-[1-9][0-9]*$`)
	found, failed := 0, 0
	base := t.TempDir()
	for i := 0; i < sets; i++ {
		dir := filepath.Join(base, "set")
		os.RemoveAll(dir)
		r := Records{MetaDB: MetaDB(dir), Root: DefaultRoot(dir), Pool: "pool", Namespace: "moby", Snapshotter: "devmapper", copies: pluginCopies(filepath.Join(base, "copies"))}
		write(t, r.MetaDB, []byte(names[i]), "v1", "moby", "snapshots", "devmapper", "cid", "name")
		if names[i] != "" { // bolt refuses an empty bucket name; containerd never writes one
			write(t, filepath.Join(r.Root, "metadata.db"), []byte(ids[i]), "v1", "snapshots", names[i], "id")
		}
		write(t, r.PoolDB(), []byte(devs[i]), "devices", "pool-snap-7")
		dev, err := r.Device("cid")
		switch {
		case err != nil:
			failed++
		case dev != "" && !device.MatchString(dev):
			t.Fatalf("name %q id %x: device %q", names[i], ids[i], dev)
		case dev != "":
			found++
		}
		if _, err := r.Devices(); err != nil {
			failed++
		}
		if _, err := r.snapshots(); err != nil {
			failed++
		}
	}

	// A valid pool database, then copies of it with bytes flipped past its two meta pages
	// (a torn meta page is a copy taken mid-commit, retried: covered by TestViewCopyWhileCommitting).
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	orig := poolDB(t, good, 40)
	page := os.Getpagesize()
	rnd := rand.New(rand.NewSource(1))
	corrupt := 0
	for i := 0; i < flips; i++ {
		b := append([]byte(nil), orig...)
		for k := 1 + rnd.Intn(4); k > 0; k-- {
			at := 2*page + rnd.Intn(len(b)-2*page)
			b[at] ^= byte(1 << rnd.Intn(8))
		}
		r := Records{Root: dir, Pool: "flipped", copies: pluginCopies(filepath.Join(dir, "copies"))}
		if err := os.WriteFile(r.PoolDB(), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Devices(); err != nil {
			corrupt++
		}
	}
	t.Logf("%d malformed record sets: %d found a device, %d reads failed; %d corrupted pool databases: %d reads failed", sets, found, failed, flips, corrupt)
}

// write puts value at the nested bucket path (the last element the key) in the bolt database
// at path, made if need be; unsynced, for speed.
func write(t *testing.T, path string, value []byte, keys ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put(t, db, value, keys...)
}

// TestCorruptedTreeRefused: a branch page that points at itself made bbolt's cursor loop
// forever (found by TestBadInputRecords); a child past the file made it fault. Both are now
// the read's error.
func TestCorruptedTreeRefused(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	orig := poolDB(t, good, 200)
	if err := checkTree(orig); err != nil {
		t.Fatalf("a sound database: %v", err)
	}
	page := os.Getpagesize()
	branch := 0 // the devices bucket's root, a branch page
	if err := view(good, func(tx *bolt.Tx) error {
		branch = int(tx.Bucket([]byte("devices")).Root())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint16(orig[branch*page+8:])&0x01 == 0 {
		t.Fatalf("page %d: not a branch page in a database of 200 devices", branch)
	}
	for _, c := range []struct {
		name  string
		child uint64
		want  string
	}{
		{"cycle", uint64(branch), "reached twice"},
		{"past the file", 1 << 40, "out of the file"},
	} {
		b := append([]byte(nil), orig...)
		binary.LittleEndian.PutUint64(b[branch*page+16+8:], c.child) // the first element's pgid
		r := Records{Root: dir, Pool: "bad", copies: pluginCopies(filepath.Join(dir, "copies"))}
		if err := os.WriteFile(r.PoolDB(), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Devices(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

// poolDB writes a pool database of n activated devices at path and returns its bytes.
func poolDB(t *testing.T, path string, n int) []byte {
	t.Helper()
	for i := 1; i <= n; i++ {
		b, _ := json.Marshal(DeviceInfo{DeviceID: uint32(i), Size: 10 << 30, Name: "pool-snap-" + strconv.Itoa(i), State: Activated})
		write(t, path, b, "devices", "pool-snap-"+strconv.Itoa(i))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

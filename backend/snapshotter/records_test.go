package snapshotter

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// put writes value at the nested bucket path, last element the key.
func put(t *testing.T, db *bolt.DB, value []byte, path ...string) {
	t.Helper()
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(path[0]))
		for _, p := range path[1 : len(path)-1] {
			if err != nil {
				return err
			}
			b, err = b.CreateBucketIfNotExists([]byte(p))
		}
		if err != nil {
			return err
		}
		return b.Put([]byte(path[len(path)-1]), value)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// ctrd is containerd's records as fakeContainerd laid them out, held open as containerd does.
type ctrd struct {
	Records
	dbs []*bolt.DB
}

// stop lets go of the databases, as a stopped containerd.
func (c ctrd) stop() {
	for _, db := range c.dbs {
		db.Close()
	}
}

// set replaces one of the package's seams until the test ends.
func set[T any](t *testing.T, seam *T, v T) {
	t.Helper()
	old := *seam
	*seam = v
	t.Cleanup(func() { *seam = old })
}

// fakeContainerd lays out containerd's three databases as containerd 1.7 writes them, with
// containers cid (its init layer cid-init) and cid2 on snapshots 7 (6) and 8 of pool "pool"
// (thin ids 4, 3, 5), and keeps them open and locked, as containerd does.
func fakeContainerd(t *testing.T) ctrd {
	dir := t.TempDir()
	r := Records{MetaDB: MetaDB(dir), Root: DefaultRoot(dir), Pool: "pool", Namespace: "moby", Snapshotter: "devmapper", copies: pluginCopies(t.TempDir())}
	for _, d := range []string{filepath.Dir(r.MetaDB), r.Root} {
		if err := mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	meta := openDB(t, r.MetaDB)
	put(t, meta, []byte("moby/12/cid"), "v1", "moby", "snapshots", "devmapper", "cid", "name")
	put(t, meta, []byte("moby/11/cid-init"), "v1", "moby", "snapshots", "devmapper", "cid-init", "name")
	put(t, meta, []byte("moby/13/cid2"), "v1", "moby", "snapshots", "devmapper", "cid2", "name")
	snaps := openDB(t, filepath.Join(r.Root, "metadata.db"))
	put(t, snaps, binary.AppendUvarint(nil, 7), "v1", "snapshots", "moby/12/cid", "id")
	put(t, snaps, binary.AppendUvarint(nil, 6), "v1", "snapshots", "moby/11/cid-init", "id")
	put(t, snaps, binary.AppendUvarint(nil, 8), "v1", "snapshots", "moby/13/cid2", "id")
	pool := openDB(t, r.PoolDB())
	for _, d := range []DeviceInfo{
		{DeviceID: 3, Size: 10 << 30, Name: "pool-snap-6", ParentName: "pool-snap-2", State: Deactivated},
		{DeviceID: 4, Size: 10 << 30, Name: "pool-snap-7", ParentName: "pool-snap-6", State: Activated},
		{DeviceID: 5, Size: 10 << 30, Name: "pool-snap-8", ParentName: "pool-snap-6", State: Activated},
	} {
		b, _ := json.Marshal(d)
		put(t, pool, b, "devices", d.Name)
	}
	return ctrd{r, []*bolt.DB{meta, snaps, pool}}
}

func mkdir(dir string) error { return os.MkdirAll(dir, 0o700) }

func TestRecordsDevice(t *testing.T) {
	r := fakeContainerd(t)
	for key, want := range map[string]string{"cid": "pool-snap-7", "cid-init": "pool-snap-6", "cid2": "pool-snap-8", "other": ""} {
		got, err := r.Device(key)
		if err != nil || got != want {
			t.Errorf("Device(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	devs, err := r.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if d := devs["pool-snap-7"]; len(devs) != 3 || d.DeviceID != 4 || d.Size != 10<<30 || d.State != Activated {
		t.Errorf("Devices() = %+v", devs)
	}
	if _, err := (Records{MetaDB: filepath.Join(t.TempDir(), "none.db")}).Device("cid"); err == nil {
		t.Error("Device with no database: no error")
	}
}

// A copy taken while containerd commits is never read torn: the reader sees both keys of one
// transaction or neither. The writer commits in bursts of 50 as fast as it can, then rests
// 10 ms (containerd commits far less often): copies taken in a burst tear, and a view that
// finds every copy torn gives up with errTorn, the safe answer, which a loaded machine may
// see now and then. Most views must succeed, and none may read torn.
func TestViewCopyWhileCommitting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	db := openDB(t, path)
	put(t, db, []byte("0"), "b", "x")
	put(t, db, []byte("0"), "c", "y")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := []byte(fmt.Sprint(i))
			err := db.Update(func(tx *bolt.Tx) error {
				// Some bulk, so that commits write several pages.
				for j := 0; j < 300; j++ {
					if err := tx.Bucket([]byte("b")).Put([]byte(fmt.Sprintf("pad%d-%d", i%5, j)), make([]byte, 1000+i%7)); err != nil {
						return err
					}
				}
				if err := tx.Bucket([]byte("b")).Put([]byte("x"), v); err != nil {
					return err
				}
				return tx.Bucket([]byte("c")).Put([]byte("y"), v)
			})
			if err != nil {
				t.Error(err)
				return
			}
			if i%50 == 0 {
				time.Sleep(10 * time.Millisecond) // a quiet moment after a burst
			}
		}
	}()
	gaveUp := 0
	for i := 0; i < 100; i++ {
		err := pluginCopies(t.TempDir()).view(path, func(tx *bolt.Tx) error {
			x, y := tx.Bucket([]byte("b")).Get([]byte("x")), tx.Bucket([]byte("c")).Get([]byte("y"))
			if string(x) != string(y) {
				return fmt.Errorf("torn read: x=%s y=%s", x, y)
			}
			return nil
		})
		if errors.Is(err, errTorn) {
			gaveUp++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if gaveUp > 50 {
		t.Fatalf("%d of 100 views found every copy torn", gaveUp)
	}
	t.Logf("%d of 100 views gave up (every copy torn)", gaveUp)
}

func TestSizeStore(t *testing.T) {
	s := sizeStore{filepath.Join(t.TempDir(), "sizes")}
	if _, ok, err := s.get("pool-snap-7"); ok || err != nil {
		t.Fatalf("get on an empty store: %v %v", ok, err)
	}
	if err := s.raise(Size{Device: "pool-snap-7", Pool: "pool", ThinID: 4, Size: 20 << 30}); err != nil {
		t.Fatal(err)
	}
	if err := s.raise(Size{Device: "pool-snap-7", Pool: "pool", ThinID: 4, Size: 15 << 30}); err != nil {
		t.Fatal(err)
	}
	if r, ok, err := s.get("pool-snap-7"); !ok || err != nil || r.Size != 20<<30 {
		t.Errorf("after a lower raise: %+v %v %v, want 20 GiB kept", r, ok, err)
	}
	for _, bad := range []string{"../x-snap-1", "pool-snap-", "pool", "a/b-snap-1"} {
		if err := s.raise(Size{Device: bad, Size: 1}); err == nil {
			t.Errorf("raise(%q): no error", bad)
		}
	}
	all, errs := s.all()
	if len(all) != 1 || len(errs) != 0 {
		t.Errorf("all() = %+v %v", all, errs)
	}
	if err := s.remove("pool-snap-7"); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.all(); len(all) != 0 {
		t.Errorf("after remove: %+v", all)
	}
}

func TestPoolName(t *testing.T) {
	r := fakeContainerd(t)
	if p, err := poolName(r.Root); err != nil || p != "pool" {
		t.Errorf("poolName = %q, %v", p, err)
	}
	if _, err := poolName(t.TempDir()); err == nil {
		t.Error("poolName of a root with no pool database: no error")
	}
}

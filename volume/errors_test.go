package volume

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/size"
)

// flakyPool is the fake kernel with failures its own failAt does not inject: a transaction
// id that cannot be read or set, a thin id that cannot be deleted.
type flakyPool struct {
	*fakeKernel
	tidErr, setErr, deleteErr error
}

func (p *flakyPool) TransactionID() (uint64, error) {
	if p.tidErr != nil {
		return 0, p.tidErr
	}
	return p.fakeKernel.TransactionID()
}

func (p *flakyPool) SetTransactionID(old, new uint64) error {
	if p.setErr != nil {
		return p.setErr
	}
	return p.fakeKernel.SetTransactionID(old, new)
}

func (p *flakyPool) DeleteThin(r Record) error {
	if p.deleteErr != nil {
		return p.deleteErr
	}
	return p.fakeKernel.DeleteThin(r)
}

// wantErr fails unless err says each of parts.
func wantErr(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %q", what, parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: %v, want %q", what, err, p)
		}
	}
}

// wantRefusal fails unless err is an *errs.Refusal saying each of parts.
func wantRefusal(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	var r *errs.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("%s: %v (%T), want a refusal", what, err, err)
	}
	wantErr(t, what, err, parts...)
}

// Grow refuses a shrink, a size past MAX_SIZE, an unknown volume and a volume not ready, and
// changes nothing; the same size (after rounding to 4 KiB) does nothing.
func TestGrowRefusals(t *testing.T) {
	dir, k := t.TempDir(), newKernel()
	v := open(t, dir, k, nil)
	if err := v.Create("v", map[string]string{"size": "2G"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Grow("nope", 3*G); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "volume nope") {
		t.Fatalf("grow of an unknown volume: %v", err)
	}
	before, err := v.Grow("v", G)
	wantRefusal(t, "shrink", err, "volume v is 2GiB; dmsize never shrinks a volume (asked 1GiB)")
	if before != 2*G {
		t.Fatalf("shrink: before %d", before)
	}
	_, err = v.Grow("v", 2<<40)
	wantRefusal(t, "past MAX_SIZE", err, "volume v to 2TiB: above the plugin's maximum 1TiB (MAX_SIZE)")
	if before, err := v.Grow("v", 2*G+4000); err != nil || before != 2*G {
		t.Fatalf("grow to the same size: %d %v", before, err)
	}
	check(t, v, k)
	if r, _ := v.Get("v"); r.Size != 2*G || k.active["dmsize-vol-1"] != 2*G {
		t.Fatalf("a refused grow changed the volume: record %d, device %d", r.Size, k.active["dmsize-vol-1"])
	}

	// A pool that changed behind dmsize's back: no grow.
	k.tid += 3
	v = open(t, dir, k, nil)
	_, err = v.Grow("v", 3*G)
	wantRefusal(t, "grow with the records diverged", err, "dmsize changes no volume", "transaction id is 4")
	if r, _ := v.Get("v"); r.Size != 2*G {
		t.Fatalf("record %d after a refused grow", r.Size)
	}
}

// A volume whose removal cannot complete (its device open outside Docker at the start) stays
// Removing: it is not mounted or grown, and is not created again.
func TestRemovingVolumeRefused(t *testing.T) {
	dir, k := t.TempDir(), newKernel()
	v := open(t, dir, k, nil)
	v.Create("v", nil)
	r, _ := v.Get("v")
	r.State, r.Txn = Removing, 2
	if err := v.store.put(r); err != nil {
		t.Fatal(err)
	}
	k.open["dmsize-vol-1"] = true
	log, hook := logtest.NewNullLogger()
	v, err := Open(testConfig(dir), k, k, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := v.Get("v"); r.State != Removing || !k.thins[1] {
		t.Fatalf("a removal with the device open: %+v, thins %v", r, k.thins)
	}
	if e := hook.LastEntry(); e == nil || e.Level != logrus.ErrorLevel || e.Data["volume"] != "v" || !strings.Contains(e.Message, "retried at the next start") {
		t.Fatalf("log: %+v", e)
	}
	_, err = v.Grow("v", 20*G)
	wantRefusal(t, "grow", err, "volume v is removing")
	_, err = v.Mount("v", "m")
	wantErr(t, "mount", err, "volume v is removing")
	wantErr(t, "create", v.Create("v", nil), "volume v exists (10GiB, ext4, removing)")
	delete(k.open, "dmsize-vol-1")
	v = open(t, dir, k, nil)
	if _, ok := v.Get("v"); ok || len(k.thins) != 0 {
		t.Fatalf("the next start did not complete the removal: %v", k.thins)
	}
	check(t, v, k)
}

// A pool whose transaction id moved since dmsize last committed it gets no create and no
// removal, and neither changes anything.
func TestTransactionIDMovedRefused(t *testing.T) {
	k := newKernel()
	v := open(t, t.TempDir(), k, nil)
	v.Create("a", nil)
	k.tid = 5
	wantErr(t, "create", v.Create("b", nil), "volume b: the pool's transaction id is 5, dmsize committed 1; refusing to change the pool")
	wantErr(t, "remove", v.Remove("a", nil), "volume a: the pool's transaction id is 5, dmsize committed 1; refusing to change the pool")
	if _, ok := v.Get("b"); ok || len(k.thins) != 1 || k.active["dmsize-vol-1"] == 0 {
		t.Fatalf("changed: %v %v %v", v.List(), k.thins, k.active)
	}
	if r, _ := v.Get("a"); r.State != Ready {
		t.Fatalf("a is %s", r.State)
	}
}

// A thin id the pool has though no record names it (leaked by something else) is skipped and
// left alone.
func TestCreateSkipsLeakedThinID(t *testing.T) {
	k := newKernel()
	v := open(t, t.TempDir(), k, nil)
	k.thins[1], k.thins[2] = true, true
	if err := v.Create("v", nil); err != nil {
		t.Fatal(err)
	}
	if r, _ := v.Get("v"); r.ThinID != 3 || !k.thins[1] || !k.thins[2] {
		t.Fatalf("thin id %d, pool %v", r.ThinID, k.thins)
	}
	loaded, err := v.store.load()
	if err != nil || loaded["v"].ThinID != 3 || loaded["v"].State != Ready {
		t.Fatalf("record on disk: %+v %v", loaded["v"], err)
	}
}

// Failures of the transaction id: Open cannot start without it, and a create whose id step
// fails is rolled back.
func TestTransactionIDFailures(t *testing.T) {
	dir, k := t.TempDir(), newKernel()
	p := &flakyPool{fakeKernel: k, tidErr: errors.New("no status")}
	if _, err := Open(testConfig(dir), p, k, quiet(), nil); err == nil || err.Error() != "no status" {
		t.Fatalf("Open with the pool's status unreadable: %v", err)
	}
	p.tidErr = nil
	v := openPool(t, dir, p, k, nil)
	p.setErr = errors.New("set_transaction_id refused")
	wantErr(t, "create", v.Create("v", nil), "volume v: set_transaction_id refused")
	if len(k.thins) != 0 || len(v.List()) != 0 {
		t.Fatalf("left %v %v", k.thins, v.List())
	}
	p.setErr = nil
	p.tidErr = errors.New("no status")
	wantErr(t, "create", v.Create("v", nil), "no status")
	p.tidErr = nil
	check(t, v, k)
}

// A record or pool.json that cannot be written: a create changes nothing in the pool, and
// one whose committed id cannot be recorded is settled by the next start.
func TestRecordWriteFailures(t *testing.T) {
	dir, k := t.TempDir(), newKernel()
	v := open(t, dir, k, nil)
	if err := v.Create("a", nil); err != nil {
		t.Fatal(err)
	}
	recs := filepath.Join(dir, "records")
	moved := filepath.Join(dir, "records.away")
	os.Rename(recs, moved)
	os.WriteFile(recs, nil, 0o600)
	wantErr(t, "create", v.Create("b", nil), "volume b: writing its record")
	if len(k.thins) != 1 || k.tid != 1 {
		t.Fatalf("the pool changed: %v, tid %d", k.thins, k.tid)
	}
	_, err := v.Mount("a", "m")
	wantErr(t, "mount", err, "volume a: writing its record")
	// dockerd takes the mount as failed and sends no unmount: the volume is not left mounted.
	if _, mounted := k.mounted[v.Path("a")]; mounted {
		t.Fatal("a mount whose ID could not be recorded left the volume mounted")
	}
	os.Remove(recs)
	os.Rename(moved, recs)

	// pool.json cannot be replaced: the create is rolled back, and the thin id's step is
	// recorded by the next start.
	pj := filepath.Join(dir, poolFile)
	os.Remove(pj)
	os.MkdirAll(filepath.Join(pj, "x"), 0o700)
	wantErr(t, "create", v.Create("b", nil), "volume b: atomicfile")
	if k.thins[2] {
		t.Fatal("the failed create's thin id is left")
	}
	os.RemoveAll(pj)
	os.WriteFile(pj, []byte(`{"transaction_id":1}`), 0o600)
	v = open(t, dir, k, nil)
	if _, ok := v.Get("b"); ok {
		t.Fatal("the failed create is a volume")
	}
	check(t, v, k)
	if k.tid != 2 {
		t.Fatalf("transaction id %d", k.tid)
	}
}

// Records Open cannot read stop it; files that are not records are ignored; records without
// pool.json leave the volumes refusing changes.
func TestOpenBadRecords(t *testing.T) {
	dir, k := t.TempDir(), newKernel()
	v := open(t, dir, k, nil)
	v.Create("a", nil)
	recs := filepath.Join(dir, "records")
	os.WriteFile(filepath.Join(recs, ".a.json.dmsize-123"), []byte("partial"), 0o600)
	os.WriteFile(filepath.Join(recs, "notes.txt"), []byte("x"), 0o600)
	os.Mkdir(filepath.Join(recs, "sub.json"), 0o700)
	v = open(t, dir, k, nil)
	if l := v.List(); len(l) != 1 || l[0].Name != "a" {
		t.Fatalf("records %v", l)
	}
	check(t, v, k)

	for _, c := range []struct{ file, body, want string }{
		{"b.json", "{", "b.json: unreadable (unexpected end of JSON input): move it away"},
		{"b.json", `{"name":"c"}`, "b.json: unreadable"},
	} {
		os.WriteFile(filepath.Join(recs, c.file), []byte(c.body), 0o600)
		_, err := Open(testConfig(dir), k, k, quiet(), nil)
		wantErr(t, c.file, err, c.want)
		os.Remove(filepath.Join(recs, c.file))
	}
	os.Symlink("nowhere", filepath.Join(recs, "b.json"))
	_, err := Open(testConfig(dir), k, k, quiet(), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a dangling record: %v", err)
	}
	os.Remove(filepath.Join(recs, "b.json"))

	pj := filepath.Join(dir, poolFile)
	os.WriteFile(pj, []byte("garbage"), 0o600)
	_, err = Open(testConfig(dir), k, k, quiet(), nil)
	wantErr(t, "pool.json", err, pj)
	os.Remove(pj)
	v = open(t, dir, k, nil)
	wantErr(t, "broken", v.Broken(), "1 volume records but no pool.json: the pool's transaction id 1 cannot be checked")
	wantErr(t, "create", v.Create("b", nil), "dmsize changes no volume")
	if _, err := v.Mount("a", "m"); err != nil {
		t.Fatalf("mount with the records unchecked: %v", err)
	}
}

// Failures inside a removal: nothing is removed before the intent, and after it the next
// start completes the removal.
func TestRemoveFailures(t *testing.T) {
	dir, k := t.TempDir(), newKernel()
	p := &flakyPool{fakeKernel: k}
	v := openPool(t, dir, p, k, nil)
	v.Create("v", nil)
	v.Mount("v", "m")
	wantErr(t, "remove", v.Remove("v", func(string) (bool, error) { return false, errors.New("engine away") }),
		"volume v is mounted for 1 containers, and asking the engine whether they still exist failed: engine away")
	v.Unmount("v", "m")
	k.failAt = "unmount"
	wantErr(t, "remove", v.Remove("v", nil), "volume v: injected unmount failure")
	if r, _ := v.Get("v"); r.State != Ready || k.active["dmsize-vol-1"] == 0 {
		t.Fatalf("a failed unmount removed: %+v", r)
	}
	check(t, v, k)

	p.deleteErr = errors.New("delete refused")
	wantErr(t, "remove", v.Remove("v", nil), "volume v: removing (the next start completes it): delete refused")
	if r, _ := v.Get("v"); r.State != Removing || !k.thins[1] {
		t.Fatalf("after the failed delete: %+v %v", r, k.thins)
	}
	wantErr(t, "create", v.Create("v", nil), "volume v exists (10GiB, ext4, removing)")
	p.deleteErr = nil
	v = openPool(t, dir, p, k, nil)
	if _, ok := v.Get("v"); ok || len(k.thins) != 0 {
		t.Fatalf("the start did not complete the removal: %v %v", v.List(), k.thins)
	}
	check(t, v, k)
}

// Mount and Unmount of unknown volumes, and failures in them.
func TestMountFailures(t *testing.T) {
	k := newKernel()
	log, hook := logtest.NewNullLogger()
	v, err := Open(testConfig(t.TempDir()), k, k, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Create("v", nil)
	if err := v.Unmount("nope", "m"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "volume nope") {
		t.Fatalf("unmount of an unknown volume: %v", err)
	}
	k.failAt = "activate"
	_, err = v.Mount("v", "m1")
	wantErr(t, "mount", err, "volume v: mounting: injected activate failure")
	// A mount that failed keeps no mount ID (dockerd sends no unmount for it).
	if r, _ := v.Get("v"); len(r.Mounts) != 0 {
		t.Fatalf("mount IDs %v", r.Mounts)
	}
	if err := v.Unmount("v", "m1"); err != nil {
		t.Fatal(err)
	}
	// A filesystem that will not mount.
	k.fsType["/dev/mapper/dmsize-vol-1"] = "xfs"
	_, err = v.Mount("v", "m2")
	wantErr(t, "mount", err, "volume v: mounting: mount /dev/mapper/dmsize-vol-1: no ext4 filesystem")
	k.fsType["/dev/mapper/dmsize-vol-1"] = "ext4"
	if _, err := v.Mount("v", "m2"); err != nil {
		t.Fatal(err)
	}
	// The last unmount failing is logged, not returned: dockerd could do nothing with it.
	k.failAt = "unmount"
	if err := v.Unmount("v", "m2"); err != nil {
		t.Fatal(err)
	}
	if e := hook.LastEntry(); e == nil || e.Level != logrus.WarnLevel || !strings.Contains(e.Message, "unmounting failed; the next start unmounts it") {
		t.Fatalf("log: %+v", e)
	}
	if r, _ := v.Get("v"); len(r.Mounts) != 0 {
		t.Fatalf("mount IDs %v", r.Mounts)
	}
}

// A grow that fails on its device or its filesystem names the volume and the size it keeps,
// and the next start finishes it.
func TestGrowFailures(t *testing.T) {
	for _, c := range []struct{ op, want string }{
		{"activate", "volume v: growing its device to 3GiB (the next start retries): injected activate failure; so does this grow asked again, and the volume stays 2GiB meanwhile"},
		{"growfs", "volume v: growing its filesystem (the next start retries): injected growfs failure; so does this grow asked again, and the volume stays 2GiB meanwhile"},
	} {
		t.Run(c.op, func(t *testing.T) {
			dir, k := t.TempDir(), newKernel()
			v := open(t, dir, k, nil)
			v.Create("v", map[string]string{"size": "2G"})
			v.Mount("v", "m")
			k.failAt = c.op
			before, err := v.Grow("v", 3*G)
			wantErr(t, "grow", err, c.want)
			if before != 2*G {
				t.Fatalf("before %d", before)
			}
			v = open(t, dir, k, nil)
			check(t, v, k)
			if k.fsSize["/dev/mapper/dmsize-vol-1"] != 3*G {
				t.Fatalf("the start did not finish the grow: %d", k.fsSize["/dev/mapper/dmsize-vol-1"])
			}
		})
	}
}

// At a start, a volume that cannot be brought back is logged, and mounted by its next mount.
func TestStartReadyFailures(t *testing.T) {
	for _, c := range []struct{ op, want string }{
		{"activate", "injected activate failure"},
		{"growfs", "growing its filesystem to 10GiB: injected growfs failure"},
	} {
		t.Run(c.op, func(t *testing.T) {
			dir, k := t.TempDir(), newKernel()
			v := open(t, dir, k, nil)
			v.Create("v", nil)
			v.Mount("v", "m")
			delete(k.mounted, v.Path("v")) // a reboot
			delete(k.active, "dmsize-vol-1")
			k.failAt = c.op
			log, hook := logtest.NewNullLogger()
			v, err := Open(testConfig(dir), k, k, log, nil)
			if err != nil {
				t.Fatal(err)
			}
			e := hook.LastEntry()
			if e == nil || e.Level != logrus.ErrorLevel || e.Data["volume"] != "v" || !strings.Contains(e.Data[logrus.ErrorKey].(error).Error(), c.want) {
				t.Fatalf("log: %+v", e)
			}
			if _, mounted := k.mounted[v.Path("v")]; mounted {
				t.Fatal("mounted")
			}
			if _, err := v.Mount("v", "m"); err != nil {
				t.Fatal(err)
			}
			check(t, v, k)
		})
	}
}

// The records' own error paths.
func TestRecordsErrors(t *testing.T) {
	dir := t.TempDir()
	s := records{dir: dir}
	if m, err := s.load(); err != nil || len(m) != 0 {
		t.Fatalf("load of nothing: %v %v", m, err)
	}
	if _, known, err := s.loadPool(); known || err != nil {
		t.Fatalf("loadPool of nothing: %v %v", known, err)
	}
	if err := s.put(Record{Name: "v", ThinID: 1}); err != nil {
		t.Fatal(err)
	}
	// A record that cannot be removed is named.
	os.Remove(s.path("v"))
	os.MkdirAll(filepath.Join(s.path("v"), "x"), 0o700)
	wantErr(t, "delete", s.delete("v"), "volume v: removing its record")
	if err := s.delete("absent"); err != nil {
		t.Fatalf("delete of an absent record: %v", err)
	}
	// The state directory is a file.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	f := records{dir: file}
	if err := f.put(Record{Name: "v"}); err == nil {
		t.Fatal("put under a file")
	}
	if err := f.putPool(poolRecord{TransactionID: 1}); err == nil {
		t.Fatal("putPool under a file")
	}
	if _, err := f.load(); err == nil {
		t.Fatal("load under a file")
	}
	if _, _, err := f.loadPool(); err == nil {
		t.Fatal("loadPool under a file")
	}
	if _, err := Open(testConfig(file), newKernel(), newKernel(), quiet(), nil); err == nil {
		t.Fatal("Open under a file")
	}
}

// A create rolled back (a crash right after its intent, or a failed step) removes no thin
// device it did not make: here thin id 1 is in the pool with no record (a state directory
// restored from a backup), and is the id the create reserves first.
func TestCreateRollbackKeepsDeviceNotItsOwn(t *testing.T) {
	eachPoolKind(t, func(t *testing.T, poolOf func(*fakeKernel) Pool) {
		dir, k := t.TempDir(), newKernel()
		k.thins[1] = true
		v := openPool(t, dir, poolOf(k), k, func(s string) {
			if s == StepCreateIntent {
				panic(crash(s))
			}
		})
		func() {
			defer func() { recover() }()
			v.Create("v", nil)
		}()
		v = openPool(t, dir, poolOf(k), k, nil)
		if !k.thins[1] {
			t.Fatal("the start's rollback of the create deleted thin id 1, which the create never made")
		}
		if _, ok := v.Get("v"); ok {
			t.Fatal("the interrupted create is a volume")
		}
		// A failed create step after the intent removes it neither.
		k.failAt = "create_thin"
		wantErr(t, "create", v.Create("v", nil), "injected create_thin failure")
		if !k.thins[1] {
			t.Fatal("a failed create deleted thin id 1, which it never made")
		}
		// The next create skips it, and rolls back what it made itself.
		k.failAt = "mkfs"
		wantErr(t, "create", v.Create("v", nil), "injected mkfs failure")
		if !k.thins[1] || len(k.thins) != 1 {
			t.Fatalf("after a failed mkfs: thins %v", k.thins)
		}
		if err := v.Create("v", nil); err != nil {
			t.Fatal(err)
		}
		if r, _ := v.Get("v"); r.ThinID != 2 || !k.thins[1] {
			t.Fatalf("thin id %d, pool %v", r.ThinID, k.thins)
		}
	})
}

// A grow whose device or filesystem step failed is done by the same grow asked again (it
// says grown, from the size before), not reported unchanged with the volume half grown.
func TestGrowRetriedAfterFailure(t *testing.T) {
	for _, op := range []string{"activate", "growfs"} {
		t.Run(op, func(t *testing.T) {
			k := newKernel()
			v := open(t, t.TempDir(), k, nil)
			v.Create("v", map[string]string{"size": "2G"})
			v.Mount("v", "m")
			k.failAt = op
			if _, err := v.Grow("v", 3*G); err == nil {
				t.Fatal("no error")
			}
			before, err := v.Grow("v", 3*G)
			if err != nil || before != 2*G {
				t.Fatalf("the grow repeated: before %s, %v; want before 2GiB (grown, not unchanged)", size.Format(before), err)
			}
			if d, f := k.active["dmsize-vol-1"], k.fsSize["/dev/mapper/dmsize-vol-1"]; d != 3*G || f != 3*G {
				t.Fatalf("after the grow repeated: device %s, filesystem %s", size.Format(d), size.Format(f))
			}
			check(t, v, k)
		})
	}
}

// A grow the pool refuses (lvextend: no room) leaves a volume that still mounts, before and
// after a restart, at the size it has; the grow asked again once the pool allows it does it.
func TestGrowRefusedByPoolKeepsVolumeUsable(t *testing.T) {
	eachPoolKind(t, func(t *testing.T, poolOf func(*fakeKernel) Pool) {
		dir, k := t.TempDir(), newKernel()
		v := openPool(t, dir, poolOf(k), k, nil)
		v.Create("v", map[string]string{"size": "2G"})
		if _, err := v.Mount("v", "m1"); err != nil {
			t.Fatal(err)
		}
		k.noGrow = true
		if _, err := v.Grow("v", 3*G); err == nil {
			t.Fatal("a refused grow succeeded")
		}
		if _, err := v.Mount("v", "m2"); err != nil {
			t.Fatalf("a mount after the refused grow: %v", err)
		}
		v.Unmount("v", "m1")
		v.Unmount("v", "m2")
		v = openPool(t, dir, poolOf(k), k, nil)
		if _, err := v.Mount("v", "m3"); err != nil {
			t.Fatalf("a mount after the refused grow and a restart: %v", err)
		}
		if r, _ := v.Get("v"); r.Size != 2*G {
			t.Fatalf("record size %s, want the 2GiB the volume has", size.Format(r.Size))
		}
		k.noGrow = false
		if before, err := v.Grow("v", 3*G); err != nil || before != 2*G {
			t.Fatalf("the grow asked again: before %s, %v", size.Format(before), err)
		}
		check(t, v, k)
		if k.fsSize["/dev/mapper/dmsize-vol-1"] != 3*G {
			t.Fatalf("filesystem %d", k.fsSize["/dev/mapper/dmsize-vol-1"])
		}
	})
}

// A mount that fails records no mount ID (dockerd never unmounts a mount that failed): the
// last real unmount unmounts the volume.
func TestFailedMountKeepsNoID(t *testing.T) {
	k := newKernel()
	dir := t.TempDir()
	v := open(t, dir, k, nil)
	v.Create("v", nil)
	k.failAt = "activate"
	if _, err := v.Mount("v", "failed1"); err == nil {
		t.Fatal("no error")
	}
	k.fsType["/dev/mapper/dmsize-vol-1"] = "xfs"
	if _, err := v.Mount("v", "failed2"); err == nil {
		t.Fatal("no error")
	}
	k.fsType["/dev/mapper/dmsize-vol-1"] = "ext4"
	if r, _ := v.Get("v"); len(r.Mounts) != 0 {
		t.Fatalf("mount IDs after failed mounts: %v", r.Mounts)
	}
	if _, err := v.Mount("v", "ok"); err != nil {
		t.Fatal(err)
	}
	v.Unmount("v", "ok")
	if _, mounted := k.mounted[v.Path("v")]; mounted {
		t.Fatal("the last real unmount left the volume mounted")
	}
	check(t, v, k)
}

// A create record written before records said Made (an older dmsize), cut by a crash after
// its transaction id step: the id having moved says the create made its thin device, which
// the start deletes.
func TestRollbackOldCreateRecordByTransactionID(t *testing.T) {
	dir, k := t.TempDir(), newKernel()
	v := open(t, dir, k, nil)
	v.Create("a", nil)
	if err := v.store.put(Record{Name: "b", ThinID: 2, Size: G, FS: "ext4", State: Creating, Txn: 2}); err != nil {
		t.Fatal(err)
	}
	k.thins[2], k.tid = true, 2
	v = open(t, dir, k, nil)
	if _, ok := v.Get("b"); ok || k.thins[2] {
		t.Fatalf("the interrupted create: record kept %v, thin 2 kept %v", ok, k.thins[2])
	}
	check(t, v, k)
}

// eachPoolKind runs f on the fake kernel as dmsize's own pool (transactional) and as an LVM
// pool (not).
func eachPoolKind(t *testing.T, f func(t *testing.T, poolOf func(*fakeKernel) Pool)) {
	t.Run("own", func(t *testing.T) { f(t, func(k *fakeKernel) Pool { return k }) })
	t.Run("lvm", func(t *testing.T) { f(t, func(k *fakeKernel) Pool { return lvmKernel{k} }) })
}

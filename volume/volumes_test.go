package volume

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"
)

// fakeKernel is a thin pool, its devices, the filesystems on them and the mount table: what
// outlives a SIGKILL of the plugin.
type fakeKernel struct {
	tid     uint64
	thins   map[uint32]bool
	active  map[string]int64 // device -> bytes
	open    map[string]bool  // opened outside Docker
	fsType  map[string]string
	fsSize  map[string]int64
	mounted map[string]string // dir -> device
	failAt  string            // an operation that fails once ("mkfs", "create_thin", ...)
	data    int64             // the pool's data bytes (0: not made)
	noGrow  bool              // Activate refuses to make an active device larger (lvextend refused)
}

func (k *fakeKernel) DataBytes() (int64, error) { return k.data, nil }

func newKernel() *fakeKernel {
	return &fakeKernel{thins: map[uint32]bool{}, active: map[string]int64{}, open: map[string]bool{},
		fsType: map[string]string{}, fsSize: map[string]int64{}, mounted: map[string]string{}}
}

func (k *fakeKernel) fail(op string) error {
	if k.failAt == op {
		k.failAt = ""
		return fmt.Errorf("injected %s failure", op)
	}
	return nil
}

func (k *fakeKernel) TransactionID() (uint64, error) { return k.tid, nil }
func (k *fakeKernel) CreateThin(r Record) error {
	id := r.ThinID
	if err := k.fail("create_thin"); err != nil {
		return err
	}
	if k.thins[id] {
		return ErrExists
	}
	k.thins[id] = true
	return nil
}
func (k *fakeKernel) DeleteThin(r Record) error {
	id := r.ThinID
	if k.active[Record{ThinID: id}.Device()] > 0 {
		return fmt.Errorf("thin %d: %w", id, ErrBusy)
	}
	delete(k.thins, id)
	return nil
}
func (k *fakeKernel) SetTransactionID(old, new uint64) error {
	if k.tid != old {
		return fmt.Errorf("mismatched transaction id: %d, not %d", k.tid, old)
	}
	k.tid = new
	return nil
}
func (k *fakeKernel) Activate(r Record) (string, error) {
	if err := k.fail("activate"); err != nil {
		return "", err
	}
	if !k.thins[r.ThinID] {
		return "", fmt.Errorf("thin %d: no such thin id", r.ThinID)
	}
	d := r.Device()
	if have := k.active[d]; k.noGrow && have > 0 && r.Size > have {
		return "", fmt.Errorf("growing %s from %d to %d: refused", d, have, r.Size)
	}
	k.active[d] = max(k.active[d], r.Size)
	return "/dev/mapper/" + d, nil
}
func (k *fakeKernel) Deactivate(r Record) error {
	d := r.Device()
	if k.open[d] {
		return ErrBusy
	}
	for _, dev := range k.mounted {
		if dev == "/dev/mapper/"+d {
			return ErrBusy
		}
	}
	delete(k.active, d)
	return nil
}

func (k *fakeKernel) Make(dev, fs string) error {
	if err := k.fail("mkfs"); err != nil {
		return err
	}
	k.fsType[dev], k.fsSize[dev] = fs, k.active[strings.TrimPrefix(dev, "/dev/mapper/")]
	return nil
}
func (k *fakeKernel) Mount(dev, dir, fs string) error {
	if k.fsType[dev] != fs {
		return fmt.Errorf("mount %s: no %s filesystem", dev, fs)
	}
	k.mounted[dir] = dev
	return nil
}
func (k *fakeKernel) Unmount(dir string) error {
	if err := k.fail("unmount"); err != nil {
		return err
	}
	delete(k.mounted, dir)
	return nil
}
func (k *fakeKernel) Mounted(dir string) (bool, error) { _, ok := k.mounted[dir]; return ok, nil }
func (k *fakeKernel) Grow(dev string, size int64) error {
	if err := k.fail("growfs"); err != nil {
		return err
	}
	if d := k.active[strings.TrimPrefix(dev, "/dev/mapper/")]; d < size {
		return fmt.Errorf("growfs %s to %d: the device has %d", dev, size, d)
	}
	k.fsSize[dev] = max(k.fsSize[dev], size)
	return nil
}

type crash string

const G = int64(1) << 30

// testConfig mounts the volumes under dir: ensureMounted makes the mount point's directory.
func testConfig(dir string) Config {
	return Config{Dir: dir, PoolSize: 100 * G, DefaultSize: 10 * G, DefaultFS: "ext4", MaxSize: 1 << 40, MountRoot: filepath.Join(dir, "mnt")}
}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func open(t *testing.T, dir string, k *fakeKernel, step func(string)) *Volumes {
	t.Helper()
	return openPool(t, dir, k, k, step)
}

func openPool(t *testing.T, dir string, p Pool, k *fakeKernel, step func(string)) *Volumes {
	t.Helper()
	v, err := Open(testConfig(dir), p, k, quiet(), step)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// check: every volume is ready, whole and where the records say; the pool holds nothing else.
func check(t *testing.T, v *Volumes, k *fakeKernel) {
	t.Helper()
	if err := v.Broken(); err != nil {
		t.Fatalf("broken: %v", err)
	}
	p, _, _ := v.store.loadPool()
	if k.tid != p.TransactionID || v.tid != k.tid {
		t.Fatalf("transaction ids: kernel %d, pool.json %d, in memory %d", k.tid, p.TransactionID, v.tid)
	}
	ids := map[uint32]bool{}
	for _, r := range v.List() {
		if r.State != Ready || r.GrowTo != 0 || r.Made {
			t.Fatalf("volume %s left %s (grow to %d pending, made %v)", r.Name, r.State, r.GrowTo, r.Made)
		}
		ids[r.ThinID] = true
		dev := "/dev/mapper/" + r.Device()
		if !k.thins[r.ThinID] || k.active[r.Device()] < r.Size || k.fsSize[dev] != r.Size || k.fsType[dev] != r.FS {
			t.Fatalf("volume %s (%d bytes): thin %v, device %d bytes, %s of %d bytes", r.Name, r.Size, k.thins[r.ThinID], k.active[r.Device()], k.fsType[dev], k.fsSize[dev])
		}
		_, mounted := k.mounted[v.Path(r.Name)]
		if mounted != (len(r.Mounts) > 0) {
			t.Fatalf("volume %s: mounted %v with mount IDs %v", r.Name, mounted, r.Mounts)
		}
	}
	for id := range k.thins {
		if !ids[id] {
			t.Fatalf("thin id %d in the pool, in no record", id)
		}
	}
}

func TestLifecycle(t *testing.T) {
	dir, k := t.TempDir(), newKernel()
	v := open(t, dir, k, nil)
	if err := v.Create("data", map[string]string{"size": "20G", "fs": "xfs"}); err != nil {
		t.Fatal(err)
	}
	if err := v.Create("data", nil); err != nil {
		t.Fatalf("a repeated create: %v", err)
	}
	if err := v.Create("data", map[string]string{"size": "30G"}); err == nil || !strings.Contains(err.Error(), "exists (20GiB, xfs, ready)") {
		t.Fatalf("a create with other options: %v", err)
	}
	p1, err := v.Mount("data", "m1")
	if err != nil || p1 != filepath.Join(dir, "mnt", "data") {
		t.Fatalf("%q %v", p1, err)
	}
	v.Mount("data", "m2")
	v.Mount("data", "m2") // dockerd repeats a mount ID after its restart
	if err := v.Remove("data", func(string) (bool, error) { return true, nil }); err == nil || !strings.Contains(err.Error(), "in use: mounted for 2 containers") {
		t.Fatalf("remove of a mounted volume: %v", err)
	}
	v.Unmount("data", "m1")
	if _, ok := k.mounted[p1]; !ok {
		t.Fatal("unmounted while m2 uses it")
	}
	if before, err := v.Grow("data", 25*G); err != nil || before != 20*G {
		t.Fatalf("grow: %d %v", before, err)
	}
	if _, err := v.Grow("data", 5*G); err == nil || !strings.Contains(err.Error(), "never shrinks") {
		t.Fatalf("shrink: %v", err)
	}
	v.Unmount("data", "m2")
	v.Unmount("data", "unknown")
	check(t, v, k)
	if err := v.Remove("data", nil); err != nil {
		t.Fatal(err)
	}
	if len(k.thins) != 0 || len(k.active) != 0 || len(v.List()) != 0 {
		t.Fatalf("left: %v %v %v", k.thins, k.active, v.List())
	}
	check(t, v, k)
	if k.tid != 2 {
		t.Fatalf("transaction id %d after a create and a remove", k.tid)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	k := newKernel()
	v := open(t, t.TempDir(), k, nil)
	for _, c := range []struct {
		name string
		opts map[string]string
		want string
	}{
		{"a", map[string]string{"size": "lots"}, `option size=lots: size "lots": not a size`},
		{"a", map[string]string{"fs": "btrfs"}, "option fs=btrfs: not one of ext4, xfs"},
		{"a", map[string]string{"sise": "1G"}, `unknown option "sise" (known: size, fs)`},
		{"a", map[string]string{"size": "2T"}, "above the plugin's maximum"},
		{"a", map[string]string{"size": "1M"}, "below the smallest volume"},
		{"../x", nil, "volume name"},
		{"", nil, "volume name"},
	} {
		if err := v.Create(c.name, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %v: %v, want %q", c.name, c.opts, err, c.want)
		}
	}
	for _, op := range []string{"create_thin", "activate", "mkfs"} {
		k.failAt = op
		if err := v.Create("f", nil); err == nil {
			t.Fatalf("%s failure: create succeeded", op)
		}
		if len(k.thins) != 0 || len(v.List()) != 0 {
			t.Fatalf("%s failure left %v %v", op, k.thins, v.List())
		}
		check(t, v, k)
	}
	if _, err := v.Mount("nope", "m"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if err := v.Remove("nope", nil); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

// A volume open outside Docker is not removed, and stays whole.
func TestRemoveBusy(t *testing.T) {
	k := newKernel()
	v := open(t, t.TempDir(), k, nil)
	v.Create("v", nil)
	k.open["dmsize-vol-1"] = true
	if err := v.Remove("v", nil); err == nil || !strings.Contains(err.Error(), "open outside Docker; nothing was removed") {
		t.Fatal(err)
	}
	check(t, v, k)
	// Mount IDs the engine no longer knows (a dockerd crash) do not keep a volume forever.
	delete(k.open, "dmsize-vol-1")
	v.Mount("v", "lost")
	if err := v.Remove("v", func(string) (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
	check(t, v, k)
}

// lvmKernel is the fake kernel as a pool whose transaction id is not dmsize's (an LVM pool):
// only the Pool methods.
type lvmKernel struct{ k *fakeKernel }

func (l lvmKernel) CreateThin(r Record) error         { return l.k.CreateThin(r) }
func (l lvmKernel) DeleteThin(r Record) error         { return l.k.DeleteThin(r) }
func (l lvmKernel) Activate(r Record) (string, error) { return l.k.Activate(r) }
func (l lvmKernel) Deactivate(r Record) error         { return l.k.Deactivate(r) }
func (l lvmKernel) Node(r Record) string              { return l.k.Node(r) }

// A SIGKILL after every step of every operation: the next start leaves every volume whole or
// gone, the pool with no thin id no record names, the transaction ids agreeing; and the
// operation, repeated, succeeds.
func TestCrashAfterEachStep(t *testing.T) {
	steps := []string{StepCreateIntent, StepThinCreated, StepTxnSet, StepPoolRecorded, StepFilesystem,
		StepMounted, StepMountRecorded, StepGrowIntent, StepDeviceGrown, StepFilesystemGrown, StepRemoveIntent, StepThinDeleted, StepRemoveTxnSet, StepRemovePoolNote}
	crashAfterEachStep(t, steps, func(k *fakeKernel) Pool { return k })
}

// The same in a pool whose transaction id is LVM's: no transaction id steps, and a start
// settles an interrupted create or removal by whether the thin device exists.
func TestCrashAfterEachStepLVM(t *testing.T) {
	steps := []string{StepCreateIntent, StepThinCreated, StepFilesystem,
		StepMounted, StepMountRecorded, StepGrowIntent, StepDeviceGrown, StepFilesystemGrown, StepRemoveIntent, StepThinDeleted}
	crashAfterEachStep(t, steps, func(k *fakeKernel) Pool { return lvmKernel{k} })
}

func crashAfterEachStep(t *testing.T, steps []string, poolOf func(*fakeKernel) Pool) {
	for _, at := range steps {
		t.Run(at, func(t *testing.T) {
			dir, k := t.TempDir(), newKernel()
			open := func(t *testing.T, dir string, k *fakeKernel, step func(string)) *Volumes {
				t.Helper()
				return openPool(t, dir, poolOf(k), k, step)
			}
			// A bystander volume, mounted, that must come through every crash.
			by := open(t, dir, k, nil)
			if err := by.Create("by", map[string]string{"size": "1G"}); err != nil {
				t.Fatal(err)
			}
			by.Mount("by", "b1")
			hit := false
			v := open(t, dir, k, func(s string) {
				if s == at && !hit {
					hit = true
					panic(crash(s))
				}
			})
			ops := []func() error{
				func() error { return v.Create("v", map[string]string{"size": "2G"}) },
				func() error { _, err := v.Mount("v", "m1"); return err },
				func() error { _, err := v.Grow("v", 3*G); return err },
				func() error { return v.Unmount("v", "m1") },
				func() error { return v.Remove("v", nil) },
			}
			crashed := -1
			for i, op := range ops {
				func() {
					defer func() {
						if r := recover(); r != nil {
							if _, ok := r.(crash); !ok {
								panic(r)
							}
							crashed = i
						}
					}()
					if err := op(); err != nil {
						t.Fatalf("op %d: %v", i, err)
					}
				}()
				if crashed >= 0 {
					break
				}
			}
			if crashed < 0 {
				t.Fatalf("step %s never reached", at)
			}
			// The next start.
			v = open(t, dir, k, nil)
			check(t, v, k)
			if _, ok := k.mounted[v.Path("by")]; !ok {
				t.Fatal("the bystander was unmounted")
			}
			// The rest, from the interrupted operation on, succeeds.
			rest := []func() error{
				func() error { return v.Create("v", map[string]string{"size": "2G"}) },
				func() error { _, err := v.Mount("v", "m1"); return err },
				func() error { _, err := v.Grow("v", 3*G); return err },
				func() error { return v.Unmount("v", "m1") },
				func() error { return v.Remove("v", nil) },
			}
			if _, ok := v.Get("v"); !ok && crashed > 0 && crashed < 4 {
				t.Fatalf("volume v lost in a crash at %s", at)
			}
			for i := crashed; i < len(rest); i++ {
				if i == 4 {
					if _, ok := v.Get("v"); !ok {
						break // the removal completed at start
					}
				}
				if err := rest[i](); err != nil {
					t.Fatalf("after the crash, op %d: %v", i, err)
				}
			}
			check(t, v, k)
			if _, ok := v.Get("v"); ok || len(k.thins) != 1 {
				t.Fatalf("after the remove: %v, thins %v", v.List(), k.thins)
			}
			if _, txn := poolOf(k).(Transactional); !txn && k.tid != 0 {
				t.Fatalf("a pool whose transaction id is not dmsize's was moved to %d", k.tid)
			}
		})
	}
}

// Records that do not describe the pool (a STATE_DIR restored from a backup) stop every pool
// change; existing volumes still mount.
func TestDivergedRecords(t *testing.T) {
	dir, k := t.TempDir(), newKernel()
	v := open(t, dir, k, nil)
	v.Create("a", nil)
	k.tid += 5
	v = open(t, dir, k, nil)
	if v.Broken() == nil {
		t.Fatal("not broken")
	}
	if err := v.Create("b", nil); err == nil || !strings.Contains(err.Error(), "transaction id is 6") {
		t.Fatalf("create: %v", err)
	}
	if _, err := v.Mount("a", "m"); err != nil {
		t.Fatal(err)
	}
	if r, ok := v.Get("a"); !ok || r.State != Ready {
		t.Fatal("Get")
	}
}

func (k *fakeKernel) MountPoints(dev string, _ bool) ([]string, error) {
	var out []string
	for dir, d := range k.mounted {
		if d == dev {
			out = append(out, dir)
		}
	}
	return out, nil
}

func (k *fakeKernel) Node(r Record) string { return "/dev/mapper/" + r.Device() }

// A restarted plugin finds a stray copy of a volume's mount (its bind of the data root carries
// the host's propagated mounts): the start unmounts it, so the volume's removal finds the
// device free.
func TestStrayMountCopies(t *testing.T) {
	dir, k := t.TempDir(), newKernel()
	v := open(t, dir, k, nil)
	v.Create("v", nil)
	v.Mount("v", "m1")
	k.mounted["/var/lib/docker/plugins/x/propagated-mount/v"] = "/dev/mapper/dmsize-vol-1"
	v = open(t, dir, k, nil)
	if _, ok := k.mounted["/var/lib/docker/plugins/x/propagated-mount/v"]; ok {
		t.Fatal("the stray copy is still mounted after the start")
	}
	check(t, v, k)
	k.mounted["/elsewhere"] = "/dev/mapper/dmsize-vol-1"
	if err := v.Remove("v", func(string) (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
	check(t, v, k)
}

// Mount IDs of containers that are gone (their unmount came while the plugin was down) are
// dropped, and the volume unmounted; a volume a container still refers to keeps its IDs, and so
// does one the engine cannot answer for, and an ID recorded while the engine was asked.
func TestForgetStaleMounts(t *testing.T) {
	k := newKernel()
	dir := t.TempDir()
	v := open(t, dir, k, nil)
	for _, n := range []string{"gone", "used", "unknown", "late"} {
		if err := v.Create(n, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Mount(n, "m-"+n); err != nil {
			t.Fatal(err)
		}
	}
	n := v.ForgetStaleMounts(func(name string) (bool, error) {
		switch name {
		case "used":
			return true, nil
		case "unknown":
			return false, errors.New("engine away")
		case "late":
			// A container created and started while the question was out.
			if _, err := v.Mount("late", "m-new"); err != nil {
				t.Fatal(err)
			}
		}
		return false, nil
	})
	if n != 1 {
		t.Fatalf("%d volumes unmounted, want 1 (gone)", n)
	}
	want := map[string][]string{"gone": nil, "used": {"m-used"}, "unknown": {"m-unknown"}, "late": {"m-new"}}
	// The records on disk say the same: a new Open reads them.
	for _, vv := range []*Volumes{v, open(t, dir, k, nil)} {
		for name, ids := range want {
			r, _ := vv.Get(name)
			if !slices.Equal(r.Mounts, ids) {
				t.Errorf("%s: mount IDs %v, want %v", name, r.Mounts, ids)
			}
		}
	}
	for name := range want {
		if _, mounted := k.mounted[v.Path(name)]; mounted != (name != "gone") {
			t.Errorf("%s mounted: %v", name, mounted)
		}
	}
	if n := v.ForgetStaleMounts(func(string) (bool, error) { return false, nil }); n != 3 {
		t.Fatalf("second pass: %d unmounted, want 3", n)
	}
	check(t, v, k)
}

// A crash between ForgetStaleMounts' record write and its unmount leaves a volume with no mount
// ID still mounted (here the unmount fails, which leaves the same): the next start unmounts it.
func TestForgetStaleMountsCrashBeforeUnmount(t *testing.T) {
	k := newKernel()
	dir := t.TempDir()
	v := open(t, dir, k, nil)
	v.Create("gone", nil)
	if _, err := v.Mount("gone", "m"); err != nil {
		t.Fatal(err)
	}
	k.failAt = "unmount"
	if n := v.ForgetStaleMounts(func(string) (bool, error) { return false, nil }); n != 0 {
		t.Fatalf("%d unmounted with the unmount failing", n)
	}
	if _, mounted := k.mounted[v.Path("gone")]; !mounted {
		t.Fatal("the failed unmount unmounted")
	}
	k.failAt = ""
	v = open(t, dir, k, nil)
	if r, _ := v.Get("gone"); len(r.Mounts) != 0 {
		t.Fatalf("mount IDs after the restart: %v", r.Mounts)
	}
	if _, mounted := k.mounted[v.Path("gone")]; mounted {
		t.Fatal("the next start left the volume mounted")
	}
	check(t, v, k)
}

// Volumes made in one pool are not looked for in another: with VOLUME_POOL changed, nothing
// is created, removed or mounted (the own pool is not even made), and setting it back brings
// them back.
func TestPoolSwitchRefused(t *testing.T) {
	dir, k := t.TempDir(), newKernel()
	v := open(t, dir, k, nil)
	if err := v.Create("own", nil); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir)
	cfg.Pool = "docker/volumes"
	lk := newKernel()
	v, err := Open(cfg, lvmKernel{lk}, lk, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "volume own is in dmsize's own pool (VOLUME_POOL empty), but the volume pool is now the LVM thin pool docker/volumes"
	if err := v.Broken(); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("broken: %v", err)
	}
	if _, err := v.Mount("own", "m"); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("mount: %v", err)
	}
	if err := v.Create("new", nil); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("create: %v", err)
	}
	if err := v.Remove("own", nil); err == nil {
		t.Fatal("removed a volume of another pool")
	}
	if len(lk.thins) != 0 || len(lk.active) != 0 {
		t.Fatalf("the other pool was touched: %v %v", lk.thins, lk.active)
	}
	v = open(t, dir, k, nil)
	if _, err := v.Mount("own", "m"); err != nil {
		t.Fatal(err)
	}
	check(t, v, k)
}

// Sizes past the pool are granted with a warning, as LVM gives one.
func TestOvercommitWarns(t *testing.T) {
	k := newKernel()
	log, hook := logtest.NewNullLogger()
	v, err := Open(testConfig(t.TempDir()), k, k, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	k.data = 3 * G
	if err := v.Create("a", map[string]string{"size": "2G"}); err != nil {
		t.Fatal(err)
	}
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			t.Fatalf("a warning with 2 GiB in a 3 GiB pool: %s", e.Message)
		}
	}
	if err := v.Create("b", map[string]string{"size": "2G"}); err != nil {
		t.Fatalf("an over-committing create is refused: %v", err)
	}
	e := hook.LastEntry()
	if e == nil || e.Level != logrus.WarnLevel || e.Message != "WARNING: volume b: sum of all thin volume sizes (4GiB) exceeds the size of the volume pool (3GiB): 1.33× over-committed; the pool guard and the metrics are what keep it from filling" {
		t.Fatalf("last log entry: %+v", e)
	}
}

// Usage reads the filesystem only where the volume is mounted: its directory alone would
// answer for the filesystem under it.
func TestUsageOnlyWhereMounted(t *testing.T) {
	k := newKernel()
	v := open(t, t.TempDir(), k, nil)
	if err := v.Create("data", nil); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(v.Path("data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if sz, used, ok := v.Usage("data"); ok || sz != 0 || used != 0 {
		t.Fatalf("not mounted: Usage = %d, %d, %v", sz, used, ok)
	}
	if _, err := v.Mount("data", "m1"); err != nil {
		t.Fatal(err)
	}
	// The fake kernel mounts nothing: the directory's own filesystem stands in for the volume's.
	var st unix.Statfs_t
	if err := unix.Statfs(v.Path("data"), &st); err != nil {
		t.Fatal(err)
	}
	if sz, used, ok := v.Usage("data"); !ok || sz != int64(st.Blocks)*st.Bsize || used < 0 || used > sz {
		t.Fatalf("mounted: Usage = %d, %d, %v; statfs says %d bytes", sz, used, ok, int64(st.Blocks)*st.Bsize)
	}
	if _, _, ok := v.Usage("nothing"); ok {
		t.Fatal("an unknown volume has a usage")
	}
}

package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/size"
)

// fakeDM is device-mapper as OwnPool sees it (poolControl): devices with a uuid, a live and an
// inactive table, and the volume pool's thin ids and transaction id, kept in k so that the
// volume tests' check and fake filesystems see the same kernel. A thin device's live length is
// k.active; k.failAt fails one of "create", "load", "resume", "remove", "message" once.
type fakeDM struct {
	k      *fakeKernel
	devs   map[string]*fakeDev
	minor  uint32
	msgs   []string // the pool messages sent, in order
	status string   // the pool's status line, if set (else one made from k)
}

type fakeDev struct {
	uuid           string
	dev            dm.Dev
	live, inactive []dm.Target
}

func newFakeDM(k *fakeKernel) *fakeDM { return &fakeDM{k: k, devs: map[string]*fakeDev{}} }

func notFound(name string) error { return fmt.Errorf("%s: %w", name, dm.ErrNotFound) }

func (d *fakeDM) Info(name string) (dm.Info, error) {
	f, ok := d.devs[name]
	if !ok {
		return dm.Info{}, notFound(name)
	}
	return dm.Info{Name: name, UUID: f.uuid, Dev: f.dev, LiveTable: f.live != nil, InactiveTable: f.inactive != nil}, nil
}

func (d *fakeDM) Table(name string) ([]dm.Target, error) {
	if f, ok := d.devs[name]; ok {
		return f.live, nil
	}
	return nil, notFound(name)
}

func (d *fakeDM) Status(name string) ([]dm.Target, error) {
	f, ok := d.devs[name]
	if !ok || len(f.live) != 1 || f.live[0].Type != "thin-pool" {
		return nil, fmt.Errorf("status of %s: not a pool here", name)
	}
	st := d.status
	if st == "" {
		st = fmt.Sprintf("%d 10/4096 %d/%d - rw discard_passdown queue_if_no_space - 1024", d.k.tid, len(d.k.thins), f.live[0].Length/blockSectors)
	}
	return []dm.Target{{Length: f.live[0].Length, Type: "thin-pool", Params: st}}, nil
}

func (d *fakeDM) Load(name string, t []dm.Target) error {
	if err := d.k.fail("load"); err != nil {
		return err
	}
	f, ok := d.devs[name]
	if !ok {
		return notFound(name)
	}
	f.inactive = t
	return nil
}

func (d *fakeDM) ClearInactive(name string) error {
	if f, ok := d.devs[name]; ok {
		f.inactive = nil
	}
	return nil
}

func (d *fakeDM) Resume(name string) error {
	if err := d.k.fail("resume"); err != nil {
		return err
	}
	f, ok := d.devs[name]
	if !ok {
		return notFound(name)
	}
	if f.inactive != nil {
		f.live, f.inactive = f.inactive, nil
	}
	if len(f.live) == 1 && f.live[0].Type == "thin" {
		d.k.active[name] = int64(f.live[0].Length) * size.Sector
	}
	return nil
}

func (d *fakeDM) Create(name, uuid string) (dm.Dev, error) {
	if err := d.k.fail("create"); err != nil {
		return dm.Dev{}, err
	}
	if _, ok := d.devs[name]; ok {
		return dm.Dev{}, &dm.Error{Op: "create", Name: name, Err: unix.EBUSY}
	}
	d.minor++
	f := &fakeDev{uuid: uuid, dev: dm.Dev{Major: 253, Minor: d.minor}}
	d.devs[name] = f
	return f.dev, nil
}

func (d *fakeDM) Remove(name string, _ bool) error {
	if err := d.k.fail("remove"); err != nil {
		return err
	}
	if _, ok := d.devs[name]; !ok {
		return &dm.Error{Op: "remove", Name: name, Err: dm.ErrNotFound}
	}
	if d.k.open[name] || d.k.mountedDev("/dev/mapper/"+name) {
		return &dm.Error{Op: "remove", Name: name, Err: unix.EBUSY}
	}
	delete(d.devs, name)
	delete(d.k.active, name)
	return nil
}

// OwnPoolMessage acts as dm-thin does on the three messages, with its errnos.
func (d *fakeDM) OwnPoolMessage(pool string, m dm.PoolMsg) error {
	if f, ok := d.devs[pool]; !ok || !strings.HasPrefix(f.uuid, dm.OwnPoolUUIDPrefix) {
		return fmt.Errorf("message to %s: not dmsize's pool", pool)
	}
	if err := d.k.fail("message"); err != nil {
		return err
	}
	d.msgs = append(d.msgs, m.String())
	f := strings.Fields(m.String())
	n, _ := strconv.ParseUint(f[1], 10, 64)
	var errno error
	switch id := uint32(n); f[0] {
	case "create_thin":
		if d.k.thins[id] {
			errno = unix.EEXIST
		}
		d.k.thins[id] = true
	case "delete":
		switch {
		case !d.k.thins[id]:
			errno = unix.ENODATA
		case d.k.active[Record{ThinID: id}.Device()] > 0:
			errno = unix.EBUSY
		default:
			delete(d.k.thins, id)
		}
	case "set_transaction_id":
		if n != d.k.tid {
			errno = unix.EINVAL
		} else {
			d.k.tid, _ = strconv.ParseUint(f[2], 10, 64)
		}
	}
	if errno != nil {
		return &dm.Error{Op: "pool message", Name: pool, Err: errno}
	}
	return nil
}

func (k *fakeKernel) mountedDev(dev string) bool {
	for _, d := range k.mounted {
		if d == dev {
			return true
		}
	}
	return false
}

// fakeLoops stands in for loop.Attach for the test's length: each attach gets the next
// /dev/loopN, recorded with its file in attached.
func fakeLoops(t *testing.T, k *fakeKernel) *[]string {
	t.Helper()
	var attached []string
	saved := attachLoop
	attachLoop = func(path string) (string, *os.File, error) {
		if err := k.fail("attach"); err != nil {
			return "", nil, err
		}
		f, err := os.Open(path)
		if err != nil {
			return "", nil, err
		}
		dev := "/dev/loop" + strconv.Itoa(len(attached))
		attached = append(attached, dev+"="+filepath.Base(path))
		return dev, f, nil
	}
	t.Cleanup(func() { attachLoop = saved })
	return &attached
}

// fakeHost is a fake kernel, its device-mapper and its loop devices.
func fakeHost(t *testing.T) (*fakeKernel, *fakeDM, *[]string) {
	k := newKernel()
	return k, newFakeDM(k), fakeLoops(t, k)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// The first open makes the pool's sparse files and the pool device on their loop devices;
// the next finds the device and makes nothing; after a reboot (no device) the files are
// reused at the size they have, not the configured one.
func TestOwnPoolAssemble(t *testing.T) {
	_, d, attached := fakeHost(t)
	dir := t.TempDir()
	p, err := openOwnPool(d, dir, 100*G)
	if err != nil {
		t.Fatal(err)
	}
	if p.DataFile != filepath.Join(dir, "pool", "data") || p.MetaFile != filepath.Join(dir, "pool", "metadata") {
		t.Fatalf("files %s %s", p.DataFile, p.MetaFile)
	}
	// 100 GiB of 64 KiB blocks, 96 bytes each.
	if s := fileSize(t, p.DataFile); s != 100*G {
		t.Fatalf("data file of %d bytes", s)
	}
	if s := fileSize(t, p.MetaFile); s != 96*(100*G/(64<<10)) {
		t.Fatalf("metadata file of %d bytes", s)
	}
	if want := "/dev/loop0=metadata /dev/loop1=data"; strings.Join(*attached, " ") != want {
		t.Fatalf("attached %q, want %q", *attached, want)
	}
	info, err := d.Info(PoolName)
	if err != nil || !strings.HasPrefix(info.UUID, dm.OwnPoolUUIDPrefix) || !info.LiveTable {
		t.Fatalf("pool device: %+v %v", info, err)
	}
	want := dm.Target{Length: uint64(100*G) / size.Sector, Type: "thin-pool", Params: "/dev/loop0 /dev/loop1 128 0 0"}
	if tb, _ := d.Table(PoolName); len(tb) != 1 || tb[0] != want {
		t.Fatalf("pool table %+v, want %+v", tb, want)
	}
	if b, err := p.DataBytes(); err != nil || b != 100*G {
		t.Fatalf("DataBytes = %d, %v", b, err)
	}

	// Running: found, nothing attached or made.
	p2, err := openOwnPool(d, dir, 100*G)
	if err != nil || p2.pool != info.Dev || len(*attached) != 2 || len(d.devs) != 1 {
		t.Fatalf("second open: %v, pool %v, attached %q, devices %d", err, p2.pool, *attached, len(d.devs))
	}

	// A reboot; the guard had grown the data file meanwhile. Nothing is truncated or zeroed.
	if err := os.Truncate(p.DataFile, 150*G); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p.MetaFile, []byte("metadata"), 0o600)
	delete(d.devs, PoolName)
	if _, err := openOwnPool(d, dir, 10*G); err != nil {
		t.Fatal(err)
	}
	if tb, _ := d.Table(PoolName); tb[0].Length != uint64(150*G)/size.Sector {
		t.Fatalf("pool table after the reboot: %+v", tb)
	}
	if b, _ := os.ReadFile(p.MetaFile); string(b) != "metadata" {
		t.Fatalf("the metadata file was rewritten: %d bytes", len(b))
	}

	// A crash between the two files: the metadata is sized for the data file as it is.
	os.Remove(p.MetaFile)
	delete(d.devs, PoolName)
	if _, err := openOwnPool(d, dir, 10*G); err != nil {
		t.Fatal(err)
	}
	if s := fileSize(t, p.MetaFile); s != metaSize(150*G) {
		t.Fatalf("metadata file of %d bytes for 150 GiB of data", s)
	}
}

// A small pool still gets 16 MiB of metadata.
func TestMetaSize(t *testing.T) {
	for _, c := range []struct{ data, want int64 }{
		{1 * G, 16 << 20},
		{100 * G, 157286400},
		{100*G + 12345*64<<10, (96 * (100*G/(64<<10) + 12345)) &^ 4095},
	} {
		if got := metaSize(c.data); got != c.want || got%4096 != 0 {
			t.Errorf("metaSize(%d) = %d, want %d", c.data, got, c.want)
		}
	}
}

// A device of the pool's name that dmsize did not make is refused and left alone; one left
// without a table by a crash is removed and made again.
func TestOwnPoolOpenFound(t *testing.T) {
	k, d, _ := fakeHost(t)
	dir := t.TempDir()
	d.Create(PoolName, "LVM-other")
	d.devs[PoolName].live = []dm.Target{{Length: 8, Type: "linear", Params: "8:0 0"}}
	if _, err := openOwnPool(d, dir, G); err == nil || !strings.Contains(err.Error(), `a device named dmsize-vpool exists that dmsize did not make (uuid "LVM-other")`) {
		t.Fatalf("a foreign device: %v", err)
	}
	if f := d.devs[PoolName]; f == nil || f.uuid != "LVM-other" {
		t.Fatal("the foreign device was touched")
	}
	if _, err := os.Stat(filepath.Join(dir, "pool")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("files made for a refused pool: %v", err)
	}
	d.devs[PoolName].uuid = "X" // shorter than the prefix
	if _, err := openOwnPool(d, dir, G); err == nil || !strings.Contains(err.Error(), "dmsize did not make") {
		t.Fatalf("a foreign device with a short uuid: %v", err)
	}

	// Half made: created, never loaded.
	delete(d.devs, PoolName)
	d.Create(PoolName, dm.OwnPoolUUIDPrefix+"crashed")
	k.failAt = "remove"
	if _, err := openOwnPool(d, dir, G); err == nil || !strings.Contains(err.Error(), "removing a half-made dmsize-vpool") {
		t.Fatalf("remove failing: %v", err)
	}
	p, err := openOwnPool(d, dir, G)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := d.Info(PoolName); !info.LiveTable || info.UUID == dm.OwnPoolUUIDPrefix+"crashed" || p.pool != info.Dev {
		t.Fatalf("the half-made pool was not made again: %+v", info)
	}
}

// errInfo is a device-mapper whose Info fails for another reason than an absent device.
type errInfo struct{ *fakeDM }

func (errInfo) Info(string) (dm.Info, error) { return dm.Info{}, unix.EACCES }

// A failure at any step of the assembly leaves no pool device (the next open starts over).
func TestOwnPoolAssembleFails(t *testing.T) {
	k, d, attached := fakeHost(t)
	dir := t.TempDir()
	if _, err := openOwnPool(errInfo{d}, dir, G); !errors.Is(err, unix.EACCES) {
		t.Fatalf("Info failing: %v", err)
	}
	for _, op := range []string{"attach", "create", "load", "resume"} {
		k.failAt = op
		_, err := openOwnPool(d, dir, G)
		if err == nil || !strings.HasPrefix(err.Error(), "volume pool: injected "+op) {
			t.Fatalf("%s failing: %v", op, err)
		}
		if len(d.devs) != 0 {
			t.Fatalf("%s failing left %v", op, d.devs)
		}
	}
	k.failAt = ""
	if _, err := openOwnPool(d, dir, G); err != nil {
		t.Fatal(err)
	}
	if len(*attached) < 2 || !strings.HasSuffix((*attached)[len(*attached)-1], "=data") {
		t.Fatalf("attached %q", *attached)
	}
	// The pool's directory cannot be made.
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o600)
	delete(d.devs, PoolName)
	if _, err := openOwnPool(d, file, G); err == nil || !strings.HasPrefix(err.Error(), "volume pool: ") {
		t.Fatalf("a file in the way: %v", err)
	}
}

func ownPool(t *testing.T) (*OwnPool, *fakeDM, *fakeKernel) {
	t.Helper()
	k, d, _ := fakeHost(t)
	p, err := openOwnPool(d, t.TempDir(), 10*G)
	if err != nil {
		t.Fatal(err)
	}
	return p, d, k
}

// The pool messages, and the errnos the kernel answers them with.
func TestOwnPoolMessages(t *testing.T) {
	p, d, k := ownPool(t)
	r := Record{Name: "v", ThinID: 7, Size: 2 * G}
	if err := p.CreateThin(r); err != nil || !k.thins[7] {
		t.Fatalf("create: %v %v", err, k.thins)
	}
	if err := p.CreateThin(r); !errors.Is(err, ErrExists) {
		t.Fatalf("a second create: %v", err)
	}
	if err := p.CreateThin(Record{ThinID: dm.MaxThinID + 1}); !errors.Is(err, dm.ErrRefused) {
		t.Fatalf("an id past 24 bits: %v", err)
	}
	if err := p.SetTransactionID(0, 1); err != nil || k.tid != 1 {
		t.Fatalf("set_transaction_id: %v, tid %d", err, k.tid)
	}
	if err := p.SetTransactionID(0, 2); !errors.Is(err, unix.EINVAL) || k.tid != 1 {
		t.Fatalf("set_transaction_id from a wrong id: %v, tid %d", err, k.tid)
	}
	if tid, err := p.TransactionID(); err != nil || tid != 1 {
		t.Fatalf("TransactionID = %d, %v", tid, err)
	}
	if _, err := p.Activate(r); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteThin(r); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "thin 7") {
		t.Fatalf("delete of an active thin: %v", err)
	}
	if err := p.Deactivate(r); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteThin(r); err != nil || k.thins[7] {
		t.Fatalf("delete: %v %v", err, k.thins)
	}
	if err := p.DeleteThin(r); err != nil {
		t.Fatalf("delete of an absent thin: %v", err)
	}
	k.failAt = "message"
	if err := p.DeleteThin(r); err == nil || !strings.Contains(err.Error(), "injected message") {
		t.Fatalf("a failing message: %v", err)
	}
	want := []string{"create_thin 7", "create_thin 7", "set_transaction_id 0 1", "set_transaction_id 0 2", "delete 7", "delete 7", "delete 7"}
	if strings.Join(d.msgs, ",") != strings.Join(want, ",") {
		t.Fatalf("messages %q, want %q", d.msgs, want)
	}
	for _, st := range []string{"Fail", "1 10/4096 0/1024 - rw discard_passdown queue_if_no_space needs_check 1024"} {
		d.status = st
		if _, err := p.TransactionID(); err == nil || !strings.Contains(err.Error(), "has failed or needs a check") {
			t.Fatalf("status %q: %v", st, err)
		}
	}
	delete(d.devs, PoolName)
	if _, err := p.TransactionID(); !errors.Is(err, dm.ErrNotFound) {
		t.Fatalf("no pool: %v", err)
	}
	if _, err := p.DataBytes(); !errors.Is(err, dm.ErrNotFound) {
		t.Fatalf("no pool: %v", err)
	}
}

// Activate makes a thin device on the pool at the record's size, grows it to a larger one,
// and finishes a device a crash left without a table; Deactivate removes it.
func TestOwnPoolActivate(t *testing.T) {
	p, d, k := ownPool(t)
	r := Record{Name: "v", ThinID: 3, Size: 2 * G}
	p.CreateThin(r)
	node, err := p.Activate(r)
	if err != nil || node != dm.Node("dmsize-vol-3") || p.Node(r) != node {
		t.Fatalf("Activate = %q, %v; Node %q", node, err, p.Node(r))
	}
	f := d.devs["dmsize-vol-3"]
	want := dm.Target{Length: uint64(2*G) / size.Sector, Type: "thin", Params: p.pool.String() + " 3"}
	if f == nil || f.uuid != "DMSIZE-VOL-3" || len(f.live) != 1 || f.live[0] != want {
		t.Fatalf("device %+v, want table %+v", f, want)
	}
	if _, err := p.Activate(r); err != nil || len(d.devs) != 2 || k.active["dmsize-vol-3"] != 2*G {
		t.Fatalf("a repeat: %v, devices %d, %d bytes", err, len(d.devs), k.active["dmsize-vol-3"])
	}
	r.Size = 3 * G
	if _, err := p.Activate(r); err != nil || k.active["dmsize-vol-3"] != 3*G {
		t.Fatalf("grow: %v, %d bytes", err, k.active["dmsize-vol-3"])
	}
	// A live device that is not a thin device of this pool is not touched.
	f.live[0].Params = "253:99 3"
	if _, err := p.Activate(r); err == nil || !strings.Contains(err.Error(), "refusing to touch it") {
		t.Fatalf("a thin device of another pool: %v", err)
	}

	// Deactivate: busy while open, absent is success.
	k.open["dmsize-vol-3"] = true
	if err := p.Deactivate(r); !errors.Is(err, ErrBusy) {
		t.Fatalf("deactivate of an open device: %v", err)
	}
	delete(k.open, "dmsize-vol-3")
	k.failAt = "remove"
	if err := p.Deactivate(r); err == nil || !strings.Contains(err.Error(), "injected remove") {
		t.Fatalf("remove failing: %v", err)
	}
	for range 2 {
		if err := p.Deactivate(r); err != nil || d.devs["dmsize-vol-3"] != nil {
			t.Fatalf("deactivate: %v", err)
		}
	}

	// A crash between the create and the load: the device is loaded, not made again.
	d.Create("dmsize-vol-3", "DMSIZE-VOL-3")
	dev := d.devs["dmsize-vol-3"].dev
	if _, err := p.Activate(r); err != nil || d.devs["dmsize-vol-3"].dev != dev || k.active["dmsize-vol-3"] != 3*G {
		t.Fatalf("a device without a table: %v", err)
	}
	p.Deactivate(r)
	// A failed load or resume leaves no device; a failed create none either.
	for _, op := range []string{"load", "resume", "create"} {
		k.failAt = op
		if _, err := p.Activate(r); err == nil || !strings.Contains(err.Error(), "injected "+op) {
			t.Fatalf("%s failing: %v", op, err)
		}
		if d.devs["dmsize-vol-3"] != nil {
			t.Fatalf("%s failing left the device", op)
		}
	}
	if _, err := (&OwnPool{ctl: errInfo{d}}).Activate(r); !errors.Is(err, unix.EACCES) {
		t.Fatalf("Info failing: %v", err)
	}
}

// A LazyPool makes nothing until a volume needs the pool; one whose file or device exists is
// opened at once.
func TestLazyPool(t *testing.T) {
	k, d, attached := fakeHost(t)
	dir := t.TempDir()
	l, err := newLazyOwnPool(d, dir, 10*G)
	if err != nil {
		t.Fatal(err)
	}
	r := Record{Name: "v", ThinID: 1, Size: G}
	if tid, err := l.TransactionID(); err != nil || tid != 0 {
		t.Fatalf("TransactionID = %d, %v", tid, err)
	}
	if b, err := l.DataBytes(); err != nil || b != 0 {
		t.Fatalf("DataBytes = %d, %v", b, err)
	}
	if err := l.DeleteThin(r); err != nil {
		t.Fatal(err)
	}
	if err := l.Deactivate(r); err != nil {
		t.Fatal(err)
	}
	if l.Pool() != nil || l.Node(r) != dm.Node("dmsize-vol-1") {
		t.Fatalf("Pool %v, Node %q", l.Pool(), l.Node(r))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 || len(d.devs) != 0 || len(*attached) != 0 || len(d.msgs) != 0 {
		t.Fatalf("made before any need: files %v, devices %v, loops %q, messages %q", ents, d.devs, *attached, d.msgs)
	}

	// A failed assembly is retried at the next use.
	k.failAt = "attach"
	if err := l.CreateThin(r); err == nil || !strings.Contains(err.Error(), "injected attach") || l.Pool() != nil {
		t.Fatalf("CreateThin with the assembly failing: %v", err)
	}
	k.failAt = "attach"
	if err := l.SetTransactionID(0, 1); err == nil || l.Pool() != nil {
		t.Fatalf("SetTransactionID with the assembly failing: %v", err)
	}
	k.failAt = "attach"
	if _, err := l.Activate(r); err == nil || l.Pool() != nil {
		t.Fatalf("Activate with the assembly failing: %v", err)
	}
	if err := l.CreateThin(r); err != nil || !k.thins[1] || l.Pool() == nil {
		t.Fatalf("CreateThin: %v, thins %v", err, k.thins)
	}
	if err := l.SetTransactionID(0, 1); err != nil || k.tid != 1 {
		t.Fatalf("SetTransactionID: %v, tid %d", err, k.tid)
	}
	if node, err := l.Activate(r); err != nil || node != l.Node(r) || k.active["dmsize-vol-1"] != G {
		t.Fatalf("Activate = %q, %v", node, err)
	}
	if tid, err := l.TransactionID(); err != nil || tid != 1 {
		t.Fatalf("TransactionID = %d, %v", tid, err)
	}
	if b, err := l.DataBytes(); err != nil || b != 10*G {
		t.Fatalf("DataBytes = %d, %v", b, err)
	}
	if err := l.Deactivate(r); err != nil || d.devs["dmsize-vol-1"] != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	if err := l.DeleteThin(r); err != nil || k.thins[1] {
		t.Fatalf("DeleteThin: %v", err)
	}

	// A restart finds the data file (the pool device running or not) and opens the pool.
	delete(d.devs, PoolName)
	for range 2 {
		l2, err := newLazyOwnPool(d, dir, 10*G)
		if err != nil || l2.Pool() == nil || d.devs[PoolName] == nil {
			t.Fatalf("a restart: %v, pool %v", err, l2.Pool())
		}
	}
	// The device without the file: opened at once too, and an open that fails fails the start.
	other := t.TempDir()
	if l3, err := newLazyOwnPool(d, other, 10*G); err != nil || l3.Pool() == nil {
		t.Fatalf("the device without its files: %v", err)
	}
	d.devs[PoolName].uuid = "LVM-x"
	if _, err := newLazyOwnPool(d, other, 10*G); err == nil || !strings.Contains(err.Error(), "dmsize did not make") {
		t.Fatalf("a foreign device: %v", err)
	}
}

// The crash test of the volumes, on OwnPool (its messages and tables) over the fake
// device-mapper, through LazyPool as the plugin uses it.
func TestCrashAfterEachStepOwnPool(t *testing.T) {
	steps := []string{StepCreateIntent, StepThinCreated, StepTxnSet, StepPoolRecorded, StepFilesystem,
		StepMounted, StepMountRecorded, StepGrowIntent, StepDeviceGrown, StepFilesystemGrown, StepRemoveIntent, StepThinDeleted, StepRemoveTxnSet, StepRemovePoolNote}
	fakeLoops(t, newKernel())
	dms := map[*fakeKernel]*fakeDM{}
	dirs := map[*fakeKernel]string{}
	crashAfterEachStep(t, steps, func(k *fakeKernel) Pool {
		if dms[k] == nil {
			dms[k], dirs[k] = newFakeDM(k), t.TempDir()
		}
		l, err := newLazyOwnPool(dms[k], dirs[k], 100*G)
		if err != nil {
			panic(err)
		}
		return l
	})
}

// A crash between the exclusive create of a pool file and its truncate left it empty; the
// start makes it again (a temp file left by a crash is no file either).
func TestOwnPoolEmptyFileRemade(t *testing.T) {
	_, d, _ := fakeHost(t)
	dir := t.TempDir()
	pd := filepath.Join(dir, "pool")
	os.MkdirAll(pd, 0o700)
	os.WriteFile(filepath.Join(pd, "data"), nil, 0o600)
	p, err := openOwnPool(d, dir, 10*G)
	if err != nil {
		t.Fatal(err)
	}
	if s := fileSize(t, p.DataFile); s != 10*G {
		t.Fatalf("data file of %d bytes after a start found it empty", s)
	}
	// The metadata file empty (a crash while it was made), the data file whole.
	os.WriteFile(p.MetaFile, nil, 0o600)
	delete(d.devs, PoolName)
	if _, err := openOwnPool(d, dir, 10*G); err != nil {
		t.Fatal(err)
	}
	if s := fileSize(t, p.MetaFile); s != metaSize(10*G) {
		t.Fatalf("metadata file of %d bytes after a start found it empty", s)
	}
}

// OwnPool.Activate gives a device of the record's size or larger: a device already larger
// (a grow whose filesystem step failed) is not an error.
func TestOwnPoolActivateLarger(t *testing.T) {
	p, _, k := ownPool(t)
	r := Record{Name: "v", ThinID: 3, Size: 3 * G}
	p.CreateThin(r)
	if _, err := p.Activate(r); err != nil {
		t.Fatal(err)
	}
	r.Size = 2 * G
	if _, err := p.Activate(r); err != nil || k.active["dmsize-vol-3"] != 3*G {
		t.Fatalf("Activate at 2GiB of a 3GiB device: %v, %d bytes", err, k.active["dmsize-vol-3"])
	}
}

package volume

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsize/dmsize/kernel/dm"
)

// fakeLVM answers the lvm commands LVMPool runs from a table of LVs, and records them.
type fakeLVM struct {
	attr  string            // the pool LV's lv_attr
	tid   uint64            // LVM's transaction id of the pool
	lvs   map[string]string // name -> "tags|pool"
	calls []string
}

func (f *fakeLVM) run(args ...string) (string, error) {
	f.calls = append(f.calls, strings.Join(args, " "))
	switch args[0] {
	case "lvs":
		if args[len(args)-1] == "docker/volumes" {
			return fmt.Sprintf("  %s,%d\n", f.attr, f.tid), nil
		}
		sel := args[slices.Index(args, "-S")+1]
		name := strings.TrimPrefix(sel, "lv_name=")
		if l, ok := f.lvs[name]; ok {
			return "  " + name + "|" + l + "\n", nil
		}
		return "", nil
	case "lvcreate":
		f.lvs[args[slices.Index(args, "--name")+1]] = LVMTag + "|volumes"
	case "lvremove":
		delete(f.lvs, strings.TrimPrefix(args[len(args)-1], "docker/"))
	}
	return "", nil
}

// fakeMapper is device-mapper with one LVM thin pool, docker-volumes-tpool, and the open
// counts of active LVs.
type fakeMapper struct {
	tid    uint64
	active map[string]int32 // dm name -> open count
}

func (m *fakeMapper) Info(name string) (dm.Info, error) {
	if n, ok := m.active[name]; ok {
		return dm.Info{Name: name, OpenCount: n, LiveTable: true}, nil
	}
	return dm.Info{}, fmt.Errorf("%s: %w", name, dm.ErrNotFound)
}
func (m *fakeMapper) Table(name string) ([]dm.Target, error) {
	if name == "docker-volumes-tpool" {
		return []dm.Target{{Length: 1 << 21, Type: "thin-pool", Params: "253:1 253:2 128 0 0"}}, nil
	}
	return nil, fmt.Errorf("%s: %w", name, dm.ErrNotFound)
}
func (m *fakeMapper) Status(name string) ([]dm.Target, error) {
	return []dm.Target{{Length: 1 << 21, Type: "thin-pool", Params: fmt.Sprintf("%d 10/1024 20/16384 - rw discard_passdown queue_if_no_space - 1024", m.tid)}}, nil
}
func (m *fakeMapper) Load(string, []dm.Target) error { return errors.New("LVMPool loads no table") }
func (m *fakeMapper) ClearInactive(string) error     { return errors.New("LVMPool clears no table") }
func (m *fakeMapper) Resume(string) error            { return errors.New("LVMPool resumes nothing") }

func TestLVMPool(t *testing.T) {
	f := &fakeLVM{attr: "twi-aotz--", tid: 3, lvs: map[string]string{}}
	m := &fakeMapper{tid: 3, active: map[string]int32{}}
	if _, err := OpenLVMPool(m, "docker", "volumes", f.run); err != nil {
		t.Fatal(err)
	}
	// lvm2 accepts its own id one ahead of the kernel's (messages queued), nothing else.
	m.tid = 2
	if _, err := OpenLVMPool(m, "docker", "volumes", f.run); err != nil {
		t.Fatalf("kernel one behind: %v", err)
	}
	m.tid = 7
	if _, err := OpenLVMPool(m, "docker", "volumes", f.run); err == nil || !strings.Contains(err.Error(), "is 7 in the kernel and 3 in LVM's metadata") {
		t.Fatalf("a pool something else messages: %v", err)
	}
	m.tid = 3
	f.attr = "-wi-a-----"
	if _, err := OpenLVMPool(m, "docker", "volumes", f.run); err == nil || !strings.Contains(err.Error(), "is not an LVM thin pool") {
		t.Fatalf("a linear LV: %v", err)
	}
	f.attr = "twi-aotz--"
	p, err := OpenLVMPool(m, "docker", "volumes", f.run)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := p.PoolDevice(); err != nil || d != "docker-volumes-tpool" {
		t.Fatalf("PoolDevice = %q, %v", d, err)
	}
	r := Record{Name: "data", ThinID: 4, Size: 2 * G}
	if n := p.Node(r); n != "/dev/mapper/docker-dmsize--vol--4" {
		t.Fatalf("Node = %q", n)
	}
	f.calls = nil
	if err := p.CreateThin(r); err != nil {
		t.Fatal(err)
	}
	if want := "lvcreate --yes --thin --virtualsize 2147483648b --name dmsize-vol-4 --addtag dmsize-volume --setactivationskip n docker/volumes"; f.calls[1] != want {
		t.Fatalf("calls %q, want %q", f.calls, want)
	}
	if err := p.CreateThin(r); !errors.Is(err, ErrExists) {
		t.Fatalf("a second create: %v", err)
	}
	// Open outside Docker: not deactivated.
	m.active["docker-dmsize--vol--4"] = 1
	if err := p.Deactivate(r); !errors.Is(err, ErrBusy) {
		t.Fatalf("deactivate an open LV: %v", err)
	}
	m.active["docker-dmsize--vol--4"] = 0
	f.calls = nil
	if err := p.Deactivate(r); err != nil || f.calls[len(f.calls)-1] != "lvchange --yes -an docker/dmsize-vol-4" {
		t.Fatalf("deactivate: %v %q", err, f.calls)
	}
	delete(m.active, "docker-dmsize--vol--4")
	// An LV of a volume's name that dmsize did not make is never removed.
	f.lvs["dmsize-vol-5"] = "|volumes"
	if err := p.DeleteThin(Record{Name: "x", ThinID: 5}); err == nil || !strings.Contains(err.Error(), "not one dmsize made") {
		t.Fatalf("untagged LV: %v", err)
	}
	if err := p.DeleteThin(r); err != nil || f.lvs["dmsize-vol-4"] != "" {
		t.Fatalf("delete: %v %v", err, f.lvs)
	}
	f.calls = nil
	if err := p.DeleteThin(r); err != nil || len(f.calls) != 1 {
		t.Fatalf("delete of an absent LV: %v %q", err, f.calls)
	}
	if err := p.Deactivate(r); err != nil {
		t.Fatalf("deactivate of an absent LV: %v", err)
	}
	for _, bad := range []string{"docker", "/x", "docker/", "a/b/c", "-vg/x", "vg/x y"} {
		if _, _, err := ParseLVMPool(bad); err == nil {
			t.Errorf("ParseLVMPool(%q) passed", bad)
		}
	}
}

// lvHost is fakeLVM and fakeMapper with thin LVs that lvchange activates and deactivates and
// lvextend grows: sectors is each active LV's length (dm name -> sectors), virtual each LV's
// size (LV name -> bytes); fail makes one lvm command fail (with that error) until cleared;
// with linear, active LVs have a linear table.
type lvHost struct {
	*fakeLVM
	*fakeMapper
	sectors map[string]uint64
	virtual map[string]int64
	fail    map[string]error
	linear  bool
}

func newLVHost() *lvHost {
	return &lvHost{
		fakeLVM:    &fakeLVM{attr: "twi-aotz--", tid: 3, lvs: map[string]string{}},
		fakeMapper: &fakeMapper{tid: 3, active: map[string]int32{}},
		sectors:    map[string]uint64{}, virtual: map[string]int64{}, fail: map[string]error{},
	}
}

func (h *lvHost) Table(name string) ([]dm.Target, error) {
	if s, ok := h.sectors[name]; ok {
		if h.linear {
			return []dm.Target{{Length: s, Type: "linear", Params: "8:0 0"}}, nil
		}
		return []dm.Target{{Length: s, Type: "thin", Params: "253:3 1"}}, nil
	}
	return h.fakeMapper.Table(name)
}

func (h *lvHost) run(args ...string) (string, error) {
	if err := h.fail[args[0]]; err != nil {
		h.calls = append(h.calls, strings.Join(args, " "))
		return "", err
	}
	lv := strings.TrimPrefix(args[len(args)-1], "docker/")
	name := "docker-" + strings.ReplaceAll(lv, "-", "--")
	switch args[0] {
	case "lvcreate":
		n, _ := strconv.ParseInt(strings.TrimSuffix(args[slices.Index(args, "--virtualsize")+1], "b"), 10, 64)
		h.virtual[args[slices.Index(args, "--name")+1]] = n
	case "lvchange":
		if args[2] == "-ay" {
			h.active[name], h.sectors[name] = 0, uint64(h.virtual[lv])/512
		} else {
			delete(h.active, name)
			delete(h.sectors, name)
		}
	case "lvextend":
		n, _ := strconv.ParseInt(strings.TrimSuffix(args[slices.Index(args, "-L")+1], "b"), 10, 64)
		h.virtual[lv], h.sectors[name] = n, uint64(n)/512
	}
	return h.fakeLVM.run(args...)
}

// noNodes stands in for dm.EnsureNode for the test's length, and records the nodes asked for.
func noNodes(t *testing.T, fail error) *[]string {
	var made []string
	saved := ensureNode
	ensureNode = func(name string, dev dm.Dev, _ time.Duration) error {
		made = append(made, name+"="+dev.String())
		return fail
	}
	t.Cleanup(func() { ensureNode = saved })
	return &made
}

// Activate makes an LV active with lvchange -ay, grows one a crash left smaller with
// lvextend (lvm's "no change" to a repeat is success), and makes sure its node exists.
func TestLVMPoolActivate(t *testing.T) {
	h := newLVHost()
	nodes := noNodes(t, nil)
	p, err := OpenLVMPool(h, "docker", "volumes", h.run)
	if err != nil {
		t.Fatal(err)
	}
	r := Record{Name: "data", ThinID: 4, Size: 2 * G}
	if err := p.CreateThin(r); err != nil {
		t.Fatal(err)
	}
	h.calls = nil
	node, err := p.Activate(r)
	if err != nil || node != "/dev/mapper/docker-dmsize--vol--4" {
		t.Fatalf("Activate = %q, %v", node, err)
	}
	if want := []string{"lvchange --yes -ay docker/dmsize-vol-4"}; !slices.Equal(h.calls, want) {
		t.Fatalf("calls %q, want %q", h.calls, want)
	}
	if want := []string{"docker-dmsize--vol--4=0:0"}; !slices.Equal(*nodes, want) {
		t.Fatalf("nodes %q, want %q", *nodes, want)
	}
	// Active at its size: nothing run.
	h.calls = nil
	if _, err := p.Activate(r); err != nil || len(h.calls) != 0 {
		t.Fatalf("a repeat: %v, calls %q", err, h.calls)
	}
	// The record says more than the LV has (a crash in a grow): lvextend.
	r.Size = 3 * G
	if _, err := p.Activate(r); err != nil || h.calls[0] != "lvextend --yes -L 3221225472b docker/dmsize-vol-4" || h.sectors["docker-dmsize--vol--4"] != uint64(3*G)/512 {
		t.Fatalf("grow: %v, calls %q", err, h.calls)
	}
	r.Size = 4 * G
	h.fail["lvextend"] = errors.New("lvm lvextend: exit status 5: New size (1024 extents) matches existing size (1024 extents).")
	if _, err := p.Activate(r); err != nil {
		t.Fatalf("lvextend with no change: %v", err)
	}
	h.fail["lvextend"] = errors.New("Insufficient free space")
	_, err = p.Activate(r)
	wantErr(t, "lvextend failing", err, "growing LV docker/dmsize-vol-4 from 3GiB to 4GiB: Insufficient free space")
	delete(h.fail, "lvextend")

	// Failures on the way.
	r.Size = 3 * G
	p.Deactivate(r)
	h.fail["lvchange"] = errors.New("lvchange refused")
	if _, err := p.Activate(r); err == nil || err.Error() != "lvchange refused" {
		t.Fatalf("lvchange failing: %v", err)
	}
	delete(h.fail, "lvchange")
	h.linear = true
	_, err = p.Activate(r)
	wantErr(t, "a table that is not thin", err, "docker-dmsize--vol--4 is not a thin device")
	h.linear = false
	p.Deactivate(r)
	nodeErr := errors.New("mknod refused")
	noNodes(t, nodeErr)
	if _, err := p.Activate(r); !errors.Is(err, nodeErr) {
		t.Fatalf("node failing: %v", err)
	}
}

// lvHostNoDev is an lvm whose lvchange -ay reports success and makes no device.
type lvHostNoDev struct{ *lvHost }

func (h lvHostNoDev) run(args ...string) (string, error) {
	if args[0] == "lvchange" {
		return "", nil
	}
	return h.lvHost.run(args...)
}

// infoErr is a mapper whose Info fails for another reason than an absent device.
type infoErr struct{ *lvHost }

func (infoErr) Info(string) (dm.Info, error) { return dm.Info{}, errors.New("ioctl failed") }

// The lvm and device-mapper failures LVMPool passes on, and the pool's size.
func TestLVMPoolErrors(t *testing.T) {
	h := newLVHost()
	noNodes(t, nil)
	p, err := OpenLVMPool(h, "docker", "volumes", h.run)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := p.DataBytes(); err != nil || b != 1<<21*512 {
		t.Fatalf("DataBytes = %d, %v", b, err)
	}
	r := Record{Name: "data", ThinID: 4, Size: 2 * G}
	p.CreateThin(r)

	_, err = (&LVMPool{VG: "docker", LV: "volumes", run: lvHostNoDev{h}.run, ctl: h}).Activate(r)
	wantErr(t, "lvchange making no device", err, "LV docker/dmsize-vol-4 after lvchange -ay")
	ie := &LVMPool{VG: "docker", LV: "volumes", run: h.run, ctl: infoErr{h}}
	if _, err := ie.Activate(r); err == nil || err.Error() != "ioctl failed" {
		t.Fatalf("Activate with Info failing: %v", err)
	}
	if err := ie.Deactivate(r); err == nil || err.Error() != "ioctl failed" {
		t.Fatalf("Deactivate with Info failing: %v", err)
	}

	// lvs failing.
	lvsErr := errors.New("lvs: volume group not found")
	h.fail["lvs"] = lvsErr
	if _, err := OpenLVMPool(h, "docker", "volumes", h.run); !errors.Is(err, lvsErr) || !strings.Contains(err.Error(), "VOLUME_POOL=docker/volumes") {
		t.Fatalf("OpenLVMPool: %v", err)
	}
	if err := p.CreateThin(Record{ThinID: 9, Size: G}); !errors.Is(err, lvsErr) {
		t.Fatalf("CreateThin: %v", err)
	}
	if _, ok := h.lvs["dmsize-vol-9"]; ok {
		t.Fatal("created with lvs failing")
	}
	if err := p.DeleteThin(r); !errors.Is(err, lvsErr) || h.lvs["dmsize-vol-4"] == "" {
		t.Fatalf("DeleteThin: %v", err)
	}
	p.Activate(r)
	if err := p.Deactivate(r); !errors.Is(err, lvsErr) {
		t.Fatalf("Deactivate: %v", err)
	}
	delete(h.fail, "lvs")
	h.fail["lvchange"] = errors.New(`lvm lvchange: exit status 5: Logical volume docker/dmsize-vol-4 in use.`)
	if err := p.Deactivate(r); !errors.Is(err, ErrBusy) {
		t.Fatalf("Deactivate of an LV lvm says is in use: %v", err)
	}
	delete(h.fail, "lvchange")

	// The pool not active.
	q := &LVMPool{VG: "docker", LV: "other", run: h.run, ctl: h}
	if _, err := q.PoolDevice(); err == nil || err.Error() != "LVM thin pool docker/other is not active" {
		t.Fatalf("PoolDevice: %v", err)
	}
	if _, err := q.DataBytes(); err == nil {
		t.Fatal("DataBytes of a pool not active")
	}
	if vg, lv, err := ParseLVMPool("docker/volumes"); err != nil || vg != "docker" || lv != "volumes" {
		t.Fatalf("ParseLVMPool = %q %q %v", vg, lv, err)
	}
}

// The same on LVMPool: a dmsize-tagged dmsize-vol-1 with no record survives a create whose
// lvs fails once inside CreateThin, and one cut by a crash after its intent.
func TestLVMCreateRollbackKeepsRestoredLV(t *testing.T) {
	h := newLVHost()
	noNodes(t, nil)
	p, err := OpenLVMPool(h, "docker", "volumes", h.run)
	if err != nil {
		t.Fatal(err)
	}
	h.lvs["dmsize-vol-1"] = LVMTag + "|volumes"
	lvsFails := 0
	p.run = func(args ...string) (string, error) {
		if args[0] == "lvs" && lvsFails > 0 {
			lvsFails--
			return "", errors.New("lvs: transient failure")
		}
		return h.run(args...)
	}
	dir, k := t.TempDir(), newKernel()
	cfg := testConfig(dir)
	cfg.Pool = "docker/volumes"
	v, err := Open(cfg, p, k, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lvsFails = 1
	wantErr(t, "create", v.Create("v", nil), "lvs: transient failure")
	if _, ok := h.lvs["dmsize-vol-1"]; !ok {
		t.Fatal("a create whose lvs failed once removed dmsize-vol-1, which it never made")
	}
	v, err = Open(cfg, p, k, quiet(), func(s string) {
		if s == StepCreateIntent {
			panic(crash(s))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() { recover() }()
		v.Create("v", nil)
	}()
	if _, err := Open(cfg, p, k, quiet(), nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.lvs["dmsize-vol-1"]; !ok {
		t.Fatal("the start's rollback of a create cut after its intent removed dmsize-vol-1, which it never made")
	}
}

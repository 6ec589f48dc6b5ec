package volume

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/driver/dm"
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

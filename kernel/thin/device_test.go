package thin

import (
	"errors"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/errs"
)

// fakeMapper keeps live and inactive tables per device and records calls.
type fakeMapper struct {
	live, inactive map[string][]dm.Target
	status         map[string]string
	suspended      map[string]bool
	resumeErr      error // returned by the next Resume that has a table to swap
	swapThenFail   bool  // resumeErr comes after the swap, and sticks to the new table
	failingTable   []dm.Target
	calls          []string
}

func newFake() *fakeMapper {
	return &fakeMapper{live: map[string][]dm.Target{}, inactive: map[string][]dm.Target{}, status: map[string]string{}, suspended: map[string]bool{}}
}

func (f *fakeMapper) Info(name string) (dm.Info, error) {
	f.calls = append(f.calls, "info "+name)
	if _, ok := f.live[name]; !ok {
		return dm.Info{}, dm.ErrNotFound
	}
	return dm.Info{Name: name, Suspended: f.suspended[name], InactiveTable: f.inactive[name] != nil}, nil
}
func (f *fakeMapper) Table(name string) ([]dm.Target, error) {
	t, ok := f.live[name]
	if !ok {
		return nil, dm.ErrNotFound
	}
	return t, nil
}
func (f *fakeMapper) Status(name string) ([]dm.Target, error) {
	t := f.live[name][0]
	return []dm.Target{{Start: 0, Length: t.Length, Type: t.Type, Params: f.status[name]}}, nil
}
func (f *fakeMapper) Load(name string, table []dm.Target) error {
	f.calls = append(f.calls, "load "+name)
	f.inactive[name] = table
	return nil
}
func (f *fakeMapper) ClearInactive(name string) error {
	f.calls = append(f.calls, "clear "+name)
	delete(f.inactive, name)
	return nil
}
func (f *fakeMapper) Resume(name string) error {
	f.calls = append(f.calls, "resume "+name)
	if f.inactive[name] != nil && f.resumeErr != nil {
		f.suspended[name] = true
		err := f.resumeErr
		f.resumeErr = nil
		if f.swapThenFail {
			// As a target's pre-resume check does: the new table is live, the device
			// suspended, and every resume on that table fails the same way.
			f.live[name] = f.inactive[name]
			f.failingTable = f.inactive[name]
			delete(f.inactive, name)
		}
		return err
	}
	if f.failingTable != nil && f.inactive[name] == nil && sameTable(f.live[name], f.failingTable) {
		return errors.New("dm: resume: invalid argument (again)")
	}
	if t := f.inactive[name]; t != nil {
		f.live[name] = t
		delete(f.inactive, name)
	}
	f.suspended[name] = false
	return nil
}

func sameTable(a, b []dm.Target) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var pool = dm.Dev{Major: 253, Minor: 0}

func tgt(start, length uint64, typ, params string) dm.Target {
	return dm.Target{Start: start, Length: length, Type: typ, Params: params}
}

func thinFake() *fakeMapper {
	f := newFake()
	f.live["c1"] = []dm.Target{{Start: 0, Length: 20971520, Type: "thin", Params: "253:0 4"}}
	return f
}

func TestGrowDevice(t *testing.T) {
	f := thinFake()
	g, err := GrowDevice(f, "c1", pool, 42<<30)
	if err != nil {
		t.Fatal(err)
	}
	if g.Before != 10<<30 || g.After != 42<<30 {
		t.Fatalf("grown %+v", g)
	}
	if got := f.live["c1"][0]; got.Length != 42<<30/512 || got.Params != "253:0 4" || got.Type != "thin" {
		t.Fatalf("new live table %+v", got)
	}
}

func TestGrowDeviceRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		table []dm.Target
		pool  dm.Dev
		size  int64
		want  string
	}{
		{"shrink", []dm.Target{tgt(0, 20971520, "thin", "253:0 4")}, pool, 5 << 30, "refusing to shrink"},
		{"other pool", []dm.Target{tgt(0, 20971520, "thin", "253:7 4")}, pool, 42 << 30, "not of the engine's pool 253:0"},
		{"linear", []dm.Target{tgt(0, 20971520, "linear", "254:32 2048")}, pool, 42 << 30, "not a thin device"},
		{"two targets", []dm.Target{tgt(0, 100, "thin", "253:0 4"), tgt(100, 100, "thin", "253:0 5")}, pool, 42 << 30, "not a thin device"},
		{"external origin kept", []dm.Target{tgt(0, 20971520, "thin", "253:0 4 253:9")}, pool, 10 << 30, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.live["c1"] = tc.table
			_, err := GrowDevice(f, "c1", tc.pool, tc.size)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "c1") {
				t.Fatalf("error %v, want one naming c1 and containing %q", err, tc.want)
			}
			for _, c := range f.calls {
				if strings.HasPrefix(c, "load") || strings.HasPrefix(c, "resume") {
					t.Fatalf("refused grow still called %s", c)
				}
			}
		})
	}
	var se *errs.Refusal
	_, err := GrowDevice(thinFake(), "c1", pool, 1<<30)
	if !errors.As(err, &se) || se.Current != 10<<30 || se.Requested != 1<<30 {
		t.Fatalf("shrink error %#v", err)
	}
	if _, err := GrowDevice(newFake(), "absent", pool, 1<<30); !errors.Is(err, dm.ErrNotFound) {
		t.Fatalf("absent device: %v", err)
	}
}

func TestGrowDeviceSameSizeIsNoop(t *testing.T) {
	f := thinFake()
	g, err := GrowDevice(f, "c1", pool, 10<<30+511) // rounds down to the current size
	if err != nil || g.After != 10<<30 {
		t.Fatalf("%+v %v", g, err)
	}
	for _, c := range f.calls {
		if strings.HasPrefix(c, "load") {
			t.Fatal("same-size grow loaded a table")
		}
	}
}

// A resume that fails after the kernel suspended the device must leave it running at its old
// size, with no new table waiting to be swapped in by someone else's resume.
func TestGrowDeviceFailedResumeLeavesDeviceResumed(t *testing.T) {
	f := thinFake()
	f.resumeErr = errors.New("dm: resume c1: invalid argument")
	_, err := GrowDevice(f, "c1", pool, 42<<30)
	if err == nil || !strings.Contains(err.Error(), "resume c1") {
		t.Fatalf("error %v", err)
	}
	if f.suspended["c1"] {
		t.Fatal("device left suspended")
	}
	if f.inactive["c1"] != nil {
		t.Fatal("new table left in the inactive slot")
	}
	if f.live["c1"][0].Length != 20971520 {
		t.Fatalf("live table changed: %+v", f.live["c1"])
	}
}

// The same when the kernel had swapped the new table in before the resume failed: the old
// table is loaded back and the device runs on it.
func TestReloadFailureAfterSwapRestoresOldTable(t *testing.T) {
	f := poolFake()
	f.resumeErr = errors.New("dm: resume pool: invalid argument")
	f.swapThenFail = true
	_, err := ReloadPool(f, "pool", 16777216)
	if err == nil || !strings.Contains(err.Error(), "resume pool") {
		t.Fatalf("error %v", err)
	}
	if f.suspended["pool"] {
		t.Fatalf("pool left suspended; calls %v", f.calls)
	}
	if got := f.live["pool"][0]; got.Length != 8388608 || got.Params != "7:1 7:0 128 32768 1 skip_block_zeroing" {
		t.Fatalf("live table %+v, want the old one", got)
	}
}

func poolFake() *fakeMapper {
	f := newFake()
	f.live["pool"] = []dm.Target{tgt(0, 8388608, "thin-pool", "7:1 7:0 128 32768 1 skip_block_zeroing")}
	f.status["pool"] = "4 3305/32768 1201/65536 - rw discard_passdown queue_if_no_space - 1024"
	return f
}

func TestReloadPoolKeepsParameters(t *testing.T) {
	f := poolFake()
	r, err := ReloadPool(f, "pool", 16777216)
	if err != nil {
		t.Fatal(err)
	}
	got := f.live["pool"][0]
	if got.Length != 16777216 || got.Type != "thin-pool" || got.Params != "7:1 7:0 128 32768 1 skip_block_zeroing" {
		t.Fatalf("reloaded table %+v", got)
	}
	if used, total := r.Before.DataBytes(); used != 1201*65536 || total != 65536*65536 {
		t.Fatalf("data bytes %d/%d", used, total)
	}
	if used, total := r.Before.MetaBytes(); used != 3305*4096 || total != 32768*4096 {
		t.Fatalf("meta bytes %d/%d", used, total)
	}
	var se *errs.Refusal
	if _, err := ReloadPool(poolFake(), "pool", 100); !errors.As(err, &se) {
		t.Fatalf("shrinking a pool: %v", err)
	}
}

func TestReloadPoolRefusesFailedPool(t *testing.T) {
	for _, st := range []string{"Fail", "4 3305/32768 1201/65536 - ro discard_passdown queue_if_no_space needs_check 1024"} {
		f := poolFake()
		f.status["pool"] = st
		if _, err := ReloadPool(f, "pool", 16777216); err == nil {
			t.Fatalf("reloaded a pool with status %q", st)
		}
		if f.live["pool"][0].Length != 8388608 {
			t.Fatal("pool changed")
		}
	}
}

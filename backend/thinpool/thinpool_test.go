package thinpool

import (
	"context"
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/kernel/thin"
	"github.com/dmsize/dmsize/sizer"
)

// fakeMapper is device-mapper as thin.NoFlushMapper sees it: each device's info, live and
// inactive tables and status, the errors to give, and the calls made.
type fakeMapper struct {
	info      map[string]dm.Info
	live      map[string][]dm.Target
	inactive  map[string][]dm.Target
	status    map[string][]dm.Target // what StatusNoFlush answers
	infoErr   error
	tableErr  error
	resumeErr error
	stall     time.Duration // how long Resume takes
	calls     []string
}

func (f *fakeMapper) call(op, name string) { f.calls = append(f.calls, op+" "+name) }

func (f *fakeMapper) Info(name string) (dm.Info, error) {
	f.call("info", name)
	if f.infoErr != nil {
		return dm.Info{}, f.infoErr
	}
	info, ok := f.info[name]
	if !ok {
		return dm.Info{}, &dm.Error{Op: "info", Name: name, Err: dm.ErrNotFound}
	}
	return info, nil
}

func (f *fakeMapper) Table(name string) ([]dm.Target, error) {
	f.call("table", name)
	if f.tableErr != nil {
		return nil, f.tableErr
	}
	return f.live[name], nil
}

// Status flushes a pool's metadata: the pool's methods must never call it.
func (f *fakeMapper) Status(name string) ([]dm.Target, error) {
	f.call("status", name)
	return nil, errors.New("Status called: it commits the pool's metadata")
}

func (f *fakeMapper) StatusNoFlush(name string) ([]dm.Target, error) {
	f.call("status-noflush", name)
	return f.status[name], nil
}

func (f *fakeMapper) Load(name string, table []dm.Target) error {
	f.call("load", name)
	f.inactive[name] = table
	return nil
}

func (f *fakeMapper) ClearInactive(name string) error {
	f.call("clear", name)
	delete(f.inactive, name)
	return nil
}

func (f *fakeMapper) Resume(name string) error {
	f.call("resume", name)
	time.Sleep(f.stall)
	if f.resumeErr != nil {
		return f.resumeErr
	}
	if t, ok := f.inactive[name]; ok {
		f.live[name] = t
		delete(f.inactive, name)
	}
	return nil
}

var poolDev = dm.Dev{Major: 253, Minor: 1}

// newFake has pool "pool" (253:1, 2000 data blocks of 64 KiB) and thin device "c1" on it,
// active at 10 GiB.
func newFake() *fakeMapper {
	return &fakeMapper{
		info: map[string]dm.Info{
			"pool": {Name: "pool", Dev: poolDev, LiveTable: true},
			"c1":   {Name: "c1", Dev: dm.Dev{Major: 253, Minor: 5}, LiveTable: true, OpenCount: 2},
		},
		live: map[string][]dm.Target{
			"pool": {{Start: 0, Length: 256000, Type: "thin-pool", Params: "7:1 7:0 128 32768 1 skip_block_zeroing"}},
			"c1":   {{Start: 0, Length: 20971520, Type: "thin", Params: "253:1 4"}},
		},
		inactive: map[string][]dm.Target{},
		status: map[string][]dm.Target{
			"pool": {{Start: 0, Length: 256000, Type: "thin-pool", Params: "3 100/1000 500/2000 - rw discard_passdown queue_if_no_space - 256"}},
		},
	}
}

// fake makes every *dm.Control reach f for the test, and returns the control it expects.
func fake(t *testing.T, f *fakeMapper) *dm.Control {
	ctl := new(dm.Control) // never used: only compared
	saved := mapper
	mapper = func(c *dm.Control) thin.NoFlushMapper {
		if c != ctl {
			t.Errorf("reached %p, want the pool's control %p", c, ctl)
		}
		return f
	}
	t.Cleanup(func() { mapper = saved })
	return ctl
}

func TestMapperIsTheControl(t *testing.T) {
	ctl := new(dm.Control)
	if m, ok := mapper(ctl).(*dm.Control); !ok || m != ctl {
		t.Fatalf("mapper gives %#v, want the control itself", m)
	}
}

func TestOpen(t *testing.T) {
	f := newFake()
	ctl := fake(t, f)
	p, err := Open(ctl, "pool")
	if err != nil {
		t.Fatal(err)
	}
	if p.Ctl != ctl || p.Name != "pool" || p.Dev != poolDev {
		t.Errorf("pool %+v", p)
	}
	if !reflect.DeepEqual(f.calls, []string{"info pool"}) {
		t.Errorf("calls %q", f.calls)
	}
}

func TestOpenMissing(t *testing.T) {
	ctl := fake(t, newFake())
	p, err := Open(ctl, "nopool")
	if p != nil || !errors.Is(err, dm.ErrNotFound) {
		t.Fatalf("%+v %v", p, err)
	}
	if want := `thin pool "nopool": dm: info nopool: no such device-mapper device`; err.Error() != want {
		t.Errorf("%q, want %q", err, want)
	}
}

func TestState(t *testing.T) {
	for _, tc := range []struct {
		name  string
		info  *dm.Info // nil: the device does not exist
		table []dm.Target
		want  sizer.DeviceState
		calls []string
	}{
		{"absent", nil, nil, sizer.DeviceState{}, []string{"info c1"}},
		{"active", &dm.Info{LiveTable: true, OpenCount: 3}, []dm.Target{{Start: 0, Length: 2097152, Type: "thin", Params: "253:1 4"}},
			sizer.DeviceState{Exists: true, Active: true, Size: 1 << 30, Opens: 3}, []string{"info c1", "table c1"}},
		{"active, external origin", &dm.Info{LiveTable: true}, []dm.Target{{Start: 0, Length: 3, Type: "thin", Params: "253:1 4 7:9"}},
			sizer.DeviceState{Exists: true, Active: true, Size: 1536}, []string{"info c1", "table c1"}},
		{"no table", &dm.Info{OpenCount: 1, DeferredRemove: true}, nil,
			sizer.DeviceState{Exists: true, Opens: 1, Deferred: true}, []string{"info c1"}},
		{"suspended", &dm.Info{LiveTable: true, Suspended: true}, nil,
			sizer.DeviceState{Exists: true}, []string{"info c1"}},
		{"removal deferred, still active", &dm.Info{LiveTable: true, OpenCount: 1, DeferredRemove: true}, []dm.Target{{Start: 0, Length: 8, Type: "thin", Params: "253:1 9"}},
			sizer.DeviceState{Exists: true, Active: true, Size: 4096, Opens: 1, Deferred: true}, []string{"info c1", "table c1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			delete(f.info, "c1")
			if tc.info != nil {
				f.info["c1"] = *tc.info
			}
			f.live["c1"] = tc.table
			p := &Pool{Ctl: fake(t, f), Name: "pool", Dev: poolDev}
			st, err := p.State("c1")
			if err != nil || st != tc.want {
				t.Errorf("%+v %v, want %+v", st, err, tc.want)
			}
			if !reflect.DeepEqual(f.calls, tc.calls) {
				t.Errorf("calls %q, want %q", f.calls, tc.calls)
			}
		})
	}
}

func TestStateErrors(t *testing.T) {
	active := sizer.DeviceState{Exists: true, Active: true, Opens: 2}
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		prepare func(f *fakeMapper)
		want    sizer.DeviceState // what State still reports with its error
		msg     string
	}{
		{"info fails", func(f *fakeMapper) { f.infoErr = &dm.Error{Op: "info", Name: "c1", Err: boom} }, sizer.DeviceState{}, "dm: info c1: boom"},
		{"table fails", func(f *fakeMapper) { f.tableErr = boom }, active, "boom"},
		{"other pool", func(f *fakeMapper) { f.live["c1"][0].Params = "253:7 4" }, active,
			"thin: c1 is a thin device of pool 253:7, not of the engine's pool 253:1; refusing to touch it"},
		{"not thin", func(f *fakeMapper) {
			f.live["c1"] = []dm.Target{{Start: 0, Length: 8, Type: "linear", Params: "7:0 0"}}
		}, active,
			"thin: c1 is not a thin device (table 0 8 linear 7:0 0); refusing to touch it"},
		{"bad thin table", func(f *fakeMapper) { f.live["c1"][0].Params = "253:1" }, active,
			`thin: c1: dm: thin table "253:1": want 2 or 3 fields`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			tc.prepare(f)
			p := &Pool{Ctl: fake(t, f), Name: "pool", Dev: poolDev}
			st, err := p.State("c1")
			if err == nil || err.Error() != tc.msg {
				t.Fatalf("error %v, want %q", err, tc.msg)
			}
			if st != tc.want {
				t.Errorf("state %+v, want %+v", st, tc.want)
			}
		})
	}
}

func TestGrow(t *testing.T) {
	f := newFake()
	f.stall = 5 * time.Millisecond
	p := &Pool{Ctl: fake(t, f), Name: "pool", Dev: poolDev}
	stall, err := p.Grow("c1", 20<<30+511) // rounded down to sectors
	if err != nil {
		t.Fatal(err)
	}
	if stall < f.stall || stall > time.Minute {
		t.Errorf("stall %v: not the resume's", stall)
	}
	want := []dm.Target{{Start: 0, Length: 20 << 30 / 512, Type: "thin", Params: "253:1 4"}}
	if !reflect.DeepEqual(f.live["c1"], want) {
		t.Errorf("live table %+v, want %+v", f.live["c1"], want)
	}
	if want := []string{"table c1", "load c1", "resume c1"}; !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
}

func TestGrowUnchanged(t *testing.T) {
	f := newFake()
	p := &Pool{Ctl: fake(t, f), Name: "pool", Dev: poolDev}
	stall, err := p.Grow("c1", 10<<30)
	if err != nil || stall != 0 {
		t.Fatalf("%v %v", stall, err)
	}
	if want := []string{"table c1"}; !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
}

func TestGrowRefused(t *testing.T) {
	f := newFake()
	p := &Pool{Ctl: fake(t, f), Name: "pool", Dev: poolDev}
	stall, err := p.Grow("c1", 5<<30)
	var se *errs.Refusal
	if !errors.As(err, &se) || se.Current != 10<<30 || se.Requested != 5<<30 || stall != 0 {
		t.Fatalf("%v %v", stall, err)
	}
	f.live["c1"][0].Params = "253:2 4"
	if _, err := p.Grow("c1", 20<<30); err == nil || !strings.Contains(err.Error(), "not of the engine's pool 253:1") {
		t.Fatalf("other pool: %v", err)
	}
	if want := []string{"table c1", "table c1"}; !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls %q, want %q: a refused grow loaded a table", f.calls, want)
	}
	if f.live["c1"][0].Length != 20971520 {
		t.Errorf("table changed: %+v", f.live["c1"])
	}
}

// A failed resume still reports how long I/O was held, and leaves the old table.
func TestGrowResumeFails(t *testing.T) {
	f := newFake()
	f.stall = 5 * time.Millisecond
	f.resumeErr = errors.New("resume: invalid argument")
	p := &Pool{Ctl: fake(t, f), Name: "pool", Dev: poolDev}
	stall, err := p.Grow("c1", 20<<30)
	if !errors.Is(err, f.resumeErr) {
		t.Fatalf("%v", err)
	}
	if stall < f.stall {
		t.Errorf("stall %v", stall)
	}
	if f.live["c1"][0].Length != 20971520 || len(f.inactive) != 0 {
		t.Errorf("live %+v, inactive %+v", f.live["c1"], f.inactive)
	}
}

func TestPoolData(t *testing.T) {
	f := newFake()
	p := &Pool{Ctl: fake(t, f), Name: "pool", Dev: poolDev}
	n, err := p.PoolData()
	if err != nil || n != 2000*128*512 {
		t.Fatalf("%d %v, want %d", n, err, 2000*128*512)
	}
	if want := []string{"table pool", "status-noflush pool"}; !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls %q, want %q (no flushing status)", f.calls, want)
	}
}

func TestPoolDataErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(f *fakeMapper)
		msg     string
	}{
		{"table fails", func(f *fakeMapper) { f.tableErr = errors.New("boom") }, "boom"},
		{"not a pool", func(f *fakeMapper) { f.live["pool"][0].Type = "linear" }, "thin: pool is not a thin pool (table 0 256000 linear 7:1 7:0 128 32768 1 skip_block_zeroing)"},
		{"bad status", func(f *fakeMapper) { f.status["pool"][0].Params = "Error" }, `thin: pool pool: dm: thin-pool status "Error": the kernel could not read the pool's metadata`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			tc.prepare(f)
			p := &Pool{Ctl: fake(t, f), Name: "pool", Dev: poolDev}
			n, err := p.PoolData()
			if n != 0 || err == nil || err.Error() != tc.msg {
				t.Fatalf("%d %v, want %q", n, err, tc.msg)
			}
		})
	}
}

// GrowFS and FS work on /dev/mapper/NAME; without one, they fail naming it.
func TestFilesystemOfAbsentDevice(t *testing.T) {
	const name = "dmsize-thinpool-test-absent"
	node := dm.Node(name)
	p := &Pool{Name: "pool", Dev: poolDev} // no device-mapper call is made
	if _, err := p.GrowFS(name, 1<<30); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "grow filesystem on "+node+": ") {
		t.Errorf("GrowFS: %v", err)
	}
	size, used, err := p.FS(name)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "filesystem on "+node+": ") || size != 0 || used != 0 {
		t.Errorf("FS: %d %d %v", size, used, err)
	}
	if _, err := p.GrowFS(name, 0); err == nil || !strings.Contains(err.Error(), "invalid size 0") {
		t.Errorf("GrowFS to 0: %v", err)
	}
}

// fakeEngine answers Container with c and err, and keeps the ref and context it was given.
type fakeEngine struct {
	c   engine.Container
	err error
	ref string
	ctx context.Context
}

func (e *fakeEngine) Container(ctx context.Context, ref string) (engine.Container, error) {
	e.ref, e.ctx = ref, ctx
	return e.c, e.err
}

type ctxKey struct{}

func TestInspect(t *testing.T) {
	ctx := context.WithValue(context.Background(), ctxKey{}, 1)
	c := engine.Container{ID: "abc123", Name: "web", Labels: map[string]string{"dmsize.size": "20G"}, Running: true, State: "running",
		Driver: "devicemapper", DeviceName: "docker-253:0-1-abc", DeviceID: 7, DeviceSize: 10 << 30}
	eng := &fakeEngine{c: c}
	got, sc, err := Inspect(ctx, eng, "web")
	if err != nil {
		t.Fatal(err)
	}
	if eng.ref != "web" || eng.ctx != ctx {
		t.Errorf("asked %q with %v", eng.ref, eng.ctx)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("engine's container %+v", got)
	}
	want := sizer.Container{ID: "abc123", Name: "web", Labels: c.Labels, Running: true, State: "running"}
	if !reflect.DeepEqual(sc, want) {
		t.Errorf("sizer's container %+v, want %+v (no device: the backend finds it)", sc, want)
	}

	// Stopped, read-only.
	eng.c = engine.Container{ID: "def", Name: "db", State: "exited", ReadonlyRootfs: true}
	if _, sc, err := Inspect(ctx, eng, "def"); err != nil || !reflect.DeepEqual(sc, sizer.Container{ID: "def", Name: "db", State: "exited", ReadOnly: true}) {
		t.Errorf("%+v %v", sc, err)
	}
}

func TestInspectNotFound(t *testing.T) {
	eng := &fakeEngine{c: engine.Container{ID: "partial"}, err: errors.Join(errors.New("container ghost"), engine.ErrNotFound)}
	c, sc, err := Inspect(context.Background(), eng, "ghost")
	if !errors.Is(err, sizer.ErrNotFound) || !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("%v: want both the sizer's and the engine's not found", err)
	}
	if !strings.HasPrefix(err.Error(), sizer.ErrNotFound.Error()+": container ghost") {
		t.Errorf("%q", err)
	}
	if c.ID != "partial" || !reflect.DeepEqual(sc, sizer.Container{}) {
		t.Errorf("%+v %+v", c, sc)
	}
}

func TestInspectFails(t *testing.T) {
	boom := errors.New("engine: connection refused")
	eng := &fakeEngine{err: boom}
	_, sc, err := Inspect(context.Background(), eng, "web")
	if err != boom || errors.Is(err, sizer.ErrNotFound) {
		t.Fatalf("%v: want the engine's error as it is", err)
	}
	if !reflect.DeepEqual(sc, sizer.Container{}) {
		t.Errorf("%+v", sc)
	}
}

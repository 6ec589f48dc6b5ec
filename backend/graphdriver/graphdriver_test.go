package graphdriver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/backend/thinpool"
	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/kernel/dm"
)

var (
	hash   = strings.Repeat("0123456789abcdef", 4)
	device = "docker-254:0-131101-" + hash
	tmp    = device + stagingSuffix
	// poolDev is the pool's device number the fake openPool gives.
	poolDev = dm.Dev{Major: 253, Minor: 7}
)

// newBackend makes a backend through New, on f for device-mapper, with a data root of its own.
func newBackend(t *testing.T, f *fakeDM) *Backend {
	t.Helper()
	fakePool(t, f, nil)
	st := engine.Storage{Driver: "devicemapper", PoolName: "docker-thinpool", DataRoot: t.TempDir(), DeferredRemoval: true, DeferredDeletion: true}
	b, err := New(nil, &dm.Control{NodeWait: 3 * time.Millisecond}, st)
	if err != nil {
		t.Fatal(err)
	}
	f.calls = nil
	return b
}

// fakePool has New find the pool (or fail with err) and reach device-mapper through f.
func fakePool(t *testing.T, f *fakeDM, err error) {
	set(t, &openPool, func(ctl *dm.Control, name string) (*thinpool.Pool, error) {
		if err != nil {
			return nil, fmt.Errorf("thin pool %q: %w", name, err)
		}
		return &thinpool.Pool{Ctl: ctl, Name: name, Dev: poolDev}, nil
	})
	set(t, &control, func(*dm.Control) deviceControl { return f })
}

// nodes stands in for /dev/mapper: ensureNode makes a plain file as the device's node, and the
// holder opens that.
type nodes struct {
	dir   string
	calls []string // "NAME MAJOR:MINOR WAIT"
	err   error    // ensureNode's answer, when set
}

func fakeNodes(t *testing.T) *nodes {
	n := &nodes{dir: t.TempDir()}
	set(t, &node, func(name string) string { return filepath.Join(n.dir, name) })
	set(t, &ensureNode, func(name string, dev dm.Dev, wait time.Duration) error {
		n.calls = append(n.calls, fmt.Sprintf("%s %s %s", name, dev, wait))
		if n.err != nil {
			return n.err
		}
		return os.WriteFile(filepath.Join(n.dir, name), nil, 0o600)
	})
	return n
}

func checkCalls(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func devNames(f *fakeDM) []string {
	var l []string
	for n := range f.devs {
		l = append(l, n)
	}
	slices.Sort(l)
	return l
}

func TestWhyNotGrow(t *testing.T) {
	for _, c := range []struct {
		removal, deletion bool
		want              error
	}{
		{true, true, nil},
		{false, true, ErrDeferredRemovalOff},
		{true, false, ErrDeferredDeletionOff},
		{false, false, ErrDeferredRemovalOff},
	} {
		got := WhyNotGrow(engine.Storage{Driver: "devicemapper", DeferredRemoval: c.removal, DeferredDeletion: c.deletion})
		if got != c.want {
			t.Errorf("removal %v, deletion %v: got %v, want %v", c.removal, c.deletion, got, c.want)
		}
	}
}

func TestNew(t *testing.T) {
	f := newFakeDM("docker-thinpool", device, "docker-1"+stagingSuffix, "other"+stagingSuffix+".x", tmp)
	var opened []string
	ctl := &dm.Control{}
	if control(ctl) != deviceControl(ctl) {
		t.Fatal("control does not give New's control itself")
	}
	fakePool(t, f, nil)
	wrapped := openPool
	set(t, &openPool, func(c *dm.Control, name string) (*thinpool.Pool, error) {
		if c != ctl {
			t.Errorf("openPool got control %p, want New's %p", c, ctl)
		}
		opened = append(opened, name)
		return wrapped(c, name)
	})
	st := engine.Storage{Driver: "devicemapper", PoolName: "docker-thinpool", DataRoot: "/var/lib/docker"}
	b, err := New(nil, ctl, st)
	if err != nil {
		t.Fatal(err)
	}
	checkCalls(t, "pools opened", opened, []string{"docker-thinpool"})
	checkCalls(t, "device-mapper calls", f.calls, []string{"list", "remove docker-1" + stagingSuffix, "remove " + tmp})
	checkCalls(t, "devices left", devNames(f), []string{device, "docker-thinpool", "other" + stagingSuffix + ".x"})
	if b.Name != "docker-thinpool" || b.Dev != poolDev || b.Ctl != ctl {
		t.Errorf("pool: got %q %v %p, want docker-thinpool %v %p", b.Name, b.Dev, b.Ctl, poolDev, ctl)
	}
	if b.storage != st {
		t.Errorf("storage: got %+v, want %+v", b.storage, st)
	}
	if b.Log != logrus.StandardLogger() {
		t.Errorf("Log is not the standard logger")
	}
	if b.Holds() != 0 {
		t.Errorf("a new backend holds %d devices", b.Holds())
	}
}

func TestNewFails(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name     string
		driver   string
		poolErr  error
		fail     map[string]error
		wantErr  error  // errors.Is, when set
		wantText string // in the error
		backend  bool   // New returns the backend along with the error
		calls    []string
	}{
		{name: "another driver", driver: "overlay2", wantText: `storage driver is "overlay2"`},
		{name: "no pool", driver: "devicemapper", poolErr: dm.ErrNotFound, wantErr: dm.ErrNotFound, wantText: `the engine's thin pool "docker-thinpool"`},
		{name: "list fails", driver: "devicemapper", fail: map[string]error{"list": boom}, wantErr: boom, backend: true, calls: []string{"list"}},
		{name: "staging device stays", driver: "devicemapper", fail: map[string]error{"remove " + tmp: boom}, wantErr: boom, backend: true,
			wantText: "removing " + tmp + ", left by an interrupted activation", calls: []string{"list", "remove " + tmp}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeDM(tmp)
			f.fail = c.fail
			fakePool(t, f, c.poolErr)
			pools := 0
			wrapped := openPool
			set(t, &openPool, func(ctl *dm.Control, name string) (*thinpool.Pool, error) {
				pools++
				return wrapped(ctl, name)
			})
			b, err := New(nil, &dm.Control{}, engine.Storage{Driver: c.driver, PoolName: "docker-thinpool"})
			if err == nil {
				t.Fatal("New succeeded")
			}
			if c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Errorf("error %v is not %v", err, c.wantErr)
			}
			if !strings.Contains(err.Error(), c.wantText) {
				t.Errorf("error %q does not say %q", err, c.wantText)
			}
			if (b != nil) != c.backend {
				t.Errorf("backend returned: %v, want %v", b != nil, c.backend)
			}
			if c.driver != "devicemapper" && pools != 0 {
				t.Errorf("the pool was opened for driver %s", c.driver)
			}
			checkCalls(t, "device-mapper calls", f.calls, c.calls)
		})
	}
}

func TestActivate(t *testing.T) {
	const sz = 10 << 30
	table := "0 20971520 thin 253:7 42"
	boom := errors.New("boom")
	for _, c := range []struct {
		name    string
		before  []string // devices present
		fail    map[string]error
		size    int64
		wantErr error // errors.Is; any error when boom is not injected
		calls   []string
		after   []string // devices present
		table   string   // of device, when activated
	}{
		{name: "absent device", calls: []string{"info " + tmp, "create " + tmp, "load " + tmp + " " + table, "resume " + tmp, "rename " + tmp + " " + device},
			after: []string{device}, table: table},
		{name: "size rounded down to sectors", size: sz + 511, calls: []string{"info " + tmp, "create " + tmp, "load " + tmp + " " + table, "resume " + tmp, "rename " + tmp + " " + device},
			after: []string{device}, table: table},
		{name: "staging device left by a crash", before: []string{tmp},
			calls: []string{"info " + tmp, "remove " + tmp, "create " + tmp, "load " + tmp + " " + table, "resume " + tmp, "rename " + tmp + " " + device},
			after: []string{device}, table: table},
		{name: "staging device cannot be removed", before: []string{tmp}, fail: map[string]error{"remove " + tmp: boom}, wantErr: boom,
			calls: []string{"info " + tmp, "remove " + tmp}, after: []string{tmp}},
		{name: "create fails", fail: map[string]error{"create " + tmp: boom}, wantErr: boom,
			calls: []string{"info " + tmp, "create " + tmp}},
		{name: "load fails", fail: map[string]error{"load " + tmp + " " + table: boom}, wantErr: boom,
			calls: []string{"info " + tmp, "create " + tmp, "load " + tmp + " " + table, "remove " + tmp}},
		{name: "resume fails", fail: map[string]error{"resume " + tmp: boom}, wantErr: boom,
			calls: []string{"info " + tmp, "create " + tmp, "load " + tmp + " " + table, "resume " + tmp, "remove " + tmp}},
		{name: "the engine made the device meanwhile", before: []string{device},
			calls: []string{"info " + tmp, "create " + tmp, "load " + tmp + " " + table, "resume " + tmp, "rename " + tmp + " " + device, "remove " + tmp},
			after: []string{device}},
		{name: "rename and cleanup fail", fail: map[string]error{"rename " + tmp + " " + device: boom, "remove " + tmp: errors.New("busy")}, wantErr: boom,
			calls: []string{"info " + tmp, "create " + tmp, "load " + tmp + " " + table, "resume " + tmp, "rename " + tmp + " " + device, "remove " + tmp},
			after: []string{tmp}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeDM()
			b := newBackend(t, f)
			for _, n := range c.before {
				f.add(n)
			}
			if c.fail != nil {
				f.fail = c.fail
			}
			if c.size == 0 {
				c.size = sz
			}
			err := b.Activate(device, 42, c.size)
			switch {
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Errorf("error %v, want %v", err, c.wantErr)
			case c.wantErr == nil && c.table == "" && err == nil:
				t.Error("Activate succeeded")
			case c.table != "" && err != nil:
				t.Errorf("Activate: %v", err)
			}
			checkCalls(t, "device-mapper calls", f.calls, c.calls)
			checkCalls(t, "devices", devNames(f), c.after)
			if got := f.tables[device]; got != c.table {
				t.Errorf("table of %s: got %q, want %q", device, got, c.table)
			}
			if c.table != "" && !f.devs[device].LiveTable {
				t.Errorf("%s has no live table", device)
			}
		})
	}
}

func TestHold(t *testing.T) {
	f := newFakeDM(device)
	b := newBackend(t, f)
	n := fakeNodes(t)
	if b.Held(device) {
		t.Fatal("held before Hold")
	}
	if err := b.Hold(device); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, "device-mapper calls", f.calls, []string{"info " + device})
	checkCalls(t, "nodes ensured", n.calls, []string{fmt.Sprintf("%s %s 3ms", device, f.devs[device].Dev)})
	if !b.Held(device) || b.Holds() != 1 {
		t.Errorf("after Hold: held %v, holds %d", b.Held(device), b.Holds())
	}
	file := b.holds.files[device]
	if file == nil || file.Name() != filepath.Join(n.dir, device) {
		t.Fatalf("held file %v, want %s open", file, filepath.Join(n.dir, device))
	}

	// Holding again asks nothing of the kernel, and keeps the same open file.
	f.calls, n.calls = nil, nil
	if err := b.Hold(device); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, "device-mapper calls, held again", f.calls, nil)
	checkCalls(t, "nodes ensured, held again", n.calls, nil)
	if b.holds.files[device] != file || b.Holds() != 1 {
		t.Errorf("held again: file %p (was %p), holds %d", b.holds.files[device], file, b.Holds())
	}
}

func TestHoldFails(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name    string
		exists  bool
		nodeErr error
		noFile  bool // ensureNode succeeds but leaves no node
		wantErr error
		nodes   int // ensureNode calls
	}{
		{name: "no device", wantErr: dm.ErrNotFound},
		{name: "no node", exists: true, nodeErr: boom, wantErr: boom, nodes: 1},
		{name: "node does not open", exists: true, noFile: true, wantErr: os.ErrNotExist, nodes: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeDM()
			if c.exists {
				f.add(device)
			}
			b := newBackend(t, f)
			n := fakeNodes(t)
			n.err = c.nodeErr
			if c.noFile {
				set(t, &ensureNode, func(string, dm.Dev, time.Duration) error { n.calls = append(n.calls, "none"); return nil })
			}
			err := b.Hold(device)
			if !errors.Is(err, c.wantErr) {
				t.Errorf("error %v, want %v", err, c.wantErr)
			}
			if len(n.calls) != c.nodes {
				t.Errorf("ensureNode called %d times, want %d", len(n.calls), c.nodes)
			}
			if b.Held(device) || b.Holds() != 0 {
				t.Errorf("held after a failed Hold")
			}
		})
	}
}

func TestRelease(t *testing.T) {
	busy := &dm.Error{Op: "remove", Name: device, Err: unix.EBUSY}
	gone := &dm.Error{Op: "remove", Name: device, Err: dm.ErrNotFound}
	for _, c := range []struct {
		name     string
		held     bool
		deferred bool
		opens    int32
		vanish   bool // the device is gone before Release
		fail     map[string]error
		want     bool
		calls    []string
		exists   bool // the device is still there after
		deferAft bool // with a deferred removal
		warn     bool
		wait     time.Duration                // releaseWait
		after    func(f *fakeDM, call string) // fakeDM.after
	}{
		{name: "the engine asked for removal", held: true, deferred: true, opens: 1, want: true,
			calls: []string{"info " + device, "cancel-deferred " + device, "remove " + device}},
		{name: "another opener", held: true, deferred: true, opens: 2, want: true,
			calls: []string{"info " + device}, exists: true, deferAft: true},
		{name: "no removal asked", held: true, opens: 1, want: true,
			calls: []string{"info " + device}, exists: true},
		{name: "not held", deferred: true, opens: 1,
			calls: []string{"info " + device}, exists: true, deferAft: true},
		{name: "device gone", held: true, vanish: true, want: true, calls: []string{"info " + device}},
		{name: "cancel refused", held: true, deferred: true, opens: 1, want: true, fail: map[string]error{"cancel-deferred " + device: errors.New("no")},
			calls: []string{"info " + device, "cancel-deferred " + device}, exists: true, deferAft: true},
		{name: "opened meanwhile", held: true, deferred: true, opens: 1, want: true, fail: map[string]error{"remove " + device: busy},
			calls: []string{"info " + device, "cancel-deferred " + device, "remove " + device, "remove --deferred " + device}, exists: true, deferAft: true},
		{name: "removed meanwhile", held: true, deferred: true, opens: 1, want: true, fail: map[string]error{"remove " + device: gone},
			calls: []string{"info " + device, "cancel-deferred " + device, "remove " + device}, exists: true},
		{name: "removed before the deferral", held: true, deferred: true, opens: 1, want: true, fail: map[string]error{"remove " + device: busy, "remove --deferred " + device: gone},
			calls: []string{"info " + device, "cancel-deferred " + device, "remove " + device, "remove --deferred " + device}, exists: true},
		{name: "the other opener closes", held: true, deferred: true, opens: 2, want: true, wait: time.Minute,
			after: func(f *fakeDM, call string) {
				if n := count(f.calls, call); call == "info "+device && n == 3 {
					i := f.devs[device]
					i.OpenCount = 1
					f.devs[device] = i
				}
			},
			calls: []string{"info " + device, "info " + device, "info " + device, "cancel-deferred " + device, "remove " + device}},
		{name: "an opener comes and goes", held: true, deferred: true, opens: 1, want: true, wait: time.Minute, fail: map[string]error{"remove " + device: busy},
			after: func(f *fakeDM, call string) {
				if call == "remove "+device && count(f.calls, call) == 2 {
					delete(f.fail, call)
				}
			},
			calls: []string{"info " + device, "cancel-deferred " + device, "remove " + device, "remove " + device, "remove " + device}},
		{name: "the device vanishes while another opener has it", held: true, deferred: true, opens: 2, want: true, wait: time.Minute,
			after: func(f *fakeDM, call string) {
				if call == "info "+device && count(f.calls, call) == 2 {
					delete(f.devs, device)
				}
			},
			calls: []string{"info " + device, "info " + device}},
		{name: "deferral not given back", held: true, deferred: true, opens: 1, want: true, fail: map[string]error{"remove " + device: busy, "remove --deferred " + device: busy},
			calls: []string{"info " + device, "cancel-deferred " + device, "remove " + device, "remove --deferred " + device}, exists: true, warn: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeDM(device)
			b := newBackend(t, f)
			fakeNodes(t)
			log, hook := logtest.NewNullLogger()
			b.Log = log
			var file *os.File
			if c.held {
				if err := b.Hold(device); err != nil {
					t.Fatal(err)
				}
				file = b.holds.files[device]
			}
			i := f.devs[device]
			i.DeferredRemove, i.OpenCount = c.deferred, c.opens
			f.devs[device] = i
			if c.vanish {
				delete(f.devs, device)
			}
			f.calls = nil
			f.fail = c.fail
			set(t, &releaseWait, c.wait)
			set(t, &releasePoll, 0)
			if c.after != nil {
				f.after = func(call string) { c.after(f, call) }
			}

			if got := b.Release(device); got != c.want {
				t.Errorf("Release: %v, want %v", got, c.want)
			}
			checkCalls(t, "device-mapper calls", f.calls, c.calls)
			if b.Held(device) || b.Holds() != 0 {
				t.Error("still held")
			}
			if file != nil {
				if _, err := file.Stat(); !errors.Is(err, os.ErrClosed) {
					t.Errorf("the held file is still open (stat: %v)", err)
				}
			}
			i, exists := f.devs[device]
			if exists != c.exists || i.DeferredRemove != c.deferAft {
				t.Errorf("device after: exists %v, deferred removal %v; want %v, %v", exists, i.DeferredRemove, c.exists, c.deferAft)
			}
			entries := hook.AllEntries()
			switch {
			case !c.warn && len(entries) != 0:
				t.Errorf("logged %q", entries[0].Message)
			case c.warn && len(entries) != 1:
				t.Errorf("logged %d entries, want a warning", len(entries))
			case c.warn:
				e := entries[0]
				if e.Level != logrus.WarnLevel || e.Data["device"] != device || !errors.Is(e.Data[logrus.ErrorKey].(error), unix.EBUSY) {
					t.Errorf("logged %v %q %v", e.Level, e.Message, e.Data)
				}
			}
		})
	}
}

// count is how many times call is in calls.
func count(calls []string, call string) int {
	n := 0
	for _, c := range calls {
		if c == call {
			n++
		}
	}
	return n
}

package guard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/thin"
)

// fakePool is a pool whose numbers the test sets; fakeExt "extends" it. mu guards the numbers
// while the guard runs in other goroutines.
type fakePool struct {
	mu                   sync.Mutex
	blocks, used         uint64 // 64 KiB data blocks
	metaBlocks, metaUsed uint64
	mode                 string
	needsCheck           bool
	failed               bool   // the kernel says Fail
	uuid                 string // device-mapper UUID ("LVM-…" for an LVM thin pool)
	readErr              error  // status reads fail
	reads                int    // status reads
}

func (f *fakePool) Info(string) (dm.Info, error) {
	return dm.Info{Name: "pool", LiveTable: true, UUID: f.uuid}, nil
}
func (f *fakePool) Table(string) ([]dm.Target, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []dm.Target{{Length: f.blocks * 128, Type: "thin-pool", Params: "7:1 7:0 128 32768 1 skip_block_zeroing"}}, nil
}
func (f *fakePool) Status(string) ([]dm.Target, error) { panic("the guard must read with NOFLUSH") }
func (f *fakePool) StatusNoFlush(string) ([]dm.Target, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.readErr != nil {
		return nil, f.readErr
	}
	if f.failed {
		return []dm.Target{{Length: f.blocks * 128, Type: "thin-pool", Params: "Fail"}}, nil
	}
	nc := "-"
	if f.needsCheck {
		nc = "needs_check"
	}
	return []dm.Target{{Length: f.blocks * 128, Type: "thin-pool", Params: fmt.Sprintf("1 %d/%d %d/%d - %s discard_passdown queue_if_no_space %s 1024", f.metaUsed, f.metaBlocks, f.used, f.blocks, f.mode, nc)}}, nil
}
func (f *fakePool) Load(string, []dm.Target) error { return errors.New("unused") }
func (f *fakePool) ClearInactive(string) error     { return nil }
func (f *fakePool) Resume(string) error            { return nil }
func (f *fakePool) WaitEvent(string, uint32, time.Duration) (dm.Info, error) {
	return dm.Info{}, nil
}

type fakeExt struct {
	pool    *fakePool
	kind    string // "" is loop-lvm
	room    int64
	roomErr error
	err     error
	ignored bool          // the "kernel" does not take the size in (needs_check)
	delay   time.Duration // how long an extension takes

	mu       sync.Mutex
	calls    []string
	inFlight int
	overlap  bool // two extensions ran at once
}

func (e *fakeExt) Kind() string {
	if e.kind == "" {
		return "loop-lvm"
	}
	return e.kind
}
func (e *fakeExt) Room() (int64, string, error) {
	return e.room, fmt.Sprintf("room %d", e.room), e.roomErr
}
func (e *fakeExt) Extend(p thin.Pool, data, meta int64) (time.Duration, error) {
	e.mu.Lock()
	e.calls = append(e.calls, fmt.Sprintf("%d %d", data, meta))
	e.inFlight++
	e.overlap = e.overlap || e.inFlight > 1
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.inFlight--
		e.mu.Unlock()
	}()
	time.Sleep(e.delay)
	if e.err != nil || e.ignored {
		return 0, e.err
	}
	e.pool.mu.Lock()
	defer e.pool.mu.Unlock()
	e.pool.blocks = uint64(data / 65536)
	e.pool.metaBlocks = uint64(meta / 4096)
	e.pool.mode = "rw"
	return time.Millisecond, nil
}

type rec struct {
	ext     []Extension
	blocked bool
	reads   int
}

func (r *rec) Read(Usage)           { r.reads++ }
func (r *rec) Event(time.Time)      {}
func (r *rec) Extended(e Extension) { r.ext = append(r.ext, e) }
func (r *rec) Blocked(b bool)       { r.blocked = b }

func newGuard(p *fakePool, e *fakeExt, pol Policy) (*Guard, *rec, *test.Hook) {
	log, hook := test.NewNullLogger()
	r := &rec{}
	return &Guard{Pool: "pool", Ctl: p, Ext: e, Policy: pol, Log: log, Obs: r}, r, hook
}

func logged(h *test.Hook, lvl logrus.Level, part string) bool {
	for _, e := range h.AllEntries() {
		if e.Level == lvl && strings.Contains(e.Message, part) {
			return true
		}
	}
	return false
}

func TestCheckExtendsDataAndMetadata(t *testing.T) {
	p := &fakePool{blocks: 49152, used: 40000, metaBlocks: 512, metaUsed: 450, mode: "rw"} // 3 GiB at 81 %, 2 MiB metadata at 88 %
	e := &fakeExt{pool: p, room: 100 * gib}
	g, r, h := newGuard(p, e, DefaultPolicy())
	if w := g.Check(); w != 0 {
		t.Errorf("after an extension the guard should look again at once, waits %v", w)
	}
	if len(e.calls) != 1 || len(r.ext) != 2 || r.ext[0].Part != "data" || r.ext[1].Part != "metadata" || r.ext[0].Err != nil {
		t.Fatalf("calls %v, extensions %+v", e.calls, r.ext)
	}
	if got := int64(p.blocks) * 65536; got != 3*gib+roundUp(3*gib/5, 65536) {
		t.Errorf("data now %d", got)
	}
	if !logged(h, logrus.InfoLevel, "extended the pool's data from 3.00GiB") {
		t.Errorf("no info line for the extension: %v", h.AllEntries())
	}
	// Now under the threshold: nothing to do, and not blocked.
	e.calls = nil
	if g.Check(); len(e.calls) != 0 || r.blocked {
		t.Errorf("second check extended again: %v (blocked %v)", e.calls, r.blocked)
	}
}

func TestCheckBlockedAndOff(t *testing.T) {
	p := &fakePool{blocks: 49152, used: 49152, metaBlocks: 512, metaUsed: 10, mode: "out_of_data_space"}
	e := &fakeExt{pool: p, room: 0}
	g, r, h := newGuard(p, e, DefaultPolicy())
	g.Check()
	if len(e.calls) != 0 || !r.blocked {
		t.Fatalf("no room: calls %v, blocked %v", e.calls, r.blocked)
	}
	if !logged(h, logrus.WarnLevel, "no room for data: room 0") || !logged(h, logrus.ErrorLevel, "nearly full") {
		t.Errorf("want a warning with the reason and an error for the full pool: %v", h.AllEntries())
	}
	if c, note := g.Ceiling(3 * gib); c != 3*gib || !strings.Contains(note, "cannot extend") {
		t.Errorf("Ceiling while blocked = %d %q", c, note)
	}
	n := len(h.AllEntries())
	g.Check()
	if len(h.AllEntries()) != n {
		t.Errorf("the same reason was logged twice")
	}

	pol := DefaultPolicy()
	pol.Extend = false
	e = &fakeExt{pool: p, room: 100 * gib}
	g, r, h = newGuard(p, e, pol)
	g.Check()
	if len(e.calls) != 0 || !r.blocked || !logged(h, logrus.WarnLevel, "GUARD=off") {
		t.Fatalf("GUARD=off extended (%v) or did not warn", e.calls)
	}
}

func TestCheckFailures(t *testing.T) {
	p := &fakePool{blocks: 49152, used: 45000, metaBlocks: 512, metaUsed: 10, mode: "rw"}
	e := &fakeExt{pool: p, room: 100 * gib, err: errors.New("lvextend: Insufficient free space")}
	g, r, h := newGuard(p, e, DefaultPolicy())
	g.Check()
	if len(r.ext) != 1 || r.ext[0].Err == nil || !r.blocked || !logged(h, logrus.ErrorLevel, "failed") {
		t.Fatalf("a failed extension must be counted, logged and block: %+v", r.ext)
	}
	// The kernel ignores the new size (needs_check): an error, not a success.
	e = &fakeExt{pool: p, room: 100 * gib, ignored: true}
	g, r, _ = newGuard(p, e, DefaultPolicy())
	g.Check()
	if len(r.ext) != 1 || r.ext[0].Err == nil || !strings.Contains(r.ext[0].Err.Error(), "did not take the new size") {
		t.Fatalf("want the unchanged size reported: %+v", r.ext)
	}
	// A pool that needs a check is never extended.
	p.needsCheck = true
	e = &fakeExt{pool: p, room: 100 * gib}
	g, _, h = newGuard(p, e, DefaultPolicy())
	g.Check()
	if len(e.calls) != 0 || !logged(h, logrus.ErrorLevel, "needs a check") {
		t.Fatalf("extended a pool that needs a check: %v", e.calls)
	}
}

func TestCeiling(t *testing.T) {
	p := &fakePool{blocks: 49152, used: 10, metaBlocks: 512, metaUsed: 10, mode: "rw"}
	pol := DefaultPolicy()
	pol.MaxData = 10 * gib
	g, _, _ := newGuard(p, &fakeExt{pool: p, room: 100 * gib}, pol)
	if c, note := g.Ceiling(3 * gib); c != 10*gib || !strings.Contains(note, "may extend") {
		t.Errorf("capped ceiling = %d %q", c, note)
	}
	g, _, _ = newGuard(p, &fakeExt{pool: p, room: 2 * gib}, DefaultPolicy())
	if c, _ := g.Ceiling(3 * gib); c != 5*gib {
		t.Errorf("room-bound ceiling = %d", c)
	}
	pol.Extend = false
	g, _, _ = newGuard(p, &fakeExt{pool: p, room: 2 * gib}, pol)
	if c, note := g.Ceiling(3 * gib); c != 3*gib || note != "" {
		t.Errorf("GUARD=off ceiling = %d %q", c, note)
	}
}

func TestNextWaitTightensWhileFilling(t *testing.T) {
	g, _, _ := newGuard(&fakePool{}, &fakeExt{}, DefaultPolicy())
	u := Usage{DataUsed: gib, DataTotal: 10 * gib, MetaTotal: gib}
	if w := g.nextWait(&u); w != 10*time.Second {
		t.Errorf("first look waits %v", w)
	}
	u.DataUsed += mib // an event right after: filling, rate unknown yet
	if w := g.nextWait(&u); w != rateWindow {
		t.Errorf("filling with no rate yet waits %v, want %v", w, rateWindow)
	}
	g.prev.at = g.prev.at.Add(-time.Second) // 1 GiB/s since: 7 GiB to the threshold, look in 3.5 s
	u.DataUsed = 2 * gib
	if w := g.nextWait(&u); w < 3*time.Second || w > 4*time.Second {
		t.Errorf("filling at 1 GiB/s with 6 GiB left waits %v", w)
	}
	g.prev.at = g.prev.at.Add(-time.Second)
	u.DataUsed = 7*gib + 999*mib // 1 MiB before the threshold
	if w := g.nextWait(&u); w != minWait || !u.DataSoon {
		t.Errorf("just before the threshold waits %v, want %v, and the data is due soon (%v)", w, minWait, u.DataSoon)
	}
	// A window in which the writers were held (an extension's suspend) does not make the
	// guard believe the pool went idle: the rate halves, it does not vanish.
	u = Usage{DataUsed: 7*gib + 999*mib, DataTotal: 12 * gib, MetaTotal: gib}
	g.prev.at = g.prev.at.Add(-time.Second)
	if w := g.nextWait(&u); w > 2*time.Second {
		t.Errorf("after a stalled window waits %v; the rate was forgotten", w)
	}
	for i := 0; i < 30; i++ { // idle for a long time: back to the interval
		g.prev.at = g.prev.at.Add(-10 * time.Second)
		g.nextWait(&u)
	}
	if w := g.nextWait(&u); w != 10*time.Second {
		t.Errorf("an idle pool waits %v", w)
	}
}

// A pool on a device dmsize cannot grow (dm.thinpooldev on a partition): the guard says so when
// it starts, and once past the threshold it is blocked and says why with the numbers, without
// trying to extend. TestGuardRawBlockWarns is the same on a real raw pool (make test-long).
func TestRunWarnsForAPoolItCannotGrow(t *testing.T) {
	p := &fakePool{blocks: 16384, used: 8192, metaBlocks: 512, metaUsed: 10, mode: "rw"}
	log, h := test.NewNullLogger()
	r := &rec{}
	g := &Guard{Pool: "pool", Ctl: p, Ext: blockExtender("8:17"), Policy: DefaultPolicy(), Log: log, Obs: r}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	g.Run(ctx)
	if !logged(h, logrus.WarnLevel, "this pool cannot be extended by dmsize: the pool's data device 8:17 is neither a loop file nor an LVM volume") {
		t.Fatalf("no start-up warning naming the device: %v", h.AllEntries())
	}
	if r.blocked {
		t.Fatal("blocked at 50 % used")
	}

	p.mu.Lock()
	p.used = 14500 // past the 80 % threshold
	p.mu.Unlock()
	g.Check()
	if !r.blocked || len(r.ext) != 0 {
		t.Fatalf("past the threshold: blocked %v, extensions %v", r.blocked, r.ext)
	}
	if !logged(h, logrus.WarnLevel, "the pool needs more space and cannot get it") || !logged(h, logrus.WarnLevel, "neither a loop file nor an LVM volume") {
		t.Errorf("no warning with the reason once past the threshold: %v", h.AllEntries())
	}
}

// timerPool is a pool on a kernel without DM_DEV_ARM_POLL.
type timerPool struct{ *fakePool }

func (timerPool) EventsByTimer() bool { return true }

// On a kernel without the event poll the guard says once, at start, that it checks on its timer.
func TestRunSaysItWaitsOnTheTimer(t *testing.T) {
	for _, byTimer := range []bool{false, true} {
		p := &fakePool{blocks: 16384, used: 100, metaBlocks: 512, metaUsed: 10, mode: "rw"}
		var ctl Control = p
		if byTimer {
			ctl = timerPool{p}
		}
		log, h := test.NewNullLogger()
		g := &Guard{Pool: "pool", Ctl: ctl, Ext: &fakeExt{pool: p}, Policy: DefaultPolicy(), Log: log, Obs: &rec{}}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		g.Run(ctx)
		cancel()
		if got := logged(h, logrus.InfoLevel, "no device-mapper event poll"); got != byTimer {
			t.Errorf("on the timer %v: said so %v: %v", byTimer, got, h.AllEntries())
		}
	}
}

package guard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/thin"
	"github.com/dmsize/dmsize/size"
)

// Control is what the guard needs of device-mapper: *dm.Control, or a fake in tests.
type Control interface {
	thin.NoFlushMapper
	WaitEvent(name string, last uint32, timeout time.Duration) (dm.Info, error)
}

// Observer receives what the guard sees and does (the Prometheus metrics).
type Observer interface {
	Read(u Usage)
	Event(at time.Time)
	Extended(e Extension)
	Blocked(blocked bool)
}

// Extension is one extension of one part of the pool, done or failed.
type Extension struct {
	Part     string // "data" or "metadata"
	From, To int64  // bytes; To is what was asked for
	Err      error
	Seen     time.Time     // the read that found the part over the threshold; for a manual one, its start
	Live     time.Time     // the read that found the new size live
	Stall    time.Duration // how long the pool's I/O was held, where known
	// Message says what a manual extension (Guard.Extend) did, in words: "the pool's data is
	// already 3.00GiB" when it changed nothing (To == From), else from and to.
	Message string
}

// Guard watches one pool. Run it in one goroutine; Ceiling, Status and Extend may be called
// from any.
type Guard struct {
	Pool   string
	Ctl    Control // its own: WaitEvent's armed count belongs to the open file
	Ext    Extender
	Policy Policy
	Log    logrus.FieldLogger
	Obs    Observer

	mu       sync.Mutex // guards blocked, room, roomAt and the last read
	blocked  string
	roomAt   time.Time
	room     int64
	lastRead Usage     // the last read's usage, for Status
	lastAt   time.Time // when it was read; zero before the first read
	lastErr  string    // why the last read failed, "" when it did not

	// turn is held by Check and by Extend for all they do: the two never extend at once, and
	// the fields below, Check's own, are never touched by two goroutines at once.
	turnOnce  sync.Once
	turnCh    chan struct{}
	prev      sample
	rate      [2]float64 // bytes/s, data and metadata
	loggedPct [2]int     // the last data and metadata deciles logged
	errLogged bool       // the "nearly full and cannot extend" error is out for this episode
	readErr   string
	lastTook  time.Duration // how long the last extension took to be live
	readTook  time.Duration // how long the last status read took
}

type sample struct {
	at   time.Time
	used [2]int64 // data, metadata
}

// minWait bounds how often a filling pool is read: an ioctl that commits nothing. minLead is
// the least time ahead of the threshold at which a fast-filling part is extended.
const (
	minWait    = 100 * time.Millisecond
	minLead    = 500 * time.Millisecond
	rateWindow = 200 * time.Millisecond
)

// Run watches until ctx ends.
func (g *Guard) Run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		if c, ok := g.Ctl.(interface{ Close() error }); ok {
			c.Close() // wakes WaitEvent
		}
	})
	defer stop()
	info, err := g.Ctl.Info(g.Pool)
	if err != nil {
		g.Log.WithError(err).Error("pool guard: cannot see the pool; not guarding it")
		return
	}
	log := g.Log.WithFields(logrus.Fields{"pool": g.Pool, "kind": g.Ext.Kind()})
	if why, ok := fixed(g.Ext); ok {
		log.Warn("pool guard: this pool cannot be extended by dmsize: " + why)
	}
	log.WithFields(logrus.Fields{"extend": g.Policy.Extend, "threshold": g.Policy.Threshold, "step": g.Policy.Step.String(),
		"max_pool_size": g.Policy.MaxData, "min_host_free": g.Policy.MinHostFree, "interval": g.Policy.Interval.String()}).Info("pool guard watching")
	if t, ok := g.Ctl.(interface{ EventsByTimer() bool }); ok && t.EventsByTimer() {
		log.Info("pool guard: this kernel has no device-mapper event poll (DM_DEV_ARM_POLL, Linux 4.13): it checks the pool on its timer, down to 100ms while the pool fills")
	}
	last := info.EventNr
	for ctx.Err() == nil {
		wait := g.Check()
		info, err := g.Ctl.WaitEvent(g.Pool, last, wait)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			g.Log.WithError(err).Warn("pool guard: waiting for the pool's events")
			time.Sleep(g.Policy.Interval)
			continue
		}
		if info.EventNr != last {
			last = info.EventNr
			g.Obs.Event(time.Now())
		}
	}
}

// turn is the guard's one-at-a-time token (see Guard.turnCh): send to take it, receive to
// give it back.
func (g *Guard) turn() chan struct{} {
	g.turnOnce.Do(func() { g.turnCh = make(chan struct{}, 1) })
	return g.turnCh
}

// read reads the pool without a flush and keeps what it saw for Status.
func (g *Guard) read() (thin.Pool, error) {
	p, err := thin.ReadPoolNoFlush(g.Ctl, g.Pool)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.lastErr = err.Error()
		return p, err
	}
	g.lastRead, g.lastAt, g.lastErr = UsageOf(p), time.Now(), ""
	return p, nil
}

// Check reads the pool once, extends it if it needs it, and returns how long to wait before
// the next look if no event comes first. It waits for a manual Extend under way.
func (g *Guard) Check() time.Duration {
	g.turn() <- struct{}{}
	defer func() { <-g.turn() }()
	log := g.Log.WithField("pool", g.Pool)
	readStart := time.Now()
	p, err := g.read()
	g.readTook = time.Since(readStart)
	if err != nil {
		if g.readErr != err.Error() {
			log.WithError(err).Error("pool guard: reading the pool")
			g.readErr = err.Error()
		}
		return g.Policy.Interval
	}
	g.readErr = ""
	if p.Status.Fail || p.Status.NeedsCheck {
		if !g.errLogged {
			log.Errorf("pool guard: the pool has failed or needs a check (thin_check); not extending it (status %+v)", p.Status)
			g.errLogged = true
		}
		return g.Policy.Interval
	}
	u := UsageOf(p)
	g.Obs.Read(u)
	g.logDeciles(log, u)
	wait := g.nextWait(&u)

	log.WithFields(logrus.Fields{"data_used": u.DataUsed, "data_size": u.DataTotal, "read_ms": g.readTook.Milliseconds(),
		"wait_ms": wait.Milliseconds(), "data_soon": u.DataSoon, "meta_soon": u.MetaSoon}).Debug("pool read")
	if needData, needMeta := g.Policy.needs(u); !needData && !needMeta {
		g.setBlocked(log, u, "")
		return wait
	}
	if !g.Policy.Extend {
		g.setBlocked(log, u, "the pool guard is off (GUARD=off)")
		return wait
	}
	room, why, err := g.Ext.Room()
	if err != nil {
		g.setBlocked(log, u, "cannot tell how much room the pool has: "+err.Error())
		return g.Policy.Interval
	}
	g.mu.Lock()
	g.room, g.roomAt = room, time.Now()
	g.mu.Unlock()
	plan := g.Policy.Plan(u, room, why)
	if !plan.Grows(u) {
		g.setBlocked(log, u, plan.Blocked)
		return g.Policy.Interval
	}
	seen := time.Now()
	au, stall, live, extErr := g.apply(p, plan.Data, plan.Meta)
	for _, part := range []struct {
		name             string
		from, to, usedAt int64
		ratio            float64
	}{{"data", u.DataTotal, plan.Data, u.DataUsed, u.DataRatio()}, {"metadata", u.MetaTotal, plan.Meta, u.MetaUsed, u.MetaRatio()}} {
		if part.to <= part.from {
			continue
		}
		e := Extension{Part: part.name, From: part.from, To: part.to, Err: extErr, Seen: seen, Live: live, Stall: stall}
		g.Obs.Extended(e)
		f := log.WithFields(logrus.Fields{"part": part.name, "from": part.from, "to": part.to, "used": part.usedAt,
			"used_ratio": fmt.Sprintf("%.3f", part.ratio), "ms": live.Sub(seen).Milliseconds(), "stall_ms": stall.Milliseconds(), "kind": g.Ext.Kind()})
		if extErr != nil {
			f.WithError(extErr).Errorf("pool guard: extending the pool's %s from %s to %s failed (%s used)", part.name, size.Decimal(part.from), size.Decimal(part.to), size.Decimal(part.usedAt))
		} else {
			f.Infof("pool guard: extended the pool's %s from %s to %s (%s used, %.0f%%)", part.name, size.Decimal(part.from), size.Decimal(part.to), size.Decimal(part.usedAt), 100*part.ratio)
		}
	}
	if extErr != nil {
		g.setBlocked(log, u, "extending failed: "+extErr.Error())
		return g.Policy.Interval
	}
	g.setBlocked(log, au, plan.Blocked)
	return 0 // look again at once: one step may not be enough
}

// apply has the extender make the pool p's data and metadata data and meta bytes, reads the
// pool back and checks that the kernel took the sizes in. It returns the usage read back, how
// long the pool's I/O was held, and when the new sizes were seen live. The caller holds the
// turn.
func (g *Guard) apply(p thin.Pool, data, meta int64) (Usage, time.Duration, time.Time, error) {
	start := time.Now()
	stall, extErr := g.Ext.Extend(p, data, meta)
	after, err := g.read()
	live := time.Now()
	g.lastTook = live.Sub(start)
	if err != nil {
		extErr = errors.Join(extErr, err)
	}
	au := UsageOf(after)
	if extErr == nil && (au.DataTotal < data || au.MetaTotal < meta) {
		extErr = fmt.Errorf("the kernel did not take the new size in (data %s, metadata %s after the reload; needs_check=%v)",
			size.Decimal(au.DataTotal), size.Decimal(au.MetaTotal), after.Status.NeedsCheck)
	}
	return au, stall, live, extErr
}

// nextWait predicts, from the fill rate, when a part reaches the threshold and looks again
// halfway there; an idle pool is read every Interval. A part that will reach the threshold
// sooner than an extension takes is marked Soon: waiting for it to cross would let the writers
// outrun the extension. That time is the last extension's plus the last status read's (a read
// waits for the pool's metadata lock, held while a busy pool commits), and at least minLead.
//
// The rate is measured over windows of at least rateWindow, and decays by half a window
// rather than dropping at once: the window that spans an extension sees the writers held by
// the suspend, and trusting it would put the next look far too late.
func (g *Guard) nextWait(u *Usage) time.Duration {
	now := time.Now()
	wait := g.Policy.Interval
	lead := max(g.lastTook+g.readTook, minLead)
	used := [2]int64{u.DataUsed, u.MetaUsed}
	if g.prev.at.IsZero() {
		g.prev = sample{at: now, used: used}
	} else if dt := now.Sub(g.prev.at); dt >= rateWindow {
		for i := range used {
			g.rate[i] = max(float64(used[i]-g.prev.used[i])/dt.Seconds(), g.rate[i]/2)
		}
		g.prev = sample{at: now, used: used}
	} else if used != g.prev.used {
		wait = rateWindow // filling, but too little seen to tell how fast
	}
	for i, part := range []struct {
		total int64
		soon  *bool
	}{{u.DataTotal, &u.DataSoon}, {u.MetaTotal, &u.MetaSoon}} {
		left := g.Policy.Threshold*float64(part.total) - float64(used[i])
		if g.rate[i] > 0 && left > 0 {
			eta := time.Duration(left / g.rate[i] * float64(time.Second))
			wait = min(wait, eta/2)
			*part.soon = eta <= lead
		}
	}
	return max(wait, minWait)
}

// setBlocked records why a needed extension cannot happen ("" once it is no longer needed or
// done), logging a warning when the reason changes and an error once the pool is nearly full.
func (g *Guard) setBlocked(log logrus.FieldLogger, u Usage, why string) {
	g.mu.Lock()
	changed := g.blocked != why
	g.blocked = why
	g.mu.Unlock()
	g.Obs.Blocked(why != "")
	f := log.WithFields(logrus.Fields{"data_used": u.DataUsed, "data_size": u.DataTotal, "metadata_used": u.MetaUsed, "metadata_size": u.MetaTotal})
	if why == "" {
		g.errLogged = false
		return
	}
	if changed {
		f.Warnf("pool guard: the pool needs more space and cannot get it: %s (data %s of %s used, metadata %s of %s)", why,
			size.Decimal(u.DataUsed), size.Decimal(u.DataTotal), size.Decimal(u.MetaUsed), size.Decimal(u.MetaTotal))
	}
	if !g.errLogged && (u.OutOfData || u.DataRatio() >= 0.95 || u.MetaRatio() >= 0.95) {
		f.Errorf("pool guard: the pool is nearly full (data %.0f%%, metadata %.0f%%, mode %s) and cannot be extended: %s; writes in every container will fail when it is full",
			100*u.DataRatio(), 100*u.MetaRatio(), modeOf(u), why)
		g.errLogged = true
	}
}

// modeOf is the pool's mode as Usage.Mode says; a Usage made by hand, without one, is rw or
// out_of_data_space.
func modeOf(u Usage) string {
	switch {
	case u.Mode != "":
		return u.Mode
	case u.OutOfData:
		return "out_of_data_space"
	}
	return "rw"
}

// logDeciles logs the pool's use at info level each time data or metadata moves into another
// tenth, so the log carries the numbers the metrics have without a line per read.
func (g *Guard) logDeciles(log logrus.FieldLogger, u Usage) {
	d, m := int(10*u.DataRatio())+1, int(10*u.MetaRatio())+1 // +1: 0 means never logged
	if d == g.loggedPct[0] && m == g.loggedPct[1] {
		return
	}
	g.loggedPct = [2]int{d, m}
	log.WithFields(logrus.Fields{"data_used": u.DataUsed, "data_size": u.DataTotal, "metadata_used": u.MetaUsed, "metadata_size": u.MetaTotal}).
		Infof("pool: data %.0f%% used (%s of %s), metadata %.0f%% (%s of %s)", 100*u.DataRatio(), size.Decimal(u.DataUsed), size.Decimal(u.DataTotal),
			100*u.MetaRatio(), size.Decimal(u.MetaUsed), size.Decimal(u.MetaTotal))
}

// roomMaxAge bounds how stale Ceiling's view of the backing store's room may be.
const roomMaxAge = 30 * time.Second

// Ceiling is the data size the over-commit bound for dm.size should count with: what the
// guard may still extend the pool to, or poolData when it cannot extend. note says which, in
// words, for a rejection.
func (g *Guard) Ceiling(poolData int64) (int64, string) {
	g.mu.Lock()
	blocked, room, roomAt := g.blocked, g.room, g.roomAt
	g.mu.Unlock()
	if !g.Policy.Extend {
		return poolData, ""
	}
	if blocked != "" {
		return poolData, "the pool guard cannot extend the pool: " + blocked
	}
	if time.Since(roomAt) > roomMaxAge {
		r, _, err := g.Ext.Room()
		if err != nil {
			return poolData, ""
		}
		room = r
		g.mu.Lock()
		g.room, g.roomAt = r, time.Now()
		g.mu.Unlock()
	}
	ceiling := poolData + max(room, 0)
	if g.Policy.MaxData > 0 {
		ceiling = min(ceiling, max(g.Policy.MaxData, poolData))
	}
	if ceiling <= poolData {
		return poolData, ""
	}
	return ceiling, fmt.Sprintf("%s, the size the pool guard may extend the pool's %s data to", size.Decimal(ceiling), size.Decimal(poolData))
}

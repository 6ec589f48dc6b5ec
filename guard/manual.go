package guard

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/size"
)

// Request is a manual extension: the pool's data (or metadata) to Size bytes, or by Size bytes.
type Request struct {
	Metadata bool  // the metadata, not the data
	Size     int64 // bytes
	By       bool  // Size is added to the current size
}

// Extend is a manual extension (dmsize pool extend): it makes the pool's data, or its
// metadata when req.Metadata is set, req.Size bytes, or its current size plus req.Size when
// req.By, through the guard's Extender with the automatic path's caps and checks. Data is rounded up
// to the pool's data block and metadata to 4 KiB, as the automatic path does.
//
// A size at or below the current one changes nothing and is no error: the Extension has
// To == From and a Message saying "already ...". What the policy or the pool does not allow
// is an *errs.Refusal (with the Setting that refuses it), before anything changes: data over MAX_POOL_SIZE; more than a loop-lvm
// pool's room on the host (MIN_HOST_FREE) or a direct-lvm pool's volume group has free;
// metadata over the kernel's maximum (MaxMetadata); a pool on a plain block device; a pool
// that failed or needs a check. Any other error is a failure (reading the pool, asking the
// extender for its room, the extension itself, or the kernel not taking the new size in);
// failed extensions are counted and logged as the automatic path's are.
//
// GUARD=off (Policy.Extend false) does not refuse a manual extension: it only stops the
// guard's automatic ones, and an operator who asks for one has decided.
//
// Extend and Check take turns: Extend waits for a check under way (ctx bounds the wait) and
// holds off the next until it is done, so the guard and an operator never extend at once.
// Once begun, an extension runs to its end whatever ctx does: stopping lvextend or a reload
// half way would leave the pool suspended.
func (g *Guard) Extend(ctx context.Context, req Request) (Extension, error) {
	metadata, sz := req.Metadata, req.Size
	select {
	case g.turn() <- struct{}{}:
	case <-ctx.Done():
		return Extension{}, ctx.Err()
	}
	defer func() { <-g.turn() }()

	part := "data"
	if metadata {
		part = "metadata"
	}
	log := g.Log.WithFields(logrus.Fields{"pool": g.Pool, "part": part, "kind": g.Ext.Kind(), "manual": true})
	seen := time.Now()
	p, err := g.read()
	if err != nil {
		return Extension{Part: part}, fmt.Errorf("reading the pool: %w", err)
	}
	u := UsageOf(p)
	from := u.DataTotal
	if metadata {
		from = u.MetaTotal
	}
	e := Extension{Part: part, From: from, To: from}
	refuse := func(setting, reason string) (Extension, error) {
		log.WithField("setting", setting).Info("pool: manual extension refused: " + reason)
		return e, &errs.Refusal{Setting: setting, Reason: reason}
	}

	if u.Mode == "fail" || u.Mode == "needs_check" {
		return refuse("", fmt.Sprintf("the pool's mode is %s: dmsize does not extend a pool that has failed or needs a check (thin_check)", u.Mode))
	}
	want := sz
	if req.By {
		if sz > math.MaxInt64-from {
			return refuse("", fmt.Sprintf("%s + %d bytes is too large", size.Decimal(from), sz))
		}
		want = from + sz
	}
	if want <= from {
		e.Message = fmt.Sprintf("the pool's %s is already %s", part, size.Decimal(from))
		if want < from {
			e.Message += fmt.Sprintf(" (asked for %s; a pool never shrinks)", size.Decimal(max(want, 0)))
		}
		return e, nil
	}
	if why, ok := fixed(g.Ext); ok {
		return refuse("", "dmsize cannot grow this pool: "+why)
	}
	if metadata {
		want = roundUp(want, 4096)
		if want > MaxMetadata {
			return refuse("", fmt.Sprintf("the pool's metadata cannot be extended to %s: the kernel uses at most %s of a thin pool's metadata device (it is %s now)",
				size.Decimal(want), size.Format(MaxMetadata), size.Decimal(from)))
		}
	} else {
		if g.Policy.MaxData > 0 && want > g.Policy.MaxData {
			return refuse("MAX_POOL_SIZE", fmt.Sprintf("the pool's data cannot be extended to %s: MAX_POOL_SIZE=%s caps it (it is %s now)",
				size.Decimal(want), size.Format(g.Policy.MaxData), size.Decimal(from)))
		}
		want = roundUp(want, u.DataBlock)
		if g.Policy.MaxData > 0 && want > g.Policy.MaxData {
			want = roundDown(g.Policy.MaxData, u.DataBlock) // the cap is not a whole number of blocks
		}
		if want <= from {
			e.Message = fmt.Sprintf("the pool's data is already %s, as close to MAX_POOL_SIZE=%s as its %s blocks allow", size.Decimal(from), size.Format(g.Policy.MaxData), size.Decimal(u.DataBlock))
			return e, nil
		}
	}
	room, why, err := g.Ext.Room()
	if err != nil {
		return e, fmt.Errorf("cannot tell how much room the pool has: %w", err)
	}
	g.mu.Lock()
	g.room, g.roomAt = room, time.Now()
	g.mu.Unlock()
	if need := want - from; need > room {
		setting := ""
		if g.Ext.Kind() == "loop-lvm" {
			setting = "MIN_HOST_FREE"
		}
		return refuse(setting, fmt.Sprintf("the pool's %s cannot be extended from %s to %s: that takes %s and there is room for %s: %s",
			part, size.Decimal(from), size.Decimal(want), size.Decimal(need), size.Decimal(max(room, 0)), why))
	}

	e.To = want
	data, meta := u.DataTotal, want
	if !metadata {
		data, meta = want, u.MetaTotal
	}
	au, stall, live, err := g.apply(p, data, meta)
	g.mu.Lock()
	g.roomAt = time.Time{} // the extension took some: Ceiling asks again
	g.mu.Unlock()
	e.Err, e.Seen, e.Live, e.Stall = err, seen, live, stall
	g.Obs.Extended(e)
	now := au.DataTotal
	if metadata {
		now = au.MetaTotal
	}
	f := log.WithFields(logrus.Fields{"from": from, "to": want, "live": now, "ms": live.Sub(seen).Milliseconds(), "stall_ms": stall.Milliseconds()})
	if err != nil {
		f.WithError(err).Errorf("pool: extending the %s by hand from %s to %s failed", part, size.Decimal(from), size.Decimal(want))
		return e, err
	}
	e.Message = fmt.Sprintf("the pool's %s extended from %s to %s", part, size.Decimal(from), size.Decimal(now))
	f.Infof("pool: %s extended by hand from %s to %s", part, size.Decimal(from), size.Decimal(now))
	return e, nil
}

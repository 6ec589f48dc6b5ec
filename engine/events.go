package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/sirupsen/logrus"
)

// Event is a container event dmsize acts on.
type Event struct {
	Action string // "create", "start", "die", "destroy"
	ID     string
	Labels map[string]string
	Time   time.Time
}

// reconnectDelay is the first wait before re-subscribing after the stream ended; it doubles on
// each failure up to 5 s, and starts over after a connection that lasted a minute.
var reconnectDelay = 250 * time.Millisecond

// Follow subscribes to the engine's container events and calls handle for each, in order.
// Follow returns when ctx ends, once the last resync has returned.
//
// handle is called on the goroutine reading the stream, one event at a time: it must not
// block. The engine drops events for a subscriber that is 100 ms behind, so handle should only
// queue the work or start it elsewhere.
//
// The stream is never trusted alone. On every (re)connection resync is started, concurrently
// with reading the new stream, to catch up with anything the stream missed; at most one resync
// runs at a time: the previous one's context is cancelled when its stream ends, and it has
// returned before the next connection is made. A reconnection resumes the stream from the time
// of the last event received (or, with none yet, from the first connection), so that the events
// of the gap between two streams are replayed by the engine rather than lost. Events the
// overlap replays may arrive twice, except the very last one, which is recognised and skipped:
// handlers must be idempotent.
func (c *Client) Follow(ctx context.Context, log logrus.FieldLogger, resync func(context.Context), handle func(context.Context, Event)) {
	f := filters.NewArgs(filters.Arg("type", "container"))
	for _, a := range []string{"create", "start", "die", "destroy"} {
		f.Add("event", a)
	}
	var rs oneAtATime
	defer rs.stop()
	// last is the last event delivered; its time is where a new stream resumes. Before any
	// event, a reconnection resumes from the first connection's time (the engine shares the
	// plugin's clock).
	last := events.Message{TimeNano: time.Now().UnixNano()}
	first := true
	delay := reconnectDelay
	for ctx.Err() == nil {
		opts := events.ListOptions{Filters: f}
		from := last // where this stream resumes
		if !first {
			opts.Since = fmt.Sprintf("%d.%09d", last.TimeNano/1e9, last.TimeNano%1e9)
		}
		first = false
		rs.stop() // cancelled when its stream ended
		sub, cancel := context.WithCancel(ctx)
		msgs, errs := c.api.Events(sub, opts)
		// Concurrently with reading the stream: a resync that blocked it would make the engine
		// drop the very events it is meant to cover.
		rs.start(ctx, resync)
		connected := time.Now()
	stream:
		for {
			select {
			case m := <-msgs:
				if m.TimeNano == 0 {
					m.TimeNano = m.Time * 1e9
				}
				if m.TimeNano == from.TimeNano && m.Actor.ID == from.Actor.ID && m.Action == from.Action {
					continue // the last event of the previous stream, replayed on resuming
				}
				last = m
				handle(ctx, Event{Action: string(m.Action), ID: m.Actor.ID, Labels: m.Actor.Attributes, Time: time.Unix(0, m.TimeNano)})
			case err := <-errs:
				if ctx.Err() == nil {
					log.WithError(err).Warn("engine event stream ended; reconnecting")
				}
				break stream
			case <-ctx.Done():
				break stream
			}
		}
		cancel()
		rs.cancel()
		if time.Since(connected) > time.Minute {
			delay = reconnectDelay
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		if delay < 5*time.Second {
			delay *= 2
		}
	}
}

// oneAtATime runs a function in the background, one call at a time.
type oneAtATime struct {
	cancelFn context.CancelFunc
	done     chan struct{}
}

// start runs f in the background with a context derived from ctx, after stopping the last run.
func (o *oneAtATime) start(ctx context.Context, f func(context.Context)) {
	o.stop()
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(fctx)
	}()
	o.cancelFn, o.done = cancel, done
}

// cancel cancels the running call's context, without waiting for it to return.
func (o *oneAtATime) cancel() {
	if o.cancelFn != nil {
		o.cancelFn()
	}
}

// stop cancels the running call, if any, and waits for it to return.
func (o *oneAtATime) stop() {
	if o.cancelFn == nil {
		return
	}
	o.cancelFn()
	<-o.done
	o.cancelFn, o.done = nil, nil
}

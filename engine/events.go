package engine

import (
	"context"
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

// Follow subscribes to the engine's container events and calls handle for each, in order. The
// engine drops events for slow subscribers, so the stream is never trusted alone: resync is
// started on every (re)connection, alongside the new subscription, so that nothing that
// happened while disconnected is missed. Follow returns when ctx ends.
func (c *Client) Follow(ctx context.Context, log logrus.FieldLogger, resync func(context.Context), handle func(context.Context, Event)) {
	f := filters.NewArgs(filters.Arg("type", "container"))
	for _, a := range []string{"create", "start", "die", "destroy"} {
		f.Add("event", a)
	}
	delay := 250 * time.Millisecond
	for ctx.Err() == nil {
		sub, cancel := context.WithCancel(ctx)
		msgs, errs := c.api.Events(sub, events.ListOptions{Filters: f})
		// Concurrently with reading the stream: a resync that blocked it would make the engine
		// drop the very events it is meant to cover. Callers' handlers are idempotent.
		go resync(ctx)
		connected := time.Now()
	stream:
		for {
			select {
			case m := <-msgs:
				attrs := m.Actor.Attributes
				handle(ctx, Event{Action: string(m.Action), ID: m.Actor.ID, Labels: attrs, Time: time.Unix(0, m.TimeNano)})
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
		if time.Since(connected) > time.Minute {
			delay = 250 * time.Millisecond
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

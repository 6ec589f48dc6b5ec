package sizer

import (
	"context"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/size"
)

// Event is a container event from the event source (dockerd's event stream today).
type Event struct {
	Action string // "create", "start", "destroy"; others are ignored
	ID     string
	Labels map[string]string
}

// Handle queues the work an event asks for: create and start → Ensure, destroy → Forget. It
// never blocks: event sources drop events for slow subscribers.
func (s *Sizer) Handle(ev Event) {
	_, labelled := ev.Labels[size.Label]
	_, known := s.Store.Get(ev.ID)
	if !labelled && !known {
		return
	}
	switch ev.Action {
	case "create", "start":
		s.q.add(ev.ID, opEnsure)
	case "destroy":
		s.q.add(ev.ID, opForget)
	}
}

// RemovalFailed says that container id, whose device ReleaseForRemoval let go, was not removed
// after all (its removal failed, or a later authorization plugin denied it): its Ensure is
// queued, and its repair holds the device again.
func (s *Sizer) RemovalFailed(id string) {
	s.removing.Delete(id)
	s.q.add(id, opEnsure)
}

// Reconcile queues an Ensure of every labelled container and of every container with a
// record (one that is gone is forgotten). It runs on every (re)connection to the event source:
// nothing that happened while disconnected is missed.
func (s *Sizer) Reconcile(ctx context.Context) {
	ids, err := s.Engine.SizedContainers(ctx)
	if err != nil {
		s.Log.WithError(err).Warn("reconcile: listing containers")
	}
	for _, id := range ids {
		s.q.add(id, opEnsure)
	}
	for _, r := range s.Store.All() {
		s.q.add(r.ID, opEnsure)
	}
}

// Queued is the number of containers with work waiting (a metric).
func (s *Sizer) Queued() int { return s.q.len() }

// Run handles queued work on Workers goroutines until ctx ends, then lets the work in flight
// finish (each step is crash-safe, but a finished sizing is better than a repaired one) for up
// to grace, and returns.
func (s *Sizer) Run(ctx context.Context, grace time.Duration) {
	s.q.open()
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		s.q.close()
		time.AfterFunc(grace, cancel)
	})
	defer stop()
	var wg sync.WaitGroup
	for range s.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id, op, ok := s.q.next()
				if !ok {
					return
				}
				s.do(work, id, op)
				s.q.done(id)
			}
		}()
	}
	wg.Wait()
}

func (s *Sizer) do(ctx context.Context, id string, op op) {
	if op == opForget {
		s.Forget(ctx, id)
		return
	}
	start := time.Now()
	r, err := s.Ensure(ctx, id)
	if err != nil {
		if !errs.IsRefusal(err) && r.Action == Failed {
			s.Log.WithError(err).WithField("container", short(id)).Warn("sizing failed; the next event or reconcile retries")
		}
		return
	}
	s.Log.WithFields(logrus.Fields{"container": short(r.Container), "action": r.Action, "ms": time.Since(start).Milliseconds()}).Debug("handled")
}

type op int

const (
	opEnsure op = iota
	opForget
)

// queue holds at most one pending operation per container, in arrival order, and never hands
// out a container that a worker is already on: bounded work however many events arrive.
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	order   []string
	pending map[string]op
	busy    map[string]bool
	closed  bool
}

func (q *queue) init() {
	q.cond = sync.NewCond(&q.mu)
	q.pending = map[string]op{}
	q.busy = map[string]bool{}
}

func (q *queue) add(id string, o op) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if cur, ok := q.pending[id]; ok {
		if o == opForget || cur == opForget { // a removal is final
			q.pending[id] = opForget
		}
		return
	}
	q.pending[id] = o
	q.order = append(q.order, id)
	q.cond.Signal()
}

func (q *queue) next() (string, op, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return "", 0, false
		}
		for i, id := range q.order {
			if q.busy[id] {
				continue
			}
			q.order = append(q.order[:i], q.order[i+1:]...)
			o := q.pending[id]
			delete(q.pending, id)
			q.busy[id] = true
			return id, o, true
		}
		q.cond.Wait()
	}
}

func (q *queue) done(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.busy, id)
	q.cond.Broadcast()
}

func (q *queue) open() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = false
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

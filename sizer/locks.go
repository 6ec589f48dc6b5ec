package sizer

import (
	"context"
	"sync"
)

// locks serialises work on one container (keyed by its full ID) and forgets a key as soon as
// nobody holds or waits for it, so the map stays as small as the work in flight.
type locks struct {
	mu sync.Mutex
	m  map[string]*lockEntry
}

type lockEntry struct {
	ch   chan struct{} // a token in it means held
	refs int           // holders and waiters
}

// lock takes id's lock, or gives up when ctx ends.
func (l *locks) lock(ctx context.Context, id string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*lockEntry{}
	}
	e := l.m[id]
	if e == nil {
		e = &lockEntry{ch: make(chan struct{}, 1)}
		l.m[id] = e
	}
	e.refs++
	l.mu.Unlock()
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; l.drop(id, e) }, nil
	case <-ctx.Done():
		l.drop(id, e)
		return nil, ctx.Err()
	}
}

func (l *locks) drop(id string, e *lockEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(l.m, id)
	}
}

// len is the number of keys held or waited for.
func (l *locks) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

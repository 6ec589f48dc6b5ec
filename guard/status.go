package guard

import "time"

// Status is a snapshot of a guard and its pool (Guard.Status).
type Status struct {
	Pool string
	Kind string // the extender's: loop-lvm, direct-lvm, block
	// Usage is the last read of the pool: data and metadata used and total, and Usage.Mode,
	// the pool's mode (rw, out_of_data_space, ro, fail, needs_check).
	Usage Usage
	Read  time.Time // when Usage was read; zero if the pool could not be read yet
	// ReadErr is why the last read failed ("" when it did not); Usage is then the read before.
	ReadErr string
	// Room is how many bytes the pool may still take from what backs it, as the extender says
	// now, and RoomWhy what limits it, with the numbers; RoomErr is why the extender could not
	// tell ("" when it could).
	Room    int64
	RoomWhy string
	RoomErr string
	// Extend, Threshold and MaxData are the policy's: GUARD (false: off), GUARD_THRESHOLD as a
	// fraction, MAX_POOL_SIZE (0: no cap).
	Extend    bool
	Threshold float64
	MaxData   int64
	// Blocked is why an extension the pool needs cannot be made, "" when none is needed or it
	// can be.
	Blocked string
}

// Status returns a snapshot of the guard and its pool. It may be called from any goroutine
// while Run runs and never waits for a check or an extension under way. Before the guard's
// first read it reads the pool itself, once, without a flush. It asks the extender for its
// room each time (for direct-lvm, a run of the host's vgs).
func (g *Guard) Status() Status {
	g.mu.Lock()
	readYet := !g.lastAt.IsZero()
	g.mu.Unlock()
	if !readYet {
		g.read() // its error is kept for ReadErr
	}
	s := Status{Pool: g.Pool, Kind: g.Ext.Kind(), Extend: g.Policy.Extend, Threshold: g.Policy.Threshold, MaxData: g.Policy.MaxData}
	room, why, err := g.Ext.Room()
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		s.RoomErr = err.Error()
	} else {
		s.Room, s.RoomWhy = room, why
		g.room, g.roomAt = room, time.Now()
	}
	s.Usage, s.Read, s.ReadErr, s.Blocked = g.lastRead, g.lastAt, g.lastErr, g.blocked
	return s
}

package guard

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	p := pool3G()
	e := &fakeExt{pool: p, room: 7 * gib}
	pol := DefaultPolicy()
	pol.MaxData = 20 * gib
	g, _, _ := newGuard(p, e, pol)

	// Before the guard's first read, Status reads the pool once, and only once.
	s := g.Status()
	if p.reads != 1 || s.Read.IsZero() || s.ReadErr != "" {
		t.Fatalf("first Status: %d reads, read at %v, error %q", p.reads, s.Read, s.ReadErr)
	}
	want := Status{Pool: "pool", Kind: "loop-lvm", Room: 7 * gib, RoomWhy: "room 7516192768", Extend: true, Threshold: 0.8, MaxData: 20 * gib}
	u := s.Usage
	s.Usage, s.Read = Usage{}, want.Read
	if s != want {
		t.Errorf("Status = %+v, want %+v", s, want)
	}
	if u.DataTotal != 3*gib || u.DataUsed != 4915*65536 || u.MetaTotal != 2*mib || u.MetaUsed != 10*4096 || u.Mode != "rw" {
		t.Errorf("usage %+v", u)
	}
	g.Status()
	if p.reads != 1 {
		t.Errorf("a second Status read the pool again (%d reads)", p.reads)
	}

	// The guard's own reads and what blocks it show.
	p.used, p.mode = p.blocks, "out_of_data_space"
	e.room = 0
	g.Check()
	s = g.Status()
	if s.Usage.Mode != "out_of_data_space" || s.Usage.DataUsed != 3*gib || !strings.Contains(s.Blocked, "no room for data: room 0") || s.Room != 0 {
		t.Errorf("blocked pool's Status = %+v", s)
	}
	// A manual extension's read back shows too.
	e.room = 10 * gib
	if _, err := g.Extend(context.Background(), Request{Size: 4 * gib}); err != nil {
		t.Fatal(err)
	}
	if s = g.Status(); s.Usage.DataTotal != 4*gib || s.Usage.Mode != "rw" {
		t.Errorf("Status after a manual extension = %+v", s.Usage)
	}

	// The extender cannot tell its room; the pool cannot be read: the last read stays.
	e.roomErr = errors.New("vgs: exit status 5")
	p.readErr = errors.New("dm: status pool: no such device")
	g.Check()
	s = g.Status()
	if s.RoomErr != "vgs: exit status 5" || s.RoomWhy != "" || s.ReadErr != "dm: status pool: no such device" || s.Usage.DataTotal != 4*gib {
		t.Errorf("room and read errors: %+v", s)
	}

	// Modes the kernel reports, GUARD=off.
	for _, tc := range []struct {
		set  func(*fakePool)
		mode string
	}{
		{func(p *fakePool) { p.mode = "ro" }, "ro"},
		{func(p *fakePool) { p.mode, p.needsCheck = "ro", true }, "needs_check"},
		{func(p *fakePool) { p.failed = true }, "fail"},
	} {
		p := pool3G()
		tc.set(p)
		pol := DefaultPolicy()
		pol.Extend = false
		g, _, _ := newGuard(p, &fakeExt{pool: p}, pol)
		g.Check()
		if s := g.Status(); s.Usage.Mode != tc.mode || s.Extend {
			t.Errorf("Status of a %s pool: mode %q, extend %v", tc.mode, s.Usage.Mode, s.Extend)
		}
	}
}

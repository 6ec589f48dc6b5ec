package guard

import (
	"strings"
	"testing"
)

const (
	gib = int64(1) << 30
	mib = int64(1) << 20
)

func TestPlan(t *testing.T) {
	p := DefaultPolicy()
	blk := 64 << 10
	tests := []struct {
		name      string
		pol       func(*Policy)
		u         Usage
		room      int64
		data      int64
		meta      int64
		blockedIs string
	}{
		{name: "below threshold", u: Usage{DataUsed: 2 * gib, DataTotal: 3 * gib, MetaUsed: mib, MetaTotal: 16 * mib}, room: 100 * gib, data: 3 * gib, meta: 16 * mib},
		{name: "data at threshold grows by 20%", u: Usage{DataUsed: 2458 * mib, DataTotal: 3 * gib, MetaUsed: mib, MetaTotal: 16 * mib}, room: 100 * gib,
			data: 3*gib + roundUp(3*gib/5, int64(blk)), meta: 16 * mib},
		{name: "out of data space grows even below the threshold", u: Usage{DataUsed: gib, DataTotal: 3 * gib, OutOfData: true, MetaTotal: 16 * mib}, room: 100 * gib,
			data: 3*gib + roundUp(3*gib/5, int64(blk)), meta: 16 * mib},
		{name: "due soon grows before the threshold", u: Usage{DataUsed: 2 * gib, DataTotal: 3 * gib, DataSoon: true, MetaTotal: 16 * mib}, room: 100 * gib,
			data: 3*gib + roundUp(3*gib/5, int64(blk)), meta: 16 * mib},
		{name: "absolute step", pol: func(p *Policy) { p.Step = Step{Bytes: 2 * gib} }, u: Usage{DataUsed: 29 * gib / 10, DataTotal: 3 * gib, MetaTotal: 16 * mib}, room: 100 * gib,
			data: 5 * gib, meta: 16 * mib},
		{name: "cap trims the step", pol: func(p *Policy) { p.MaxData = 3*gib + 100*mib }, u: Usage{DataUsed: 29 * gib / 10, DataTotal: 3 * gib, MetaTotal: 16 * mib}, room: 100 * gib,
			data: 3*gib + 100*mib, meta: 16 * mib},
		{name: "at the cap", pol: func(p *Policy) { p.MaxData = 3 * gib }, u: Usage{DataUsed: 29 * gib / 10, DataTotal: 3 * gib, MetaTotal: 16 * mib}, room: 100 * gib,
			data: 3 * gib, meta: 16 * mib, blockedIs: "MAX_POOL_SIZE=3G"},
		{name: "room trims the step", u: Usage{DataUsed: 29 * gib / 10, DataTotal: 3 * gib, MetaTotal: 16 * mib}, room: 100*mib + 5,
			data: 3*gib + 100*mib, meta: 16 * mib},
		{name: "no room", u: Usage{DataUsed: 29 * gib / 10, DataTotal: 3 * gib, MetaTotal: 16 * mib}, room: -gib,
			data: 3 * gib, meta: 16 * mib, blockedIs: "no room for data: VG full"},
		{name: "metadata grows by at least 8 MiB", u: Usage{DataUsed: gib, DataTotal: 3 * gib, MetaUsed: 2 * mib, MetaTotal: 2 * mib}, room: 100 * gib,
			data: 3 * gib, meta: 10 * mib},
		{name: "both, room shared", u: Usage{DataUsed: 3 * gib, DataTotal: 3 * gib, MetaUsed: 15 * mib, MetaTotal: 16 * mib}, room: roundUp(3*gib/5, 65536) + 65536,
			data: 3*gib + roundUp(3*gib/5, 65536), meta: 16*mib + 65536},
		{name: "metadata at the kernel's maximum", u: Usage{DataTotal: 3 * gib, MetaUsed: MaxMetadata, MetaTotal: MaxMetadata}, room: 100 * gib,
			data: 3 * gib, meta: MaxMetadata, blockedIs: "kernel's maximum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pol := p
			if tc.pol != nil {
				tc.pol(&pol)
			}
			if tc.u.DataBlock == 0 {
				tc.u.DataBlock = int64(blk)
			}
			pl := pol.Plan(tc.u, tc.room, "VG full")
			if pl.Data != tc.data || pl.Meta != tc.meta {
				t.Errorf("plan %d/%d, want %d/%d", pl.Data, pl.Meta, tc.data, tc.meta)
			}
			if pl.Data%tc.u.DataBlock != 0 {
				t.Errorf("data %d is not a multiple of the %d-byte block", pl.Data, tc.u.DataBlock)
			}
			if pl.Data < tc.u.DataTotal || pl.Meta < tc.u.MetaTotal {
				t.Errorf("plan shrinks: %+v from %+v", pl, tc.u)
			}
			if (tc.blockedIs == "") != (pl.Blocked == "") || !strings.Contains(pl.Blocked, tc.blockedIs) {
				t.Errorf("blocked %q, want it to say %q", pl.Blocked, tc.blockedIs)
			}
		})
	}
}

func TestParseStepAndThreshold(t *testing.T) {
	for in, want := range map[string]Step{"20%": {Percent: 20}, " 2.5 % ": {Percent: 2.5}, "2G": {Bytes: 2 * gib}, "512m": {Bytes: 512 * mib}} {
		if got, err := ParseStep(in); err != nil || got != want {
			t.Errorf("ParseStep(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0%", "-5%", "x%", "2000%", "lots", "0", "-1G"} {
		if _, err := ParseStep(bad); err == nil {
			t.Errorf("ParseStep(%q) accepted", bad)
		}
	}
	if v, err := ParseThreshold("80%"); err != nil || v != 0.8 {
		t.Errorf("ParseThreshold(80%%) = %v, %v", v, err)
	}
	for _, bad := range []string{"0", "100", "x", "-3%"} {
		if _, err := ParseThreshold(bad); err == nil {
			t.Errorf("ParseThreshold(%q) accepted", bad)
		}
	}
	if s := (Step{Percent: 20}).Of(10 * gib); s != 2*gib {
		t.Errorf("20%% of 10G = %d", s)
	}
}

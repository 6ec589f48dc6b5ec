package guard

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/kernel/errs"
)

// pool3G is a 3 GiB pool, data 10 % used, with 2 MiB of metadata.
func pool3G() *fakePool {
	return &fakePool{blocks: 49152, used: 4915, metaBlocks: 512, metaUsed: 10, mode: "rw"}
}

func (f *fakePool) sizes() (data, meta int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(f.blocks) * 65536, int64(f.metaBlocks) * 4096
}

func TestExtendAbsoluteAndRelative(t *testing.T) {
	p := pool3G()
	e := &fakeExt{pool: p, room: 100 * gib}
	g, r, h := newGuard(p, e, DefaultPolicy())
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		metadata      bool
		size          int64
		relative      bool
		data, meta    int64 // after
		from, to      int64 // the Extension
		part, message string
	}{
		{"data absolute", false, 4 * gib, false, 4 * gib, 2 * mib, 3 * gib, 4 * gib, "data", "the pool's data extended from 3.00GiB to 4.00GiB"},
		{"data relative", false, gib, true, 5 * gib, 2 * mib, 4 * gib, 5 * gib, "data", "from 4.00GiB to 5.00GiB"},
		{"data rounded up to the block", false, 100_000, true, 5*gib + 131072, 2 * mib, 5 * gib, 5*gib + 131072, "data", "extended"},
		{"metadata relative", true, 8 * mib, true, 5*gib + 131072, 10 * mib, 2 * mib, 10 * mib, "metadata", "the pool's metadata extended from 2.0MiB to 10.0MiB"},
		{"metadata absolute, rounded to 4 KiB", true, 16*mib + 1, false, 5*gib + 131072, 16*mib + 4096, 10 * mib, 16*mib + 4096, "metadata", "extended"},
	} {
		ext, err := g.Extend(ctx, Request{Metadata: tc.metadata, Size: tc.size, By: tc.relative})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d, m := p.sizes(); d != tc.data || m != tc.meta {
			t.Errorf("%s: pool is %d/%d, want %d/%d", tc.name, d, m, tc.data, tc.meta)
		}
		if ext.Part != tc.part || ext.From != tc.from || ext.To != tc.to || ext.Err != nil || ext.Live.Before(ext.Seen) || !strings.Contains(ext.Message, tc.message) {
			t.Errorf("%s: extension %+v", tc.name, ext)
		}
		if last := r.ext[len(r.ext)-1]; last.Part != ext.Part || last.From != ext.From || last.To != ext.To {
			t.Errorf("%s: recorded %+v, returned %+v", tc.name, last, ext)
		}
	}
	if len(r.ext) != 5 || len(e.calls) != 5 {
		t.Errorf("recorded %d extensions, %d calls to the extender", len(r.ext), len(e.calls))
	}
	if !logged(h, logrus.InfoLevel, "pool: data extended by hand from 3.00GiB to 4.00GiB") ||
		!logged(h, logrus.InfoLevel, "pool: metadata extended by hand from 2.0MiB to 10.0MiB") {
		t.Errorf("no info line for the extensions: %v", h.AllEntries())
	}
}

func TestExtendAlready(t *testing.T) {
	p := pool3G()
	e := &fakeExt{pool: p, room: 100 * gib}
	pol := DefaultPolicy()
	pol.MaxData = 3*gib + 1000 // not a whole number of 64 KiB blocks: the pool is at it
	g, r, _ := newGuard(p, e, pol)
	for _, tc := range []struct {
		name     string
		metadata bool
		size     int64
		relative bool
		message  string
	}{
		{"data at its size", false, 3 * gib, false, "the pool's data is already 3.00GiB"},
		{"data below its size", false, 2 * gib, false, "the pool's data is already 3.00GiB (asked for 2.00GiB; a pool never shrinks)"},
		{"data +0", false, 0, true, "already 3.00GiB"},
		{"data shrunk by a negative step", false, -gib, true, "never shrinks"},
		{"metadata at its size", true, 2 * mib, false, "the pool's metadata is already 2.0MiB"},
		{"data at the cap, as blocks go", false, 3*gib + 1000, false, "as close to MAX_POOL_SIZE"},
	} {
		ext, err := g.Extend(context.Background(), Request{Metadata: tc.metadata, Size: tc.size, By: tc.relative})
		if err != nil || ext.To != ext.From || !strings.Contains(ext.Message, tc.message) {
			t.Errorf("%s: %+v, %v; want a no-op saying %q", tc.name, ext, err, tc.message)
		}
	}
	if len(e.calls) != 0 || len(r.ext) != 0 {
		t.Errorf("a no-op extended: %v %v", e.calls, r.ext)
	}
}

// refused checks that err is a Refusal naming setting and saying want, and that nothing was
// extended or recorded.
func refused(t *testing.T, name string, ext Extension, err error, setting, want string, calls int, r *rec) {
	t.Helper()
	var ref *errs.Refusal
	if !errors.As(err, &ref) || ref.Setting != setting || !strings.Contains(ref.Error(), want) {
		t.Errorf("%s: got %v (%#v), want a refusal by %q saying %q", name, err, ref, setting, want)
	}
	if ref != nil && setting != "" && !strings.Contains(ref.Reason, setting) {
		t.Errorf("%s: the reason does not name %s: %s", name, setting, ref.Reason)
	}
	if ext.To != ext.From || calls != 0 || len(r.ext) != 0 {
		t.Errorf("%s: a refusal changed something: %+v, %d calls, recorded %v", name, ext, calls, r.ext)
	}
}

func TestExtendRefusals(t *testing.T) {
	ctx := context.Background()

	pol := DefaultPolicy()
	pol.MaxData = 4 * gib
	p := pool3G()
	e := &fakeExt{pool: p, room: 100 * gib}
	g, r, h := newGuard(p, e, pol)
	ext, err := g.Extend(ctx, Request{Size: 4*gib + 1})
	refused(t, "over MAX_POOL_SIZE", ext, err, "MAX_POOL_SIZE", "cannot be extended to 4.00GiB: MAX_POOL_SIZE=4GiB caps it (it is 3.00GiB now)", len(e.calls), r)
	ext, err = g.Extend(ctx, Request{Size: 2 * gib, By: true})
	refused(t, "over MAX_POOL_SIZE, relative", ext, err, "MAX_POOL_SIZE", "to 5.00GiB", len(e.calls), r)
	if !logged(h, logrus.InfoLevel, "refused") {
		t.Errorf("a refusal is not logged: %v", h.AllEntries())
	}
	if _, err := g.Extend(ctx, Request{Size: 4 * gib}); err != nil { // up to the cap is fine
		t.Errorf("up to MAX_POOL_SIZE: %v", err)
	}

	// loop-lvm: the real extender's room, on a filesystem that cannot keep MIN_HOST_FREE free.
	dir := t.TempDir()
	for _, f := range []string{"data", "metadata"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p = pool3G()
	loop := &loopExtender{c: p, pool: "pool", data: filepath.Join(dir, "data"), meta: filepath.Join(dir, "metadata"), minFree: 1 << 60}
	g, r, _ = newGuard(p, &fakeExt{}, DefaultPolicy())
	g.Ext = loop
	ext, err = g.Extend(ctx, Request{Size: gib, By: true})
	refused(t, "loop-lvm over the host's room", ext, err, "MIN_HOST_FREE", "cannot be extended from 3.00GiB to 4.00GiB: that takes 1.00GiB and there is room for 0KiB: the filesystem holding", 0, r)
	if !strings.Contains(err.Error(), "MIN_HOST_FREE keeps 1EiB") {
		t.Errorf("no numbers for MIN_HOST_FREE: %v", err)
	}
	ext, err = g.Extend(ctx, Request{Metadata: true, Size: 8 * mib, By: true})
	refused(t, "loop-lvm metadata over the host's room", ext, err, "MIN_HOST_FREE", "the pool's metadata cannot be extended from 2.0MiB to 10.0MiB", 0, r)

	// direct-lvm: the real extender, over a volume group with 1 GiB free.
	var lvm []string
	p = pool3G()
	g, r, _ = newGuard(p, &fakeExt{}, DefaultPolicy())
	g.Ext = &lvmExtender{vg: "docker", lv: "thinpool", run: func(args ...string) (string, error) {
		lvm = append(lvm, strings.Join(args, " "))
		return "  1073741824\n", nil
	}}
	ext, err = g.Extend(ctx, Request{Size: 5 * gib})
	refused(t, "direct-lvm over the volume group's free space", ext, err, "",
		"from 3.00GiB to 5.00GiB: that takes 2.00GiB and there is room for 1.00GiB: volume group docker has 1.00GiB free (vgextend docker with another disk)", len(lvm)-1, r)

	// Metadata over the kernel's maximum.
	p = pool3G()
	e = &fakeExt{pool: p, room: 100 * gib}
	g, r, _ = newGuard(p, e, DefaultPolicy())
	ext, err = g.Extend(ctx, Request{Metadata: true, Size: 16 * gib})
	refused(t, "metadata over the kernel's maximum", ext, err, "", "the pool's metadata cannot be extended to 16.00GiB: the kernel uses at most 15.5GiB", len(e.calls), r)
	if _, err := g.Extend(ctx, Request{Metadata: true, Size: MaxMetadata}); err != nil {
		t.Errorf("metadata up to the kernel's maximum: %v", err)
	}

	// A plain block device.
	p = pool3G()
	g, r, _ = newGuard(p, &fakeExt{}, DefaultPolicy())
	g.Ext = blockExtender("/dev/sdb1")
	ext, err = g.Extend(ctx, Request{Size: gib, By: true})
	refused(t, "block", ext, err, "", "dmsize cannot grow this pool: the pool's data device /dev/sdb1 is neither", 0, r)

	// An LVM thin pool, and a plugin that may not run the host's lvm (the default flavor).
	p = pool3G()
	p.uuid = "LVM-abc"
	g, r, _ = newGuard(p, &fakeExt{}, DefaultPolicy())
	if g.Ext, err = NewExtender(p, engine.Storage{PoolName: "docker-thinpool"}, DefaultPolicy(), nil); err != nil {
		t.Fatal(err)
	}
	if g.Ext.Kind() != "direct-lvm" {
		t.Errorf("kind %q", g.Ext.Kind())
	}
	ext, err = g.Extend(ctx, Request{Size: gib, By: true})
	refused(t, "direct-lvm without lvm", ext, err, "", "only the lvm flavor of the plugin may (docker plugin install REGISTRY/dmsize-lvm:VERSION)", 0, r)

	// A pool that needs a check, or failed.
	for _, bad := range []func(*fakePool){func(p *fakePool) { p.needsCheck = true; p.mode = "ro" }, func(p *fakePool) { p.failed = true }} {
		p = pool3G()
		bad(p)
		e = &fakeExt{pool: p, room: 100 * gib}
		g, r, _ = newGuard(p, e, DefaultPolicy())
		ext, err = g.Extend(ctx, Request{Size: gib, By: true})
		refused(t, "a pool that needs a check", ext, err, "", "needs a check (thin_check)", len(e.calls), r)
	}
}

func TestExtendFailures(t *testing.T) {
	ctx := context.Background()
	var ref *errs.Refusal
	p := pool3G()
	e := &fakeExt{pool: p, room: 100 * gib, err: errors.New("lvextend: Insufficient free space")}
	g, r, h := newGuard(p, e, DefaultPolicy())
	ext, err := g.Extend(ctx, Request{Size: gib, By: true})
	if err == nil || errors.As(err, &ref) || ext.Err == nil || len(r.ext) != 1 || r.ext[0].Err == nil || !logged(h, logrus.ErrorLevel, "extending the data by hand from 3.00GiB to 4.00GiB failed") {
		t.Errorf("a failed extension must be a failure, counted and logged: %v, %+v", err, r.ext)
	}
	// The kernel ignores the new size: a failure too.
	e = &fakeExt{pool: p, room: 100 * gib, ignored: true}
	g, r, _ = newGuard(p, e, DefaultPolicy())
	if _, err := g.Extend(ctx, Request{Size: gib, By: true}); err == nil || errors.As(err, &ref) || !strings.Contains(err.Error(), "did not take the new size") || len(r.ext) != 1 {
		t.Errorf("want the unchanged size reported as a failure: %v", err)
	}
	// The extender cannot tell its room: a failure, not a refusal, and nothing extended.
	e = &fakeExt{pool: p, roomErr: errors.New("vgs: exit status 5")}
	g, r, _ = newGuard(p, e, DefaultPolicy())
	if _, err := g.Extend(ctx, Request{Size: gib, By: true}); err == nil || errors.As(err, &ref) || !strings.Contains(err.Error(), "vgs") || len(e.calls) != 0 || len(r.ext) != 0 {
		t.Errorf("room unknown: %v, calls %v", err, e.calls)
	}
}

func TestExtendWithGuardOff(t *testing.T) {
	p := pool3G()
	e := &fakeExt{pool: p, room: 100 * gib}
	pol := DefaultPolicy()
	pol.Extend = false
	g, _, _ := newGuard(p, e, pol)
	if ext, err := g.Extend(context.Background(), Request{Size: gib, By: true}); err != nil || ext.To != 4*gib {
		t.Fatalf("GUARD=off refused a manual extension: %+v %v", ext, err)
	}
}

// TestExtendTakesTurnsWithCheck runs the guard's checks and manual extensions at once: the
// extender never sees two extensions at the same time.
func TestExtendTakesTurnsWithCheck(t *testing.T) {
	p := pool3G()
	e := &fakeExt{pool: p, room: 1 << 50, delay: 2 * time.Millisecond}
	g, _, _ := newGuard(p, e, DefaultPolicy())
	const rounds = 20
	for i := 0; i < rounds; i++ {
		p.mu.Lock()
		p.used = p.blocks * 9 / 10 // over the threshold: the check extends
		p.mu.Unlock()
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); g.Check() }()
		go func() {
			defer wg.Done()
			if _, err := g.Extend(context.Background(), Request{Size: 65536, By: true}); err != nil { // one block: still over the threshold
				t.Error(err)
			}
		}()
		go func() { defer wg.Done(); g.Status() }()
		wg.Wait()
	}
	if e.overlap {
		t.Fatal("a check and a manual extension extended at once")
	}
	if len(e.calls) < 2*rounds {
		t.Errorf("%d extensions in %d rounds; each round should make two", len(e.calls), rounds)
	}

	// A manual extension waits for the guard's turn no longer than its context allows.
	g.turn() <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := g.Extend(ctx, Request{Size: gib, By: true}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Extend while a check holds the turn: %v", err)
	}
	<-g.turn()
}

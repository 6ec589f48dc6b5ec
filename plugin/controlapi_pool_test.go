package plugin

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/guard"
	"github.com/dmsize/dmsize/metrics"
	"github.com/dmsize/dmsize/sizer"
)

// poolApp is a set-up plugin whose guard watches a 1 GiB loop-lvm pool (256 MiB used, 4 MiB
// of metadata) with 10 GiB of room, under policy.
func poolApp(t *testing.T, policy guard.Policy) (*app, *fakeBackend, *fakeThinPool, *fakeExtender) {
	t.Helper()
	l, _ := test.NewNullLogger()
	a := &app{log: l}
	b := newFakeBackend()
	withSizer(t, a, b, sizer.Policy{})
	p := &fakeThinPool{name: "docker-thinpool", blocks: 16384, used: 4096, metaBlocks: 1024, metaUsed: 100}
	e := &fakeExtender{pool: p, room: 10 << 30}
	m := metrics.New(p.name)
	su := *a.setup.Load()
	su.metrics, su.guard = m, &guard.Guard{Pool: p.name, Ctl: p, Ext: e, Policy: policy, Log: l, Obs: m}
	a.setup.Store(&su)
	return a, b, p, e
}

// dmsize pool status: the pool as the guard reads it, the room its extender has, and what the
// sizer holds and has recorded; the guard's setting and an extender that cannot tell its room.
func TestControlPool(t *testing.T) {
	a, b, _, e := poolApp(t, guard.DefaultPolicy())
	b.held["thin-web"] = true
	if err := a.setup.Load().sizer.Store.Put(sizer.Record{ID: webID, Name: "web", Device: "thin-web"}); err != nil {
		t.Fatal(err)
	}
	var p controlapi.Pool
	callOK(t, a, "GET", controlapi.PathPool, "", &p)
	want := controlapi.Pool{Name: "docker-thinpool", Kind: "loop-lvm", DataUsedBytes: 256 << 20, DataSizeBytes: 1 << 30, MetaUsedBytes: 100 * 4096,
		MetaSizeBytes: 4 << 20, Mode: "rw", RoomBytes: 10 << 30, RoomWhy: "the host keeps 10737418240 bytes free", Guard: "on", Threshold: 0.8,
		ProvisionedBytes: 20 << 30, OvercommitRatio: 20, ContainersHeld: 1, ContainersWithRec: 1}
	if p != want {
		t.Fatalf("pool\n%+v\nwant\n%+v", p, want)
	}

	off := guard.DefaultPolicy()
	off.Extend = false
	a, b, _, e = poolApp(t, off)
	e.roomErr = errors.New("statfs /var/lib/docker: permission denied")
	b.provErr = errors.New("reading the pool's devices: input/output error")
	p = controlapi.Pool{}
	callOK(t, a, "GET", controlapi.PathPool, "", &p)
	if p.Guard != "off" || p.RoomWhy != "statfs /var/lib/docker: permission denied" || p.RoomBytes != 0 || p.ProvisionedBytes != 0 || p.OvercommitRatio != 0 || p.DataSizeBytes != 1<<30 {
		t.Fatalf("guard off, no room, no provisioned size: %+v", p)
	}
}

// The pool endpoints before the guard runs: 503 with the reason, for status and extension alike.
func TestControlPoolNotGuarded(t *testing.T) {
	l, _ := test.NewNullLogger()
	a := &app{log: l}
	why := "opening device-mapper; dmsize does nothing (does the plugin have /dev and CAP_SYS_ADMIN?)"
	a.notReady.Store(&why)
	callFails(t, a, "GET", controlapi.PathPool, "", http.StatusServiceUnavailable, controlapi.KindUnavailable, why)
	callFails(t, a, "POST", controlapi.PathPoolExtend, `{"size":"+1G"}`, http.StatusServiceUnavailable, controlapi.KindUnavailable, why)
	withSizer(t, a, newFakeBackend(), sizer.Policy{})
	callFails(t, a, "GET", controlapi.PathPool, "", http.StatusServiceUnavailable, controlapi.KindUnavailable, "the pool guard is not running")
	callFails(t, a, "POST", controlapi.PathPoolExtend, `{"size":"+1G"}`, http.StatusServiceUnavailable, controlapi.KindUnavailable, "the pool guard is not running")
}

// dmsize pool extend: an extension by hand of the data (absolute or relative) or the metadata,
// counted in the metrics; a size the pool already has; and each refusal and failure, naming
// the part and the size asked.
func TestControlPoolExtend(t *testing.T) {
	policy := guard.DefaultPolicy()
	policy.MaxData = 3 << 30
	a, _, p, e := poolApp(t, policy)
	ext := controlapi.PathPoolExtend

	var res controlapi.ExtendResult
	callOK(t, a, "POST", ext, `{"size":"+1G"}`, &res)
	if res.Part != "data" || res.BeforeBytes != 1<<30 || res.AfterBytes != 2<<30 || res.DurationMS < 0 || !strings.Contains(res.Message, "the pool's data extended from") {
		t.Fatalf("data +1G: %+v", res)
	}
	if p.blocks != 32768 {
		t.Fatalf("the pool has %d data blocks, want 32768", p.blocks)
	}
	res = controlapi.ExtendResult{}
	callOK(t, a, "POST", ext, `{"metadata":true,"size":"8M"}`, &res)
	if res.Part != "metadata" || res.BeforeBytes != 4<<20 || res.AfterBytes != 8<<20 || p.metaBlocks != 2048 {
		t.Fatalf("metadata to 8M: %+v, %d blocks", res, p.metaBlocks)
	}
	res = controlapi.ExtendResult{}
	callOK(t, a, "POST", ext, `{"size":"1G"}`, &res)
	if res.BeforeBytes != 2<<30 || res.AfterBytes != 2<<30 || res.DurationMS != 0 || !strings.Contains(res.Message, "already") {
		t.Fatalf("data to less than it has: %+v", res)
	}
	_, body := call(a, "GET", controlapi.PathMetrics, "")
	for _, want := range []string{
		`dmsize_pool_extensions_total{part="data",pool="docker-thinpool",result="ok"} 1`,
		`dmsize_pool_extensions_total{part="metadata",pool="docker-thinpool",result="ok"} 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}

	callFails(t, a, "POST", ext, `{"size":"4G"}`, http.StatusConflict, controlapi.KindRefused, "pool data to 4G: ", "MAX_POOL_SIZE=3GiB")
	callFails(t, a, "POST", ext, `{"size":"+lots"}`, http.StatusBadRequest, controlapi.KindInvalid, "pool data: ")
	callFails(t, a, "POST", ext, `{"metadata":true,"size":"-1"}`, http.StatusBadRequest, controlapi.KindInvalid, "pool metadata: ")
	callFails(t, a, "POST", ext, `{"size":`, http.StatusBadRequest, controlapi.KindInvalid, "an extend request needs a size")
	e.roomErr = errors.New("statfs /var/lib/docker: permission denied")
	callFails(t, a, "POST", ext, `{"metadata":true,"size":"+4M"}`, http.StatusInternalServerError, controlapi.KindFailed,
		"pool metadata to +4M: cannot tell how much room the pool has: statfs /var/lib/docker: permission denied")
	if p.blocks != 32768 || p.metaBlocks != 2048 {
		t.Fatalf("a refused or failed extension changed the pool: %d data blocks, %d metadata blocks", p.blocks, p.metaBlocks)
	}
}

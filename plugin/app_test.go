package plugin

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/backend/snapshotter"
	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/guard"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/metrics"
	vol "github.com/dmsize/dmsize/volume"
)

// fakeWire makes run wire b (nil: the real backendFor) and records the storage it is given.
func fakeWire(t *testing.T, b *fakeBackend) *engine.Storage {
	t.Helper()
	var seen engine.Storage
	old := wireBackend
	wireBackend = func(a *app, ctl *dm.Control, st engine.Storage) (storageBackend, engine.Storage, error, logrus.FieldLogger) {
		seen = st
		if b == nil {
			return old(a, ctl, st)
		}
		return b, st, nil, a.log
	}
	t.Cleanup(func() { wireBackend = old })
	return &seen
}

// devicemapperInfo is docker info of an engine on loop-lvm, its data root at /srv/docker.
var devicemapperInfo = system.Info{Driver: "devicemapper", DockerRootDir: "/srv/docker", ServerVersion: "28.0.0", DriverStatus: [][2]string{
	{"Pool Name", "docker-thinpool"}, {"Deferred Removal Enabled", "true"}, {"Deferred Deletion Enabled", "true"},
	{"Data loop file", "/srv/docker/devicemapper/devicemapper/data"}, {"Metadata loop file", "/srv/docker/devicemapper/devicemapper/metadata"},
}}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// run, once the engine answers: stale volume mounts are forgotten, the engine's storage is read
// as the plugin sees it (its data root mounted at /var/lib/docker), the backend, the sizer, the
// metrics and the base size are wired, and a container's start event sizes it to its label.
// The pool guard cannot open device-mapper here: it is logged, and the pool endpoint says so.
// Strict mode checks labels with the sizer from then on. Everything stops with ctx.
func TestRunWiresTheSizer(t *testing.T) {
	l, hook := test.NewNullLogger()
	docker := newFakeDocker(t)
	docker.info = devicemapperInfo
	now := time.Now()
	docker.events = []events.Message{{Type: events.ContainerEventType, Action: events.ActionStart, Time: now.Unix(), TimeNano: now.UnixNano(),
		Actor: events.Actor{ID: webID, Attributes: map[string]string{"dm.size": "20G", "name": "web"}}}}
	b := newFakeBackend()
	seen := fakeWire(t, b)
	calls := stubDM(t, 1)
	d, k := newVolumes(t, "", l)
	if err := d.Create(&volume.CreateRequest{Name: "data"}); err != nil {
		t.Fatal(err)
	}
	dir := d.v.Load().Path("data")
	if _, err := d.Mount(&volume.MountRequest{Name: "data", ID: "gone"}); err != nil {
		t.Fatal(err)
	}
	a := &app{cfg: config{Mode: "strict", DockerHost: docker.host, StateDir: t.TempDir(), MaxSize: 1 << 40}, log: l, vols: d}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A labelled create that comes while the plugin starts (dockerd restarts its plugins with
	// itself) waits for it and is checked, not denied as "starting".
	early := make(chan authorization.Response, 1)
	go func() { early <- a.AuthZReq(createReq(`{"Labels":{"dm.size":"20G"}}`)) }()
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() { a.run(ctx); close(done) }()
	if r := <-early; !r.Allow {
		t.Fatalf("strict mode, a labelled create while the plugin started: %+v", r)
	}

	eventually(t, "the start event's sizing", func() bool {
		_, body := call(a, "GET", controlapi.PathMetrics, "")
		return strings.Contains(string(body), "dmsize_containers_sized_total 1\n")
	})
	if got := strings.Join(b.Calls(), ","); !strings.Contains(got, "growfs thin-web 21474836480") {
		t.Fatalf("web not grown to its label: %s", got)
	}
	if seen.DataRoot != dataRootMount || seen.DataLoopFile != "/var/lib/docker/devicemapper/devicemapper/data" || seen.PoolName != "docker-thinpool" || !seen.DeferredRemoval {
		t.Fatalf("the backend got the storage %+v", *seen)
	}
	if e := logged(hook, logrus.InfoLevel, "the engine's data root is mounted elsewhere"); e == nil || e.Data["host"] != "/srv/docker" {
		t.Fatalf("the data root's move is not logged: %v", hook.AllEntries())
	}
	if logged(hook, logrus.ErrorLevel, "pool guard: opening device-mapper; the pool is not guarded") == nil || logged(hook, logrus.InfoLevel, "dmsize ready") == nil {
		t.Fatalf("log: %v", hook.AllEntries())
	}
	if calls() != 2 || a.setup.Load().guard != nil || a.base.Load() != 10<<30 || a.notReady.Load() != nil {
		t.Fatalf("dm opened %d times, guard %v, base %d, not ready %v", calls(), a.setup.Load().guard, a.base.Load(), a.notReady.Load())
	}
	if rec, _ := d.v.Load().Get("data"); len(rec.Mounts) != 0 || k.isMounted(dir) {
		t.Fatalf("a mount ID of a container that is gone is kept: %+v", rec)
	}
	if got := docker.listed(); len(got) != 1 || got[0] != "volume=data all=true" {
		t.Fatalf("the engine was asked %q, want every container referring to volume data", got)
	}
	callFails(t, a, "GET", controlapi.PathPool, "", http.StatusServiceUnavailable, controlapi.KindUnavailable, "the pool guard is not running")
	if r := a.AuthZReq(createReq(`{"Labels":{"dm.size":"2T"}}`)); r.Allow || !strings.HasPrefix(r.Msg, "dmsize: label dm.size=2T rejected: 2TiB is above the plugin's maximum 1TiB") {
		t.Fatalf("strict mode, a label over MAX_SIZE: %+v", r)
	}
	if r := a.AuthZReq(createReq(`{"Labels":{"dm.size":"20G"}}`)); !r.Allow {
		t.Fatalf("strict mode, a label it takes: %+v", r)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return when its context ended")
	}
	a.work.Wait()
}

// Each reason run gives up for, kept for the control API and strict mode, and logged; an
// engine that never answers is waited for until ctx ends, without giving up.
func TestRunGivesUp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, a *app, docker *fakeDocker)
		why   string // "" nothing is given up
		dmOK  int    // device-mapper openings that succeed
		dm    int    // device-mapper openings
	}{
		{name: "bad engine address", setup: func(t *testing.T, a *app, _ *fakeDocker) { a.cfg.DockerHost = "docker.sock" },
			why: "cannot reach the engine; dmsize does nothing: engine: "},
		{name: "engine not answering", setup: func(t *testing.T, a *app, _ *fakeDocker) {
			a.cfg.DockerHost = "unix://" + filepath.Join(t.TempDir(), "none.sock")
		}},
		{name: "docker info fails", setup: func(t *testing.T, _ *app, docker *fakeDocker) { docker.infoStatus = http.StatusInternalServerError },
			why: "reading the engine's storage; dmsize does nothing: engine: docker info: "},
		{name: "no device-mapper", setup: func(*testing.T, *app, *fakeDocker) {},
			why: "opening device-mapper; dmsize does nothing (does the plugin have /dev and CAP_SYS_ADMIN?): " + errNoDM.Error(), dm: 1},
		{name: "overlay2", setup: func(t *testing.T, _ *app, docker *fakeDocker) {
			fakeWire(t, nil)
			docker.info = system.Info{Driver: "overlay2", DockerRootDir: "/var/lib/docker", ServerVersion: "28.0.0"}
		}, why: `the engine's storage driver is "overlay2": dm.size labels are ignored (dmsize needs the devicemapper graph driver, or containerd's devmapper snapshotter)`, dmOK: 1, dm: 1},
		{name: "state directory", setup: func(t *testing.T, a *app, _ *fakeDocker) {
			fakeWire(t, newFakeBackend())
			a.cfg.StateDir = filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(a.cfg.StateDir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, why: "opening the state directory; dmsize does nothing: state: ", dmOK: 1, dm: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, hook := test.NewNullLogger()
			docker := newFakeDocker(t)
			docker.info = devicemapperInfo
			calls := stubDM(t, tc.dmOK)
			a := &app{cfg: config{Mode: "strict", DockerHost: docker.host, StateDir: t.TempDir()}, log: l}
			tc.setup(t, a, docker)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			a.run(ctx)
			if a.setup.Load() != nil {
				t.Fatal("set up all the same")
			}
			if calls() != tc.dm {
				t.Fatalf("dm opened %d times, want %d", calls(), tc.dm)
			}
			why := a.notReady.Load()
			if tc.why == "" {
				if why != nil || len(hook.AllEntries()) != 1 || ctx.Err() == nil {
					t.Fatalf("gave up (%v) or returned before ctx ended: %v", why, hook.AllEntries())
				}
				return
			}
			if why == nil || !strings.HasPrefix(*why, tc.why) {
				t.Fatalf("gave up with %v, want %q", why, tc.why)
			}
			if e := hook.LastEntry(); e.Level != logrus.ErrorLevel || !strings.HasPrefix(*why, e.Message) {
				t.Fatalf("the reason is not logged: %v", e)
			}
			r := a.AuthZReq(createReq(`{"Labels":{"dm.size":"20G"}}`))
			if r.Allow || r.Msg != "dmsize: not active, so it cannot honour dm.size: "+*why {
				t.Fatalf("strict mode: %+v", r)
			}
			callFails(t, a, "GET", controlapi.PathContainers, "", http.StatusServiceUnavailable, controlapi.KindUnavailable, *why)
		})
	}
}

// containerd's devmapper snapshotter: its root is looked for under the host's root in the lvm
// flavor (HOST_ROOT), at SNAPSHOTTER_ROOT or containerd's default; without it, dmsize gives up
// naming where it looked.
func TestBackendForSnapshotter(t *testing.T) {
	host := t.TempDir()
	st := engine.Storage{Driver: "overlayfs", Snapshotter: "devmapper", ServerVersion: "28.0.0"}
	for snapRoot, where := range map[string]string{
		"":                               filepath.Join(host, "/var/lib/containerd/io.containerd.snapshotter.v1.devmapper"),
		"/var/lib/containerd/devmapper2": filepath.Join(host, "/var/lib/containerd/devmapper2"),
	} {
		l, hook := test.NewNullLogger()
		a := &app{cfg: config{HostRoot: host, SnapshotterRoot: snapRoot, StateDir: t.TempDir()}, log: l}
		b, _, refuse, _ := a.backendFor(nil, st)
		why := a.notReady.Load()
		if b != nil || refuse != nil || why == nil || !strings.HasPrefix(*why, "containerd's devmapper snapshotter: dmsize does nothing") || !strings.Contains(*why, where) {
			t.Fatalf("SNAPSHOTTER_ROOT=%q: %v, %v, %v; want a reason naming %s", snapRoot, b, refuse, why, where)
		}
		if e := hook.LastEntry(); e == nil || e.Level != logrus.ErrorLevel || e.Data["engine"] != "28.0.0" || e.Data["driver"] != "overlayfs" {
			t.Fatalf("not logged with the engine: %v", hook.AllEntries())
		}
	}
}

// Snapshot sizes are restored before serving only where some were recorded, and a missing
// device-mapper is logged, not fatal.
func TestRepairBeforeServing(t *testing.T) {
	l, hook := test.NewNullLogger()
	calls := stubDM(t, 0)
	cfg := config{StateDir: t.TempDir()}
	repairBeforeServing(cfg, l)
	if calls() != 0 || len(hook.AllEntries()) != 0 {
		t.Fatalf("nothing recorded, yet dm opened %d times: %v", calls(), hook.AllEntries())
	}
	if err := os.MkdirAll(snapshotter.SizesDir(cfg.StateDir), 0o700); err != nil {
		t.Fatal(err)
	}
	repairBeforeServing(cfg, l)
	if calls() != 1 || logged(hook, logrus.ErrorLevel, "opening device-mapper to restore snapshot sizes") == nil {
		t.Fatalf("dm opened %d times: %v", calls(), hook.AllEntries())
	}
}

// The volume pool's guard starts once the pool exists: an LVM pool that is active at once (its
// guard fails here without device-mapper, logged with the pool's device), dmsize's own pool
// not before its first volume (it keeps looking until ctx ends); nothing without volumes.
func TestGuardVolumePool(t *testing.T) {
	m := metrics.New("docker-thinpool")
	l, hook := test.NewNullLogger()
	(&app{log: l}).guardVolumePool(context.Background(), m, l) // no volume driver: returns

	d, _ := lvmVolumes(t, l)
	a := &app{log: l, vols: d}
	a.guardVolumePool(context.Background(), m, l)
	if e := logged(hook, logrus.ErrorLevel, "pool guard: opening device-mapper; the pool is not guarded"); e == nil || e.Data["pool"] != "vg-lv-tpool" {
		t.Fatalf("the LVM pool's guard: %v", hook.AllEntries())
	}
	if a.volumeGuard.Load() != nil {
		t.Fatal("a guard without device-mapper")
	}

	hook.Reset()
	own := &volumeDriver{}
	own.pool.Store(&vol.LazyPool{}) // not made yet
	a = &app{log: l, vols: own}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	a.guardVolumePool(ctx, m, l)
	if ctx.Err() == nil || len(hook.AllEntries()) != 0 || a.volumeGuard.Load() != nil {
		t.Fatalf("returned before ctx ended, or started a guard: %v", hook.AllEntries())
	}
}

// forgetStaleVolumeMounts does nothing without volumes, and keeps the mount IDs of a volume
// some container still refers to.
func TestForgetStaleVolumeMounts(t *testing.T) {
	l, _ := test.NewNullLogger()
	docker := newFakeDocker(t)
	eng := engineFor(t, docker)
	(&app{log: l}).forgetStaleVolumeMounts(context.Background(), eng)
	(&app{log: l, vols: &volumeDriver{}}).forgetStaleVolumeMounts(context.Background(), eng)
	if got := docker.listed(); len(got) != 0 {
		t.Fatalf("asked the engine %q without volumes", got)
	}
	d, k := newVolumes(t, "", l)
	if err := d.Create(&volume.CreateRequest{Name: "data"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Mount(&volume.MountRequest{Name: "data", ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	docker.users["data"] = 1 // created, not started: it refers to the volume
	(&app{log: l, vols: d}).forgetStaleVolumeMounts(context.Background(), eng)
	if rec, _ := d.v.Load().Get("data"); len(rec.Mounts) != 1 || !k.isMounted(d.v.Load().Path("data")) {
		t.Fatalf("a volume in use lost its mount: %+v", rec)
	}
}

// startGuard without device-mapper: no guard, logged.
func TestStartGuardWithoutDM(t *testing.T) {
	l, hook := test.NewNullLogger()
	a := &app{log: l, cfg: config{Guard: guard.DefaultPolicy()}}
	if g := a.startGuard(context.Background(), engine.Storage{PoolName: "docker-thinpool"}, metrics.New("docker-thinpool"), l); g != nil {
		t.Fatal("a guard without device-mapper")
	}
	if e := logged(hook, logrus.ErrorLevel, "pool guard: opening device-mapper"); e == nil || e.Data[logrus.ErrorKey] != errNoDM {
		t.Fatalf("not logged: %v", hook.AllEntries())
	}
}

// On containerd's snapshotter a fresh host's pool has no device yet, so the base size cannot
// be read when dmsize starts. The log says what strict mode does then (it denies every create
// with dm.size), and the next labelled create reads it again, so that creates are checked as
// soon as the pool has a device, without a restart of the plugin; no more often than
// baseRetry.
func TestBaseSizeReadAgain(t *testing.T) {
	old := baseRetry
	baseRetry = 0
	t.Cleanup(func() { baseRetry = old })
	l, hook := test.NewNullLogger()
	docker := newFakeDocker(t)
	docker.info = devicemapperInfo
	b := newFakeBackend()
	b.base, b.baseErr = 0, errors.New("containerd's pool has no device yet")
	fakeWire(t, b)
	stubDM(t, 1)
	a := &app{cfg: config{Mode: "strict", DockerHost: docker.host, StateDir: t.TempDir(), MaxSize: 1 << 40}, log: l}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.run(ctx); close(done) }()
	defer func() { cancel(); <-done; a.work.Wait() }()
	eventually(t, "the sizer", func() bool { return a.setup.Load() != nil })
	reads := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.baseReads
	}

	labelled := createReq(`{"Labels":{"dm.size":"20G"}}`)
	if r := a.AuthZReq(labelled); r.Allow || r.Msg != "dmsize: cannot check label dm.size=20G: dmsize could not read the engine's base device size: containerd's pool has no device yet" {
		t.Fatalf("a labelled create without a base size: %+v", r)
	}
	if reads() != 2 {
		t.Fatalf("base size read %d times, want at the start and at the labelled create", reads())
	}
	baseRetry = time.Hour
	if r := a.AuthZReq(labelled); r.Allow || !strings.HasSuffix(r.Msg, "no device yet") || reads() != 2 {
		t.Fatalf("read again within baseRetry: %+v, read %d times", r, reads())
	}
	baseRetry = 0
	b.mu.Lock()
	b.base, b.baseErr = 10<<30, nil // containerd made its first device
	b.mu.Unlock()
	if r := a.AuthZReq(createReq(`{"Labels":{"app":"web"}}`)); !r.Allow || reads() != 2 {
		t.Fatalf("a create without dm.size: %+v, base size read %d times", r, reads())
	}
	if r := a.AuthZReq(labelled); !r.Allow || reads() != 3 || a.base.Load() != 10<<30 {
		t.Fatalf("the base size is not read again: %+v, read %d times, base %d", r, reads(), a.base.Load())
	}
	if r := a.AuthZReq(labelled); !r.Allow || reads() != 3 {
		t.Fatalf("a known base size is read again: %+v, read %d times", r, reads())
	}
	if e := logged(hook, logrus.WarnLevel, "strict mode denies every create with dm.size until it can"); e == nil || e.Data[logrus.ErrorKey] == nil {
		t.Fatalf("the start does not say what strict mode does without a base size: %v", hook.AllEntries())
	}
	if e := logged(hook, logrus.InfoLevel, "read the engine's base device size"); e == nil || e.Data["base"] != int64(10<<30) {
		t.Fatalf("the base size read later is not logged: %v", hook.AllEntries())
	}
}

// The kernel's line at start: a warning below the floor, with what dmsize does then.
func TestKernelLine(t *testing.T) {
	msg, below := kernelLine("6.1.0-28-amd64", [3]uint32{4, 47, 0}, false)
	if below || msg != "kernel 6.1.0-28-amd64, device-mapper ioctl 4.47.0; the pool guard wakes on device-mapper event poll" {
		t.Fatalf("6.1: %q %v", msg, below)
	}
	msg, below = kernelLine("3.10.0-1160.el7.x86_64", [3]uint32{4, 37, 0}, true)
	if !below || !strings.Contains(msg, "a timer (no DM_DEV_ARM_POLL)") || !strings.Contains(msg, "older than Linux 4.14, the oldest dmsize serves") {
		t.Fatalf("3.10: %q %v", msg, below)
	}
}

type fakeDMVersion struct{}

func (fakeDMVersion) Version() ([3]uint32, error) { return [3]uint32{4, 48, 0}, nil }
func (fakeDMVersion) EventsByTimer() bool         { return false }

func TestSayKernel(t *testing.T) {
	l, hook := test.NewNullLogger()
	sayKernel(l, fakeDMVersion{})
	if e := hook.LastEntry(); e == nil || !strings.Contains(e.Message, "device-mapper ioctl 4.48.0") {
		t.Fatalf("%v", hook.AllEntries())
	}
}

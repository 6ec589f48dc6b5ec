package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/backend/graphdriver"
	"github.com/dmsize/dmsize/backend/snapshotter"
	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/guard"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/lvm"
	"github.com/dmsize/dmsize/kernel/release"
	"github.com/dmsize/dmsize/metrics"
	"github.com/dmsize/dmsize/sizer"
	vol "github.com/dmsize/dmsize/volume"
)

// app is the running plugin: the authz endpoints answer from the start; the sizer exists once
// the engine's API answers (at daemon boot the engine starts plugins before it serves its API,
// so nothing here may wait for it before the handshake).
type app struct {
	cfg config
	log logrus.FieldLogger
	eng *engine.Client
	// setup is what run set up, published once: a handler sees all of it or nothing.
	setup atomic.Pointer[setUp]
	// volumeGuard guards the volume pool, once it exists.
	volumeGuard atomic.Pointer[guard.Guard]
	// base is the engine's base device size, what a new container gets (strict mode); 0
	// while it is unknown (baseSize reads it again).
	base atomic.Int64
	// baseMu orders the reads of the base size; baseRead is when the last one was, baseErr
	// why it failed.
	baseMu   sync.Mutex
	baseRead time.Time
	baseErr  error
	// deletes are strict mode's DELETEs awaiting their response.
	deletes inflight
	// work is the sizer's work in flight; main waits for it at SIGTERM.
	work sync.WaitGroup
	// notReady says why there is no sizer, once run gave up (the control API answers it).
	notReady atomic.Pointer[string]
	// settled is closed once run has set up the sizer or given up: strict mode's labelled
	// creates that come while the plugin starts wait for it (readyWait at most).
	settledInit, settledOnce sync.Once
	settledCh                chan struct{}
	// vols is the volume driver (set before anything is served).
	vols *volumeDriver
}

// giveUp logs why dmsize does nothing and keeps it for the control API.
func (a *app) giveUp(log logrus.FieldLogger, err error, msg string) {
	why := msg
	if err != nil {
		why = msg + ": " + err.Error()
		log = log.WithError(err)
	}
	a.notReady.Store(&why)
	a.settle()
	log.Error(msg)
}

// readyWait bounds how long a labelled create waits for a starting plugin in strict mode (the
// engine calls an authorization plugin with a 30 s timeout; it restarts a plugin with itself).
var readyWait = 15 * time.Second

func (a *app) settled() chan struct{} {
	a.settledInit.Do(func() { a.settledCh = make(chan struct{}) })
	return a.settledCh
}

// settle says run is done starting: the sizer is set up, or run gave up.
func (a *app) settle() {
	ch := a.settled()
	a.settledOnce.Do(func() { close(ch) })
}

// awaitSettled waits until run has settled, at most d.
func (a *app) awaitSettled(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-a.settled():
	case <-t.C:
	}
}

// setUp is the plugin once run has set it up.
type setUp struct {
	sizer   *sizer.Sizer
	guard   *guard.Guard // nil: the pool is not guarded (see dockerd's log)
	backend storageBackend
	metrics *metrics.Metrics
}

// storageBackend is a storage backend as the plugin wires it: the sizer's three interfaces,
// and the base size strict mode checks labels against.
type storageBackend interface {
	sizer.Engine
	sizer.Devices
	sizer.Sizes
	BaseSize() (int64, error)
}

// containerdRootMount is where the containerd flavor mounts containerd's root; the lvm flavor
// sees it under HOST_ROOT.
const containerdRootMount = "/var/lib/containerd"

// dataRootMount is where config.json mounts the engine's data root (docker-root).
const dataRootMount = "/var/lib/docker"

// shutdownGrace is how long a stopping plugin lets a sizing in flight finish.
const shutdownGrace = 20 * time.Second

// openDM opens device-mapper (dm.Open); the unit tests replace it so that they never touch
// the host's.
var openDM = dm.Open

// reportKernel is sayKernel; the unit tests replace it (their device-mapper is not the kernel's).
var reportKernel = func(log logrus.FieldLogger, ctl *dm.Control) { sayKernel(log, ctl) }

// sayKernel says in one line which kernel dmsize runs on and how it serves it.
func sayKernel(log logrus.FieldLogger, dmi interface {
	Version() ([3]uint32, error)
	EventsByTimer() bool
}) {
	rel, err := release.Running()
	if err != nil {
		rel = "(uname: " + err.Error() + ")"
	}
	dmv, _ := dmi.Version()
	msg, below := kernelLine(rel, dmv, dmi.EventsByTimer())
	if below {
		log.Warn(msg)
		return
	}
	log.Info(msg)
}

// kernelLine is the start-up line about the kernel: its release, its device-mapper interface,
// how the guard learns of pool events. below: the kernel is older than release.Floor.
func kernelLine(rel string, dmv [3]uint32, byTimer bool) (msg string, below bool) {
	events := "device-mapper event poll"
	if byTimer {
		events = "a timer (no DM_DEV_ARM_POLL)"
	}
	msg = fmt.Sprintf("kernel %s, device-mapper ioctl %d.%d.%d; the pool guard wakes on %s", rel, dmv[0], dmv[1], dmv[2], events)
	if v, err := release.Parse(rel); err == nil && v.Before(release.Floor) {
		return msg + fmt.Sprintf("; this kernel is older than Linux %s, the oldest dmsize serves: what it lacks fails with the kernel's error (README: Kernels)", release.Floor), true
	}
	return msg, false
}

// wireBackend is (*app).backendFor; the unit tests replace it with a fake backend.
var wireBackend = (*app).backendFor

// run connects to the engine, wires the backend, the sizer, the guard and the metrics, and
// follows the engine's events until ctx ends. Problems that need the operator are logged with
// what to change.
func (a *app) run(ctx context.Context) {
	eng, err := engine.New(a.cfg.DockerHost)
	if err != nil {
		a.giveUp(a.log, err, "cannot reach the engine; dmsize does nothing")
		return
	}
	a.eng = eng
	a.log.WithField("api", a.cfg.DockerHost).Info("waiting for the engine's API")
	if err := eng.WaitReady(ctx); err != nil {
		return
	}
	a.forgetStaleVolumeMounts(ctx, eng)
	st, err := eng.Storage(ctx)
	if err != nil {
		a.giveUp(a.log, err, "reading the engine's storage; dmsize does nothing")
		return
	}
	// The engine's data root is mounted at dataRootMount in the plugin, whatever its path on
	// the host (docker-root.source in config.json).
	if st.DataRoot != dataRootMount {
		a.log.WithFields(logrus.Fields{"host": st.DataRoot, "plugin": dataRootMount}).Info("the engine's data root is mounted elsewhere in the plugin")
	}
	st = st.Within(dataRootMount)
	ctl, err := openDM()
	if err != nil {
		a.giveUp(a.log, err, "opening device-mapper; dmsize does nothing (does the plugin have /dev and CAP_SYS_ADMIN?)")
		return
	}
	reportKernel(a.log, ctl)
	backend, st, refuse, log := wireBackend(a, ctl, st)
	if backend == nil {
		ctl.Close()
		return
	}
	store, err := sizer.OpenStore(a.cfg.StateDir, log)
	if err != nil {
		ctl.Close()
		a.giveUp(log, err, "opening the state directory; dmsize does nothing")
		return
	}
	m := metrics.New(st.PoolName)
	policy := sizer.Policy{Max: a.cfg.MaxSize, Overcommit: a.cfg.Overcommit}
	g := a.startGuard(ctx, st, m, log)
	if g != nil {
		policy.Ceiling = g.Ceiling
	}
	s := sizer.New(sizer.Config{Engine: backend, Devices: backend, Sizes: backend, Store: store, Policy: policy, Log: log, Obs: m, Refuse: refuse})
	m.Sizer(func() float64 { return float64(s.Locks()) }, func() float64 { return float64(s.Queued()) }, func() float64 { return float64(backend.Holds()) })
	go a.guardVolumePool(ctx, m, a.log)
	a.baseMu.Lock()
	a.readBase(backend, log)
	a.baseMu.Unlock()
	a.work.Add(1)
	go func() {
		defer a.work.Done()
		s.Run(ctx, shutdownGrace)
	}()
	// Published after the base size is read: loaded first, it makes the base visible.
	a.setup.Store(&setUp{sizer: s, guard: g, backend: backend, metrics: m})
	a.settle()
	log.WithFields(logrus.Fields{"mode": a.cfg.Mode, "max_size": a.cfg.MaxSize, "overcommit": a.cfg.Overcommit}).Info("dmsize ready")
	eng.Follow(ctx, log, s.Reconcile, func(_ context.Context, ev engine.Event) {
		s.Handle(sizer.Event{Action: ev.Action, ID: ev.ID, Labels: ev.Labels})
	})
}

// baseRetry is how often, at most, the base size is read again while it is unknown: on
// containerd's snapshotter a read copies containerd's bolt database.
var baseRetry = time.Second

// baseSize is the engine's base device size for strict mode. While it is unknown (containerd's
// snapshotter on a fresh host: its pool has no device yet), each labelled create reads it again,
// no more often than baseRetry; the error says why it is not known.
func (a *app) baseSize() (int64, error) {
	if base := a.base.Load(); base > 0 {
		return base, nil
	}
	a.baseMu.Lock()
	defer a.baseMu.Unlock()
	su := a.setup.Load()
	if base := a.base.Load(); base > 0 || su == nil || time.Since(a.baseRead) < baseRetry {
		return base, a.baseErr
	}
	a.readBase(su.backend, a.log)
	return a.base.Load(), a.baseErr
}

// readBase reads the base size from the backend and says what strict mode does with what it
// found. The caller holds baseMu.
func (a *app) readBase(b storageBackend, log logrus.FieldLogger) {
	base, err := b.BaseSize()
	if err == nil && base <= 0 {
		err = fmt.Errorf("it is %d bytes", base)
	}
	first := a.baseRead.IsZero() // the read at the start
	a.baseRead, a.baseErr = time.Now(), err
	switch {
	case err != nil && first && a.cfg.Mode == "strict":
		log.WithError(err).Warn("cannot read the engine's base device size yet; strict mode denies every create with dm.size until it can, and reads it again at the next one")
	case err != nil && first:
		log.WithError(err).Debug("cannot read the engine's base device size yet (only strict mode needs it)")
	case err == nil:
		a.base.Store(base)
		if !first {
			log.WithField("base", base).Info("read the engine's base device size; strict mode checks dm.size labels from now on")
		}
	}
}

// backendFor sets up the backend of the engine's storage: the devicemapper graph driver, or
// containerd's devmapper snapshotter. It returns the storage as the guard sees it (its pool),
// the reason no container may grow (refuse), and a logger naming the engine; a nil backend
// after giving up.
func (a *app) backendFor(ctl *dm.Control, st engine.Storage) (storageBackend, engine.Storage, error, logrus.FieldLogger) {
	log := a.log.WithFields(logrus.Fields{"engine": st.ServerVersion, "driver": st.Driver})
	switch {
	case st.Snapshotter == "devmapper":
		root, snapRoot := containerdRootMount, a.cfg.SnapshotterRoot
		if a.cfg.HostRoot != "" {
			root = filepath.Join(a.cfg.HostRoot, containerdRootMount)
			if snapRoot != "" {
				snapRoot = filepath.Join(a.cfg.HostRoot, snapRoot)
			}
		}
		b, err := snapshotter.New(a.eng, ctl, st, snapshotter.Config{ContainerdRoot: root, Root: snapRoot, StateDir: a.cfg.StateDir})
		if err != nil {
			a.giveUp(log, err, "containerd's devmapper snapshotter: dmsize does nothing (install the containerd or lvm flavor of the plugin)")
			return nil, st, nil, log
		}
		st.PoolName = b.Name
		st.DataLoopFile, st.MetaLoopFile = b.LoopFiles()
		return b, st, nil, log.WithFields(logrus.Fields{"snapshotter": st.Snapshotter, "pool": st.PoolName})
	case st.Driver == "devicemapper":
		log = log.WithField("pool", st.PoolName)
		refuse := graphdriver.WhyNotGrow(st)
		if refuse != nil {
			log.Error(refuse)
		}
		b, err := graphdriver.New(a.eng, ctl, st)
		if err != nil {
			a.giveUp(log, err, "dmsize does nothing")
			return nil, st, nil, log
		}
		b.Log = log
		return b, st, refuse, log
	}
	a.giveUp(log, nil, fmt.Sprintf("the engine's storage driver is %q: dm.size labels are ignored (dmsize needs the devicemapper graph driver, or containerd's devmapper snapshotter)", st.Driver))
	return nil, st, nil, log
}

// repairBeforeServing gives snapshot devices back the sizes dmsize gave them, where containerd
// re-created them smaller (after a reboot). It runs before the plugin answers the engine: the
// engine enables its plugins before it starts the containers with a restart policy. It needs
// dmsize's own records, containerd's records (where the last start found them) and
// device-mapper, not the engine's API, which is not up yet.
func repairBeforeServing(cfg config, log logrus.FieldLogger) {
	if _, err := os.Stat(snapshotter.SizesDir(cfg.StateDir)); err != nil {
		return // no snapshot device was ever sized here (the graph driver, or nothing yet)
	}
	ctl, err := openDM()
	if err != nil {
		log.WithError(err).Error("opening device-mapper to restore snapshot sizes; they are restored once the engine is up")
		return
	}
	defer ctl.Close()
	if n := snapshotter.Repair(ctl, cfg.StateDir, log); n > 0 {
		log.WithField("devices", n).Info("restored the sizes of snapshot devices containerd re-created")
	}
}

// forgetStaleVolumeMounts drops the mount IDs of volumes no container refers to any more (their
// containers went while the plugin was down), once the engine answers.
func (a *app) forgetStaleVolumeMounts(ctx context.Context, eng *engine.Client) {
	if a.vols == nil {
		return
	}
	v, err := a.vols.volumes()
	if err != nil {
		return
	}
	n := v.ForgetStaleMounts(func(name string) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := eng.ContainersWithVolume(ctx, name)
		return n > 0, err
	})
	if n > 0 {
		a.log.WithField("volumes", n).Info("volumes: unmounted the volumes no container refers to any more")
	}
}

// guardVolumePool starts a guard on the volume pool once it exists (dmsize's own is made at
// the first volume create; an LVM pool is there once active): its loop files are extended as
// the engine's loop-lvm files are, an LVM pool with lvextend as a direct-lvm pool is. m is the
// engine pool's metrics, whose registry the volume pool's join.
func (a *app) guardVolumePool(ctx context.Context, m *metrics.Metrics, log logrus.FieldLogger) {
	if a.vols == nil {
		return
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		var st engine.Storage
		if lp := a.vols.pool.Load(); lp != nil {
			if p := lp.Pool(); p != nil {
				st = engine.Storage{PoolName: vol.PoolName, DataLoopFile: p.DataFile, MetaLoopFile: p.MetaFile}
			}
		} else if lp := a.vols.lvm.Load(); lp != nil {
			if name, err := lp.PoolDevice(); err == nil {
				st = engine.Storage{PoolName: name}
			}
		}
		if st.PoolName != "" {
			if g := a.startGuard(ctx, st, m.ForPool(st.PoolName), log.WithField("pool", st.PoolName)); g != nil {
				a.volumeGuard.Store(g)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// startGuard starts the pool guard on its own device-mapper handle; nil if it cannot run.
func (a *app) startGuard(ctx context.Context, st engine.Storage, m *metrics.Metrics, log logrus.FieldLogger) *guard.Guard {
	ctl, err := openDM()
	if err != nil {
		log.WithError(err).Error("pool guard: opening device-mapper; the pool is not guarded")
		return nil
	}
	var run lvm.Runner // none: this flavor of the plugin may not run the host's lvm
	if a.cfg.HostRoot != "" {
		run = lvm.Host(a.cfg.HostRoot)
	}
	ext, err := guard.NewExtender(ctl, st, a.cfg.Guard, run)
	if err != nil {
		ctl.Close()
		log.WithError(err).Error("pool guard: the pool is not guarded")
		return nil
	}
	g := &guard.Guard{Pool: st.PoolName, Ctl: ctl, Ext: ext, Policy: a.cfg.Guard, Log: log, Obs: m}
	go g.Run(ctx)
	return g
}

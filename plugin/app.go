package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/driver/dm"
	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/guard"
	"github.com/dmsize/dmsize/metrics"
	"github.com/dmsize/dmsize/sizer"
)

// app is the running plugin: the authz endpoints answer from the start; the sizer exists once
// the engine's API answers (at daemon boot the engine starts plugins before it serves its API,
// so nothing here may wait for it before the handshake).
type app struct {
	cfg   config
	log   logrus.FieldLogger
	eng   *engine.Client
	sizer atomic.Pointer[sizer.Sizer]
}

// run connects to the engine, sets the sizer up, reconciles and follows the engine's events
// until ctx ends. Problems that need the operator are logged with what to change.
func (a *app) run(ctx context.Context) {
	eng, err := engine.New(a.cfg.DockerHost)
	if err != nil {
		a.log.WithError(err).Error("cannot reach the engine; dmsize does nothing")
		return
	}
	a.eng = eng
	a.log.WithField("api", a.cfg.DockerHost).Info("waiting for the engine's API")
	if err := eng.WaitReady(ctx); err != nil {
		return
	}
	st, err := eng.Storage(ctx)
	if err != nil {
		a.log.WithError(err).Error("reading the engine's storage; dmsize does nothing")
		return
	}
	log := a.log.WithFields(logrus.Fields{"engine": st.ServerVersion, "driver": st.Driver, "pool": st.PoolName})
	if st.Driver != "devicemapper" {
		log.Errorf("the engine's storage driver is %q: dm.size labels are ignored (dmsize needs the devicemapper graph driver)", st.Driver)
		return
	}
	if !st.DeferredRemoval {
		log.Error(sizer.ErrDeferredRemovalOff)
	}
	ctl, err := dm.Open()
	if err != nil {
		log.WithError(err).Error("opening device-mapper; dmsize does nothing (does the plugin have /dev and CAP_SYS_ADMIN?)")
		return
	}
	store, err := sizer.OpenStore(a.cfg.StateDir)
	if err != nil {
		log.WithError(err).Error("opening the state directory; dmsize does nothing")
		return
	}
	m := metrics.New(st.PoolName)
	if a.cfg.MetricsAddr != "off" {
		go func() {
			if err := m.Serve(ctx, a.cfg.MetricsAddr); err != nil {
				log.WithError(err).Errorf("serving metrics on %s (docker plugin set dmsize METRICS_ADDR=...)", a.cfg.MetricsAddr)
			}
		}()
	}
	policy := sizer.Policy{Max: a.cfg.MaxSize, Overcommit: a.cfg.Overcommit}
	if g := a.startGuard(ctx, st, m, log); g != nil {
		policy.Ceiling = g.Ceiling
	}
	s, err := sizer.New(eng, ctl, st, policy, store, sizer.NewHolder(a.cfg.MapperDir), log)
	if err != nil {
		log.WithError(err).Error("dmsize does nothing")
		return
	}
	s.Observe = m.Sized
	a.sizer.Store(s)
	log.WithFields(logrus.Fields{"mode": a.cfg.Mode, "max_size": a.cfg.MaxSize, "overcommit": a.cfg.Overcommit}).Info("dmsize ready")
	eng.Follow(ctx, log, s.Reconcile, func(ctx context.Context, ev engine.Event) {
		if _, ok := ev.Labels[engine.SizeLabel]; !ok {
			return
		}
		// The engine drops events for subscribers slower than 100 ms: never block the stream.
		switch ev.Action {
		case "create", "start":
			go func() {
				start := time.Now()
				r, err := s.Ensure(ctx, ev.ID)
				if err != nil {
					return // logged by Ensure, once
				}
				log.WithFields(logrus.Fields{"container": r.Container, "event": ev.Action, "action": r.Action, "ms": time.Since(start).Milliseconds()}).Debug("event handled")
			}()
		case "destroy":
			go s.Forget(ev.ID)
		}
	})
}

// startGuard starts the pool guard on its own device-mapper handle; nil if it cannot run.
func (a *app) startGuard(ctx context.Context, st engine.Storage, m *metrics.Metrics, log logrus.FieldLogger) *guard.Guard {
	ctl, err := dm.Open()
	if err != nil {
		log.WithError(err).Error("pool guard: opening device-mapper; the pool is not guarded")
		return nil
	}
	ext, err := guard.NewExtender(ctl, st, a.cfg.Guard, guard.HostLVM(a.cfg.HostRoot))
	if err != nil {
		ctl.Close()
		log.WithError(err).Error("pool guard: the pool is not guarded")
		return nil
	}
	g := &guard.Guard{Pool: st.PoolName, Ctl: ctl, Ext: ext, Policy: a.cfg.Guard, Log: log, Obs: m}
	go g.Run(ctx)
	return g
}

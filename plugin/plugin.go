// Package plugin is the dmsize managed Docker plugin, wired: its settings, the engine's
// requests (authorization, volumes), the control API's server, and Main, which
// cmd/dmsize-plugin runs. What it does is in the packages below it.
package plugin

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/docker/go-connections/sockets"
	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/internal/crashpoint"
)

// socketName is the plugin socket under controlapi.PluginSocketDir, as named in config.json.
const socketName = "dmsize"

// version is the build's, as Main was given it.
var version = "dev"

// Main runs the plugin until SIGTERM or SIGINT: the command dmsize-plugin.
func Main(buildVersion string) {
	version = buildVersion
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}
	logrus.SetFormatter(&logrus.JSONFormatter{})
	// dockerd copies a managed plugin's stdout into its log at info level, stderr at error.
	logrus.SetOutput(os.Stdout)
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		logrus.WithError(err).Fatal("bad plugin setting (docker plugin set dmsize ...)")
	}
	if lvl, err := logrus.ParseLevel(cfg.LogLevel); err == nil {
		logrus.SetLevel(lvl)
	} else {
		logrus.WithField("LOG_LEVEL", cfg.LogLevel).Warn("unknown log level; using info")
	}
	log := logrus.WithField("plugin", "dmsize")
	// Listen before the repairs: dockerd dials a plugin it (re)started 0.5 s after starting it and
	// then only every 3 s; a plugin that dies between a failed first dial and the next one is
	// disabled for good. A listening socket takes the dial; requests wait in the backlog until
	// the handler serves them, once the records are repaired.
	os.MkdirAll(controlapi.PluginSocketDir, 0o755)
	l, err := sockets.NewUnixSocket(filepath.Join(controlapi.PluginSocketDir, socketName+".sock"), 0)
	if err != nil {
		log.WithError(err).Fatal("listening on the plugin socket")
	}
	defer os.Remove(l.Addr().String())
	a := &app{cfg: cfg, log: log}

	switch step, err := crashpoint.Arm(filepath.Join(cfg.StateDir, "crash-at")); {
	case err != nil:
		log.WithError(err).Warn("reading the test crash point; none armed")
	case step != "":
		log.WithField("step", step).Warn("test crash point armed")
	}
	repairBeforeServing(cfg, log)
	vd := openVolumes(cfg, log)
	a.vols = vd
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go a.run(ctx)

	go func() {
		if err := a.serveControl(ctx, controlapi.PluginSocketDir); err != nil {
			log.WithError(err).Error("serving the control API; the dmsize CLI cannot reach this plugin")
		}
	}()
	h := pluginHandler(vd, a)
	log.WithFields(logrus.Fields{"version": version, "socket": socketName, "mode": cfg.Mode}).Info("dmsize plugin serving")
	errc := make(chan error, 1)
	go func() { errc <- h.Serve(l) }()
	select {
	case err := <-errc:
		log.WithError(err).Fatal("serving the plugin socket")
	case <-ctx.Done():
		// Let the sizings in flight finish (the sizer bounds that by shutdownGrace): a
		// crash-safe step cut short is repaired at the next start, a finished one needs nothing.
		log.Info("stopping; finishing the work in flight")
		done := make(chan struct{})
		go func() { a.work.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(shutdownGrace + 5*time.Second):
			log.Warn("stopping with work in flight; the next start repairs it")
		}
	}
}

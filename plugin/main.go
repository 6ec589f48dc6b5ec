// Command dmsize-plugin is the dmsize managed Docker plugin.
//
// This first cut only answers the plugin handshake and, as a docker.authz/1.0 plugin, allows
// every request: it proves the packaging and the engine wiring. Sizing and the pool guard come
// in later.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/sirupsen/logrus"
)

// socketName is the plugin socket under /run/docker/plugins, as named in config.json.
const socketName = "dmsize"

var version = "dev"

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}
	logrus.SetFormatter(&logrus.JSONFormatter{})
	if lvl, err := logrus.ParseLevel(envOr("LOG_LEVEL", "info")); err == nil {
		logrus.SetLevel(lvl)
	} else {
		logrus.WithField("LOG_LEVEL", os.Getenv("LOG_LEVEL")).Warn("unknown log level; using info")
	}
	h := authorization.NewHandler(allowAll{})
	logrus.WithFields(logrus.Fields{"version": version, "socket": socketName}).Info("dmsize plugin serving")
	if err := h.ServeUnix(socketName, 0); err != nil {
		logrus.WithError(err).Fatal("serving the plugin socket")
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

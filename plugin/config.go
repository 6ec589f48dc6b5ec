package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dmsize/dmsize/driver/size"
)

// config is the plugin's settings: environment variables, set with `docker plugin set`.
type config struct {
	Mode       string  // MODE: "events" (default) or "strict" (also the docker.authz/1.0 plugin)
	MaxSize    int64   // MAX_SIZE: the largest dm.size a label may ask for
	Overcommit float64 // OVERCOMMIT: see sizer.Policy
	LogLevel   string  // LOG_LEVEL
	StateDir   string  // STATE_DIR: the plugin's records, on the host
	DockerHost string  // DOCKER_HOST: the engine's API socket as mounted in the plugin
	MapperDir  string  // where /dev/mapper is
}

func loadConfig(getenv func(string) string) (config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	c := config{
		Mode:       get("MODE", "events"),
		LogLevel:   get("LOG_LEVEL", "info"),
		StateDir:   get("STATE_DIR", "/var/lib/docker/dmsize"),
		DockerHost: get("DOCKER_HOST", "unix:///run/docker.sock"),
		MapperDir:  "/dev/mapper",
	}
	if c.Mode != "events" && c.Mode != "strict" {
		return c, fmt.Errorf("MODE=%q: must be events or strict", c.Mode)
	}
	var err error
	if c.MaxSize, err = size.Parse(get("MAX_SIZE", "1T")); err != nil {
		return c, fmt.Errorf("MAX_SIZE: %v", err)
	}
	if c.Overcommit, err = strconv.ParseFloat(get("OVERCOMMIT", "1.5"), 64); err != nil || c.Overcommit <= 0 {
		return c, fmt.Errorf("OVERCOMMIT=%q: must be a positive number (e.g. 1.5)", getenv("OVERCOMMIT"))
	}
	return c, nil
}

package plugin

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dmsize/dmsize/guard"
	"github.com/dmsize/dmsize/size"
	"github.com/dmsize/dmsize/volume"
)

// config is the plugin's settings, as loadConfig reads them from the settings table below.
type config struct {
	Mode       string  // MODE: "events" (default) or "strict" (also the docker.authz/1.0 plugin)
	MaxSize    int64   // MAX_SIZE: the largest dm.size a label may ask for
	Overcommit float64 // OVERCOMMIT: see sizer.Policy; 0 is no bound
	LogLevel   string  // LOG_LEVEL
	StateDir   string  // STATE_DIR: the plugin's records, on the host
	DockerHost string  // DOCKER_HOST: the engine's API socket as mounted in the plugin

	Guard    guard.Policy // GUARD, GUARD_THRESHOLD, GUARD_STEP, MAX_POOL_SIZE, MIN_HOST_FREE, GUARD_INTERVAL
	HostRoot string       // HOST_ROOT: the host's / as the plugin sees it, for the host's lvm; set only in the lvm flavor
	// SnapshotterRoot: SNAPSHOTTER_ROOT, containerd's devmapper snapshotter's root_path on the
	// host when not containerd's default; "" for the default.
	SnapshotterRoot string

	// Volumes: VOLUME_POOL, VOLUME_POOL_SIZE, VOLUME_SIZE, VOLUME_FS (the volume driver's pool
	// and defaults). VolumePool is an LVM thin pool "VG/LV", or "" for dmsize's own pool.
	VolumePool                 string
	VolumePoolSize, VolumeSize int64
	VolumeFS                   string
}

// setting is one of the plugin's settings: an environment variable, set with `docker plugin
// set`. The table below is the one source: loadConfig applies it, and TestSettingsAreTheOneSource
// checks config.json's env and the README's settings table against it (-update writes them).
type setting struct {
	Name, Default, Help string
	// Internal settings are the flavors' to set (config.json's env and the README leave them out).
	Internal bool
	// apply reads v (trimmed; the Default when unset or blank) into c.
	apply func(c *config, v string) error
}

var settings = []setting{
	{Name: "MODE", Default: "events",
		Help: "events: follow the engine's events; strict: also check and size each labelled create (list dmsize in the engine's authorization-plugins)",
		apply: func(c *config, v string) error {
			if c.Mode = v; v != "events" && v != "strict" {
				return fmt.Errorf("MODE=%q: must be events or strict", v)
			}
			return nil
		}},
	{Name: "MAX_SIZE", Default: "1T",
		Help:  "the largest size a dm.size label may ask for (Docker's size grammar)",
		apply: sizeSetting("MAX_SIZE", func(c *config) *int64 { return &c.MaxSize })},
	// No bound by default: labels are quotas, as --storage-opt size is, and the sizer warns
	// when the sizes given pass the pool.
	{Name: "OVERCOMMIT", Default: "none",
		Help: "none or 0: no bound; a label is a quota, as --storage-opt size is, and dmsize warns as LVM does when the virtual sizes pass the pool. A number above 0 and at most 1000: the sizes dmsize has given, this one included, may add up to this many times the pool's data size",
		apply: func(c *config, v string) error {
			if v == "none" || v == "0" {
				return nil
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f > 0 && f <= 1000) { // also refuses NaN and ±Inf
				return fmt.Errorf("OVERCOMMIT=%q: want none, 0 or unset (no bound), or a number above 0 and at most 1000 (e.g. 1.5)", v)
			}
			c.Overcommit = f
			return nil
		}},
	{Name: "STATE_DIR", Default: "/var/lib/docker/dmsize",
		Help:  "where dmsize keeps its records, inside the docker-root mount",
		apply: func(c *config, v string) error { c.StateDir = v; return nil }},
	{Name: "SNAPSHOTTER_ROOT", Default: "",
		Help: "Docker 25+: the devmapper snapshotter's root_path, if not containerd's default (/var/lib/containerd/io.containerd.snapshotter.v1.devmapper); it must be under containerd's root, /var/lib/containerd, the only part of containerd's the plugin sees",
		apply: func(c *config, v string) error {
			if c.SnapshotterRoot = v; v != "" && !strings.HasPrefix(filepath.Clean(v)+"/", "/var/lib/containerd/") {
				return fmt.Errorf("SNAPSHOTTER_ROOT=%q: must be under containerd's root, /var/lib/containerd (the plugin sees nothing else of containerd's; containerd-root.source moves that root)", v)
			}
			return nil
		}},
	{Name: "LOG_LEVEL", Default: "info",
		Help:  "debug, info, warn or error",
		apply: func(c *config, v string) error { c.LogLevel = v; return nil }},
	{Name: "GUARD", Default: "on",
		Help: "on: extend the pool before it fills; off: only watch, warn and export metrics",
		apply: func(c *config, v string) error {
			if v != "on" && v != "off" {
				return fmt.Errorf("GUARD=%q: must be on or off", v)
			}
			c.Guard.Extend = v == "on"
			return nil
		}},
	{Name: "GUARD_THRESHOLD", Default: "80%",
		Help: "the used share of the pool's data or metadata at which the guard extends that part",
		apply: func(c *config, v string) (err error) {
			if c.Guard.Threshold, err = guard.ParseThreshold(v); err != nil {
				return fmt.Errorf("GUARD_THRESHOLD: %v", err)
			}
			return nil
		}},
	{Name: "GUARD_STEP", Default: "20%",
		Help: "one extension: a share of the current size (20%) or a size (2G); metadata grows by at least 8 MiB",
		apply: func(c *config, v string) (err error) {
			if c.Guard.Step, err = guard.ParseStep(v); err != nil {
				return fmt.Errorf("GUARD_STEP: %v", err)
			}
			return nil
		}},
	{Name: "MAX_POOL_SIZE", Default: "0",
		Help: "the largest pool data size the guard extends to; 0 or none: no cap",
		apply: func(c *config, v string) (err error) {
			if v == "0" || v == "none" {
				c.Guard.MaxData = 0
				return nil
			}
			if c.Guard.MaxData, err = size.Parse(v); err != nil {
				return fmt.Errorf("MAX_POOL_SIZE: %v (0 or none: no cap)", err)
			}
			return nil
		}},
	{Name: "MIN_HOST_FREE", Default: "5G",
		Help: "loop-lvm: the free space left on the host filesystem that holds the sparse files, counting what the files may still take",
		apply: func(c *config, v string) (err error) {
			if v == "0" { // size.Parse refuses zero; here it means "keep nothing free"
				c.Guard.MinHostFree = 0
				return nil
			}
			if c.Guard.MinHostFree, err = size.Parse(v); err != nil {
				return fmt.Errorf("MIN_HOST_FREE: %v", err)
			}
			return nil
		}},
	{Name: "GUARD_INTERVAL", Default: "10s",
		Help: "the slowest re-check of the pool when no device-mapper event comes",
		apply: func(c *config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > time.Hour {
				return fmt.Errorf("GUARD_INTERVAL=%q: want a duration from 1s to 1h (e.g. 10s)", v)
			}
			c.Guard.Interval = d
			return nil
		}},
	// Before VOLUME_POOL, which needs it.
	{Name: "HOST_ROOT", Default: "", Internal: true,
		Help:  "the host's / as the plugin sees it, for the host's lvm; set by the lvm flavor only",
		apply: func(c *config, v string) error { c.HostRoot = v; return nil }},
	{Name: "VOLUME_POOL", Default: "",
		Help: "empty: volumes in dmsize's own pool, on sparse files under STATE_DIR/volumes/pool; VG/LV: in that LVM thin pool of the operator's, as thin LVs made with the host's lvm (the dmsize-lvm flavor only; see docs/volumes.md)",
		apply: func(c *config, v string) error {
			if c.VolumePool = v; v == "" {
				return nil
			}
			if _, _, err := volume.ParseLVMPool(v); err != nil {
				return err
			}
			if c.HostRoot == "" {
				return fmt.Errorf("VOLUME_POOL=%s: volumes in an LVM thin pool are made with the host's lvm, which only the lvm flavor of the plugin runs (docker plugin install REGISTRY/dmsize-lvm:VERSION)", v)
			}
			return nil
		}},
	{Name: "VOLUME_POOL_SIZE", Default: "100G",
		Help:  "the volume pool's data size at its creation: a sparse file under STATE_DIR/volumes/pool (the guard extends it)",
		apply: sizeSetting("VOLUME_POOL_SIZE", func(c *config) *int64 { return &c.VolumePoolSize })},
	{Name: "VOLUME_SIZE", Default: "10G",
		Help:  "a volume's size when docker volume create gives no -o size",
		apply: sizeSetting("VOLUME_SIZE", func(c *config) *int64 { return &c.VolumeSize })},
	{Name: "VOLUME_FS", Default: "ext4",
		Help: "a volume's filesystem when docker volume create gives no -o fs: ext4 or xfs",
		apply: func(c *config, v string) error {
			if c.VolumeFS = v; v != "ext4" && v != "xfs" {
				return fmt.Errorf("VOLUME_FS=%q: must be ext4 or xfs", v)
			}
			return nil
		}},
	{Name: "DOCKER_HOST", Default: "unix:///run/docker.sock", Internal: true,
		Help:  "the engine's API socket as mounted in the plugin (the docker-socket mount)",
		apply: func(c *config, v string) error { c.DockerHost = v; return nil }},
}

// sizeSetting reads a size in Docker's grammar into the field that field points to.
func sizeSetting(name string, field func(*config) *int64) func(*config, string) error {
	return func(c *config, v string) (err error) {
		if *field(c), err = size.Parse(v); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		return nil
	}
}

// loadConfig applies every setting, in the table's order, to the guard's default policy.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{Guard: guard.DefaultPolicy()}
	for _, st := range settings {
		v := strings.TrimSpace(getenv(st.Name))
		if v == "" {
			v = st.Default
		}
		if err := st.apply(&c, v); err != nil {
			return c, err
		}
	}
	return c, nil
}

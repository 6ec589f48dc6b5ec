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

// config is the plugin's settings: environment variables, set with `docker plugin set`.
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
	}
	if c.Mode != "events" && c.Mode != "strict" {
		return c, fmt.Errorf("MODE=%q: must be events or strict", c.Mode)
	}
	var err error
	if c.MaxSize, err = size.Parse(get("MAX_SIZE", "1T")); err != nil {
		return c, fmt.Errorf("MAX_SIZE: %v", err)
	}
	// No bound by default: labels are quotas, as --storage-opt size is, and the sizer warns
	// when the sizes given pass the pool.
	if v := get("OVERCOMMIT", "none"); v != "none" && v != "0" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0 && f <= 1000) { // also refuses NaN and ±Inf
			return c, fmt.Errorf("OVERCOMMIT=%q: want none, 0 or unset (no bound), or a number above 0 and at most 1000 (e.g. 1.5)", v)
		}
		c.Overcommit = f
	}
	c.HostRoot = get("HOST_ROOT", "")
	if c.SnapshotterRoot = get("SNAPSHOTTER_ROOT", ""); c.SnapshotterRoot != "" && !strings.HasPrefix(filepath.Clean(c.SnapshotterRoot)+"/", "/var/lib/containerd/") {
		return c, fmt.Errorf("SNAPSHOTTER_ROOT=%q: must be under containerd's root, /var/lib/containerd (the plugin sees nothing else of containerd's; containerd-root.source moves that root)", c.SnapshotterRoot)
	}
	if c.VolumePool = get("VOLUME_POOL", ""); c.VolumePool != "" {
		if _, _, err := volume.ParseLVMPool(c.VolumePool); err != nil {
			return c, err
		}
		if c.HostRoot == "" {
			return c, fmt.Errorf("VOLUME_POOL=%s: volumes in an LVM thin pool are made with the host's lvm, which only the lvm flavor of the plugin runs (docker plugin install REGISTRY/dmsize-lvm:VERSION)", c.VolumePool)
		}
	}
	if c.VolumePoolSize, err = size.Parse(get("VOLUME_POOL_SIZE", "100G")); err != nil {
		return c, fmt.Errorf("VOLUME_POOL_SIZE: %v", err)
	}
	if c.VolumeSize, err = size.Parse(get("VOLUME_SIZE", "10G")); err != nil {
		return c, fmt.Errorf("VOLUME_SIZE: %v", err)
	}
	if c.VolumeFS = get("VOLUME_FS", "ext4"); c.VolumeFS != "ext4" && c.VolumeFS != "xfs" {
		return c, fmt.Errorf("VOLUME_FS=%q: must be ext4 or xfs", c.VolumeFS)
	}
	c.Guard = guard.DefaultPolicy()
	switch g := get("GUARD", "on"); g {
	case "on":
	case "off":
		c.Guard.Extend = false
	default:
		return c, fmt.Errorf("GUARD=%q: must be on or off", g)
	}
	if v := getenv("GUARD_THRESHOLD"); strings.TrimSpace(v) != "" {
		if c.Guard.Threshold, err = guard.ParseThreshold(v); err != nil {
			return c, fmt.Errorf("GUARD_THRESHOLD: %v", err)
		}
	}
	if v := getenv("GUARD_STEP"); strings.TrimSpace(v) != "" {
		if c.Guard.Step, err = guard.ParseStep(v); err != nil {
			return c, fmt.Errorf("GUARD_STEP: %v", err)
		}
	}
	if v := get("MAX_POOL_SIZE", "0"); v != "0" && v != "none" {
		if c.Guard.MaxData, err = size.Parse(v); err != nil {
			return c, fmt.Errorf("MAX_POOL_SIZE: %v (0 or none: no cap)", err)
		}
	}
	switch v := strings.TrimSpace(getenv("MIN_HOST_FREE")); v {
	case "":
	case "0": // size.Parse refuses zero; here it means "keep nothing free"
		c.Guard.MinHostFree = 0
	default:
		if c.Guard.MinHostFree, err = size.Parse(v); err != nil {
			return c, fmt.Errorf("MIN_HOST_FREE: %v", err)
		}
	}
	if v := getenv("GUARD_INTERVAL"); strings.TrimSpace(v) != "" {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < time.Second || d > time.Hour {
			return c, fmt.Errorf("GUARD_INTERVAL=%q: want a duration from 1s to 1h (e.g. 10s)", v)
		}
		c.Guard.Interval = d
	}
	return c, nil
}

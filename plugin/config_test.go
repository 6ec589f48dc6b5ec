package plugin

import (
	"strings"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	c, err := loadConfig(env(nil))
	if err != nil || c.Mode != "events" || c.MaxSize != 1<<40 || c.Overcommit != 0 || c.StateDir != "/var/lib/docker/dmsize" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = loadConfig(env(map[string]string{"MODE": "strict", "MAX_SIZE": "100G", "OVERCOMMIT": "3"}))
	if err != nil || c.Mode != "strict" || c.MaxSize != 100<<30 || c.Overcommit != 3 {
		t.Fatalf("set: %+v, %v", c, err)
	}
	if !c.Guard.Extend || c.Guard.Threshold != 0.8 || c.Guard.Step.Percent != 20 || c.Guard.MaxData != 0 || c.Guard.MinHostFree != 5<<30 {
		t.Fatalf("guard defaults: %+v", c)
	}
	c, err = loadConfig(env(map[string]string{"GUARD": "off", "GUARD_THRESHOLD": "70%", "GUARD_STEP": "2G", "MAX_POOL_SIZE": "500G", "MIN_HOST_FREE": "0", "GUARD_INTERVAL": "30s"}))
	if err != nil || c.Guard.Extend || c.Guard.Threshold != 0.7 || c.Guard.Step.Bytes != 2<<30 || c.Guard.MaxData != 500<<30 || c.Guard.MinHostFree != 0 || c.Guard.Interval.Seconds() != 30 {
		t.Fatalf("guard set: %+v, %v", c.Guard, err)
	}
	if c, err := loadConfig(env(map[string]string{"SNAPSHOTTER_ROOT": "/var/lib/containerd/devmapper"})); err != nil || c.SnapshotterRoot != "/var/lib/containerd/devmapper" {
		t.Fatalf("SNAPSHOTTER_ROOT: %+v, %v", c, err)
	}
	if c.VolumePoolSize != 100<<30 || c.VolumeSize != 10<<30 || c.VolumeFS != "ext4" {
		t.Fatalf("volume defaults: %+v", c)
	}
	if c, err := loadConfig(env(map[string]string{"VOLUME_POOL_SIZE": "20G", "VOLUME_SIZE": "1G", "VOLUME_FS": "xfs"})); err != nil || c.VolumePoolSize != 20<<30 || c.VolumeSize != 1<<30 || c.VolumeFS != "xfs" {
		t.Fatalf("volume settings: %+v, %v", c, err)
	}
	if c, err := loadConfig(env(map[string]string{"VOLUME_POOL": "docker/volumes", "HOST_ROOT": "/proc/1/root"})); err != nil || c.VolumePool != "docker/volumes" {
		t.Fatalf("VOLUME_POOL: %+v, %v", c, err)
	}
	if _, err := loadConfig(env(map[string]string{"VOLUME_POOL": "docker/volumes"})); err == nil || !strings.Contains(err.Error(), "only the lvm flavor") {
		t.Fatalf("VOLUME_POOL without the lvm flavor: %v", err)
	}
	for kv, want := range map[[2]string]string{
		{"VOLUME_POOL", "docker"}:                        "VOLUME_POOL",
		{"VOLUME_POOL", "docker/-x"}:                     "VOLUME_POOL",
		{"VOLUME_POOL", "a/b/c"}:                         "VOLUME_POOL",
		{"VOLUME_POOL_SIZE", "huge"}:                     "VOLUME_POOL_SIZE",
		{"VOLUME_SIZE", "-1"}:                            "VOLUME_SIZE",
		{"VOLUME_FS", "btrfs"}:                           "VOLUME_FS",
		{"MODE", "sometimes"}:                            "MODE",
		{"MAX_SIZE", "lots"}:                             "MAX_SIZE",
		{"GUARD", "maybe"}:                               "GUARD",
		{"GUARD_THRESHOLD", "100"}:                       "GUARD_THRESHOLD",
		{"GUARD_THRESHOLD", "x"}:                         "GUARD_THRESHOLD",
		{"GUARD_STEP", "0%"}:                             "GUARD_STEP",
		{"GUARD_STEP", "-2G"}:                            "GUARD_STEP",
		{"MAX_POOL_SIZE", "big"}:                         "MAX_POOL_SIZE",
		{"MIN_HOST_FREE", "some"}:                        "MIN_HOST_FREE",
		{"GUARD_INTERVAL", "1ms"}:                        "GUARD_INTERVAL",
		{"SNAPSHOTTER_ROOT", "/srv/ctrd"}:                "SNAPSHOTTER_ROOT",
		{"SNAPSHOTTER_ROOT", "/var/lib/containerd/../x"}: "SNAPSHOTTER_ROOT",
	} {
		if _, err := loadConfig(env(map[string]string{kv[0]: kv[1]})); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%s: %v", kv[0], kv[1], err)
		}
	}
}

// OVERCOMMIT: no bound by default (labels are quotas, like --storage-opt size), else a finite
// factor above 0 and at most 1000.
func TestLoadConfigOvercommit(t *testing.T) {
	for v, want := range map[string]float64{"": 0, " ": 0, "none": 0, "0": 0, "1.5": 1.5, " 3 ": 3, "1000": 1000, "1e2": 100} {
		c, err := loadConfig(func(k string) string { return map[string]string{"OVERCOMMIT": v}[k] })
		if err != nil || c.Overcommit != want {
			t.Errorf("OVERCOMMIT=%q: %v, %v; want %v", v, c.Overcommit, err, want)
		}
	}
	for _, v := range []string{"inf", "+Inf", "NaN", "1e9", "1000.5", "-1", "0.0", "many", "1.5x"} {
		_, err := loadConfig(func(k string) string { return map[string]string{"OVERCOMMIT": v}[k] })
		if err == nil || !strings.Contains(err.Error(), "OVERCOMMIT") || !strings.Contains(err.Error(), "none") {
			t.Errorf("OVERCOMMIT=%q: %v; want an error naming OVERCOMMIT and the accepted forms", v, err)
		}
	}
}

package main

import (
	"strings"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	c, err := loadConfig(env(nil))
	if err != nil || c.Mode != "events" || c.MaxSize != 1<<40 || c.Overcommit != 1.5 || c.StateDir != "/var/lib/docker/dmsize" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = loadConfig(env(map[string]string{"MODE": "strict", "MAX_SIZE": "100G", "OVERCOMMIT": "3"}))
	if err != nil || c.Mode != "strict" || c.MaxSize != 100<<30 || c.Overcommit != 3 {
		t.Fatalf("set: %+v, %v", c, err)
	}
	if !c.Guard.Extend || c.Guard.Threshold != 0.8 || c.Guard.Step.Percent != 20 || c.Guard.MaxData != 0 || c.Guard.MinHostFree != 5<<30 || c.MetricsAddr != "127.0.0.1:9434" {
		t.Fatalf("guard defaults: %+v", c)
	}
	c, err = loadConfig(env(map[string]string{"GUARD": "off", "GUARD_THRESHOLD": "70%", "GUARD_STEP": "2G", "MAX_POOL_SIZE": "500G", "MIN_HOST_FREE": "0", "GUARD_INTERVAL": "30s"}))
	if err != nil || c.Guard.Extend || c.Guard.Threshold != 0.7 || c.Guard.Step.Bytes != 2<<30 || c.Guard.MaxData != 500<<30 || c.Guard.MinHostFree != 0 || c.Guard.Interval.Seconds() != 30 {
		t.Fatalf("guard set: %+v, %v", c.Guard, err)
	}
	for kv, want := range map[[2]string]string{
		{"MODE", "sometimes"}:      "MODE",
		{"MAX_SIZE", "lots"}:       "MAX_SIZE",
		{"OVERCOMMIT", "-1"}:       "OVERCOMMIT",
		{"OVERCOMMIT", "many"}:     "OVERCOMMIT",
		{"GUARD", "maybe"}:         "GUARD",
		{"GUARD_THRESHOLD", "100"}: "GUARD_THRESHOLD",
		{"GUARD_THRESHOLD", "x"}:   "GUARD_THRESHOLD",
		{"GUARD_STEP", "0%"}:       "GUARD_STEP",
		{"GUARD_STEP", "-2G"}:      "GUARD_STEP",
		{"MAX_POOL_SIZE", "big"}:   "MAX_POOL_SIZE",
		{"MIN_HOST_FREE", "some"}:  "MIN_HOST_FREE",
		{"GUARD_INTERVAL", "1ms"}:  "GUARD_INTERVAL",
	} {
		if _, err := loadConfig(env(map[string]string{kv[0]: kv[1]})); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%s: %v", kv[0], kv[1], err)
		}
	}
}

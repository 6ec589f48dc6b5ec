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
	for kv, want := range map[[2]string]string{
		{"MODE", "sometimes"}:  "MODE",
		{"MAX_SIZE", "lots"}:   "MAX_SIZE",
		{"OVERCOMMIT", "-1"}:   "OVERCOMMIT",
		{"OVERCOMMIT", "many"}: "OVERCOMMIT",
	} {
		if _, err := loadConfig(env(map[string]string{kv[0]: kv[1]})); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%s: %v", kv[0], kv[1], err)
		}
	}
}

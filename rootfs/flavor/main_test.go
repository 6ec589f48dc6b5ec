package main

import (
	"encoding/json"
	"os"
	"testing"
)

// The lvm flavor is the default config plus exactly what running the host's lvm needs.
func TestLVMFlavor(t *testing.T) {
	in, err := os.ReadFile("../../config.json")
	if err != nil {
		t.Fatal(err)
	}
	var def map[string]any
	if err := json.Unmarshal(in, &def); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pidhost", "ipchost", "network"} {
		if _, ok := def[k]; ok {
			t.Errorf("default flavor has %q: it needs none of the host's namespaces", k)
		}
	}
	out, err := lvm(in)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		PidHost bool `json:"pidhost"`
		IpcHost bool `json:"ipchost"`
		Network any  `json:"network"`
		Linux   struct {
			Capabilities []string `json:"capabilities"`
		} `json:"linux"`
		Env []struct {
			Name     string   `json:"name"`
			Value    string   `json:"value"`
			Settable []string `json:"settable"`
		} `json:"env"`
		Mounts []any `json:"mounts"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !got.PidHost || !got.IpcHost || got.Network != nil {
		t.Errorf("pidhost %v ipchost %v network %v; want the host's pid and IPC, no host network", got.PidHost, got.IpcHost, got.Network)
	}
	defCaps := def["linux"].(map[string]any)["capabilities"].([]any)
	if len(got.Linux.Capabilities) != len(defCaps)+3 {
		t.Errorf("capabilities %v: want the default's %v plus three", got.Linux.Capabilities, defCaps)
	}
	var host int
	for _, e := range got.Env {
		if e.Name == "HOST_ROOT" {
			host++
			if e.Value != hostRoot || len(e.Settable) != 0 {
				t.Errorf("HOST_ROOT %q settable %v: want %q, not settable", e.Value, e.Settable, hostRoot)
			}
		}
	}
	if host != 1 || len(got.Env) != len(def["env"].([]any))+1 {
		t.Errorf("env: %d HOST_ROOT entries, %d entries; want the default's plus HOST_ROOT", host, len(got.Env))
	}
	if len(got.Mounts) != len(def["mounts"].([]any)) {
		t.Errorf("mounts changed")
	}
	if _, err := lvm(out); err == nil {
		t.Error("flavoring the lvm flavor again did not fail")
	}
	if _, err := lvm([]byte(`{"env":[]}`)); err == nil {
		t.Error("a config without linux did not fail")
	}
}

// The containerd flavor is the default config plus containerd's root, and nothing else.
func TestContainerdFlavor(t *testing.T) {
	in, err := os.ReadFile("../../config.json")
	if err != nil {
		t.Fatal(err)
	}
	out, err := containerd(in)
	if err != nil {
		t.Fatal(err)
	}
	var def, got map[string]any
	if err := json.Unmarshal(in, &def); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	mounts := got["mounts"].([]any)
	if len(mounts) != len(def["mounts"].([]any))+1 {
		t.Fatalf("mounts %v, want the default ones and containerd-root", mounts)
	}
	m := mounts[len(mounts)-1].(map[string]any)
	if m["name"] != "containerd-root" || m["source"] != "/var/lib/containerd" || m["destination"] != "/var/lib/containerd" {
		t.Errorf("containerd-root mount %v", m)
	}
	for _, k := range []string{"linux", "env", "interface", "entrypoint"} {
		a, _ := json.Marshal(def[k])
		b, _ := json.Marshal(got[k])
		if string(a) != string(b) {
			t.Errorf("%s differs from the default flavor's:\n%s\n%s", k, a, b)
		}
	}
	if _, err := containerd(out); err == nil {
		t.Error("deriving the containerd flavor twice: no error")
	}
}

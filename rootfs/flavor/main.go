// Command flavor writes the config.json of one flavor of the managed plugin from the default
// one, so that the two never drift apart:
//
//	go run ./rootfs/flavor lvm config.json > build/plugin-lvm.json
//
// The default flavor (config.json as it is) sizes containers and guards loop-lvm pools: its own
// pid, IPC and network namespaces. The lvm flavor can also extend a direct-lvm pool, which takes
// the host's own lvm run inside the host's root: the host's pid namespace (/proc/1/root),
// CAP_SYS_PTRACE and CAP_SYS_CHROOT to enter it, the host's IPC namespace (libdevmapper's udev
// cookies are semaphores) and CAP_IPC_LOCK (lvm locks its memory while a pool is suspended).
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

// hostRoot is the host's / as the lvm flavor sees it. Not settable: whoever could set it would
// choose the lvm binary the plugin runs as root.
const hostRoot = "/proc/1/root"

func main() {
	if len(os.Args) != 3 || os.Args[1] != "lvm" {
		fmt.Fprintln(os.Stderr, "usage: flavor lvm CONFIG_JSON > OUT")
		os.Exit(2)
	}
	in, err := os.ReadFile(os.Args[2])
	if err == nil {
		var out []byte
		if out, err = lvm(in); err == nil {
			_, err = os.Stdout.Write(out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "flavor:", err)
		os.Exit(1)
	}
}

// lvm turns the default config into the lvm flavor's.
func lvm(in []byte) ([]byte, error) {
	var c map[string]any
	if err := json.Unmarshal(in, &c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	linux, ok := c["linux"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config: no linux section")
	}
	caps, _ := linux["capabilities"].([]any)
	for _, want := range []string{"CAP_SYS_PTRACE", "CAP_SYS_CHROOT", "CAP_IPC_LOCK"} {
		if !contains(caps, want) {
			caps = append(caps, want)
		}
	}
	linux["capabilities"] = caps
	c["pidhost"] = true
	c["ipchost"] = true
	env, _ := c["env"].([]any)
	for _, e := range env {
		if m, ok := e.(map[string]any); ok && m["name"] == "HOST_ROOT" {
			return nil, fmt.Errorf("config: HOST_ROOT is the lvm flavor's to set")
		}
	}
	c["env"] = append(env, map[string]any{
		"name":        "HOST_ROOT",
		"description": "the host's / as the plugin sees it (the host's pid namespace), to run the host's lvm for direct-lvm; fixed",
		"value":       hostRoot,
	})
	if d, ok := c["description"].(string); ok {
		c["description"] = d + "; lvm flavor: also extends direct-lvm thin pools with the host's lvm"
	}
	out, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

func contains(list []any, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

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
// The containerd flavor is the default one plus containerd's root, for Docker 25+ on
// containerd's devmapper snapshotter: containerd's records map a container to its thin device,
// and its pool's loop files are there (the lvm flavor reaches them through the host's root).
//
//	go run ./rootfs/flavor containerd config.json > build/plugin-containerd.json
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
	flavors := map[string]func([]byte) ([]byte, error){"lvm": lvm, "containerd": containerd}
	flavor, ok := flavors[os.Args[min(1, len(os.Args)-1)]]
	if len(os.Args) != 3 || !ok {
		fmt.Fprintln(os.Stderr, "usage: flavor lvm|containerd CONFIG_JSON > OUT")
		os.Exit(2)
	}
	in, err := os.ReadFile(os.Args[2])
	if err == nil {
		var out []byte
		if out, err = flavor(in); err == nil {
			_, err = os.Stdout.Write(out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "flavor:", err)
		os.Exit(1)
	}
}

// derive applies edit to the parsed default config, appends what the flavor is for to its
// description, and prints it back.
func derive(in []byte, what string, edit func(c map[string]any) error) ([]byte, error) {
	var c map[string]any
	if err := json.Unmarshal(in, &c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := edit(c); err != nil {
		return nil, err
	}
	if d, ok := c["description"].(string); ok {
		c["description"] = d + "; " + what
	}
	out, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// lvm turns the default config into the lvm flavor's.
func lvm(in []byte) ([]byte, error) {
	return derive(in, "lvm flavor: also extends direct-lvm thin pools with the host's lvm", func(c map[string]any) error {
		linux, ok := c["linux"].(map[string]any)
		if !ok {
			return fmt.Errorf("config: no linux section")
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
		if named(env, "HOST_ROOT") {
			return fmt.Errorf("config: HOST_ROOT is the lvm flavor's to set")
		}
		c["env"] = append(env, map[string]any{
			"name":        "HOST_ROOT",
			"description": "the host's / as the plugin sees it (the host's pid namespace), to run the host's lvm for direct-lvm; fixed",
			"value":       hostRoot,
		})
		return nil
	})
}

// containerdRoot is containerd's root directory, on the host and in the plugin.
const containerdRoot = "/var/lib/containerd"

// containerd turns the default config into the containerd flavor's: containerd's root mounted
// read-write (its pool's loop files grow; its databases are only ever copied).
func containerd(in []byte) ([]byte, error) {
	return derive(in, "containerd flavor: Docker 25+ on containerd's devmapper snapshotter", func(c map[string]any) error {
		mounts, _ := c["mounts"].([]any)
		if named(mounts, "containerd-root") {
			return fmt.Errorf("config: containerd-root is the containerd flavor's to add")
		}
		c["mounts"] = append(mounts, map[string]any{
			"name":        "containerd-root",
			"description": "containerd's root: its records of the devmapper snapshotter's devices (read from copies), and the pool's loop files",
			"source":      containerdRoot,
			"destination": containerdRoot,
			"type":        "bind",
			"options":     []any{"rbind"},
			"settable":    []any{"source"},
		})
		return nil
	})
}

// named says whether a list of config objects (env, mounts) has one named name.
func named(list []any, name string) bool {
	for _, x := range list {
		if m, ok := x.(map[string]any); ok && m["name"] == name {
			return true
		}
	}
	return false
}

func contains(list []any, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

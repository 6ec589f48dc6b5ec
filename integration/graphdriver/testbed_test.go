//go:build vmtest

// Package graphdriver holds the VM tests that run against Docker's devicemapper graph driver
// (profile bookworm: docker.io 20.10).
package graphdriver

import (
	"strings"
	"testing"

	"github.com/dmsize/dmsize/integration/harness"
)

// The engine comes up on a loop-backed pool that dockerd made itself, with udev sync (dockerd
// refuses devicemapper without it) and deferred removal and deletion, which dmsize relies on;
// the engine's own --storage-opt size works on it (xfs); `make plugin`'s output installs and
// answers the handshake. One engine for the three: the suite's hour has no room for more.
func TestLoopLVMEngine(t *testing.T) {
	e := harness.StartEngine(t, harness.Setup{Kind: "loop-lvm", DataSize: "8G", MetaSize: "256M"})
	st := e.DriverStatus()
	for k, want := range map[string]string{
		"Udev Sync Supported":       "true",
		"Deferred Removal Enabled":  "true",
		"Deferred Deletion Enabled": "true",
		"Backing Filesystem":        "xfs",
		"Data loop file":            "/var/lib/docker/devicemapper/devicemapper/data",
		"Data Space Total":          "8.59GB",
	} {
		if st[k] != want {
			t.Errorf("docker info %q = %q, want %q", k, st[k], want)
		}
	}
	pool := st["Pool Name"]
	status := harness.MustRun(t, "dmsetup", "status", pool)
	if !strings.Contains(status, " thin-pool ") {
		t.Fatalf("pool %s status %q is not a thin-pool", pool, status)
	}
	e.ImportBusybox()
	if out := e.Docker("run", "--rm", "--network", "none", "busybox", "echo", "hello"); out != "hello" {
		t.Fatalf("container said %q", out)
	}
	t.Run("storage-opt-size", func(t *testing.T) { checkStorageOptSize(t, e.With(t), "xfs") })
	t.Run("plugin-installs", func(t *testing.T) { checkPluginInstalls(t, e.With(t)) })
}

// The direct-lvm set-up of Docker's documentation: an LVM thin pool on a second disk, passed as
// dm.thinpooldev. Containers get thin devices in that pool, and --storage-opt size works (ext4).
// The same engine then has dmsize's volumes in a second thin pool of the volume group.
func TestDirectLVMEngine(t *testing.T) {
	// A 4 GiB pool: the volume group keeps room for the volumes' pool and its extensions.
	e := harness.StartEngine(t, harness.Setup{Kind: "direct-lvm", FS: "ext4", DataSize: "4G"})
	st := e.DriverStatus()
	if st["Pool Name"] != "docker-thinpool" {
		t.Fatalf("pool %q, want docker-thinpool", st["Pool Name"])
	}
	if st["Data loop file"] != "" {
		t.Fatalf("direct-lvm engine uses a loop file: %q", st["Data loop file"])
	}
	if lv := harness.MustRun(t, "lvs", "--noheadings", "-o", "lv_attr", "docker/thinpool"); !strings.HasPrefix(lv, "t") {
		t.Fatalf("docker/thinpool attributes %q: not a thin pool", lv)
	}
	e.ImportBusybox()
	id := e.Docker("create", "--network", "none", "busybox", "sleep", "300")
	e.Docker("start", id)
	dev := e.Docker("inspect", "--format", "{{.GraphDriver.Data.DeviceName}}", id)
	table := harness.MustRun(t, "dmsetup", "table", dev)
	poolDev := harness.MustRun(t, "dmsetup", "info", "-c", "--noheadings", "-o", "major,minor", "--separator", ":", "docker-thinpool")
	if f := strings.Fields(table); len(f) < 5 || f[2] != "thin" || f[3] != poolDev {
		t.Fatalf("container device %s table %q: want thin on %s", dev, table, poolDev)
	}
	e.Docker("rm", "-f", id)
	t.Run("storage-opt-size", func(t *testing.T) { checkStorageOptSize(t, e.With(t), "ext4") })
	t.Run("volumes-lvm", func(t *testing.T) { volumesInLVMPool(t, e.With(t)) })
}

// checkStorageOptSize: the engine's own --storage-opt size path, the baseline dmsize is
// measured against. Sizes are in Docker's binary units (20G = 20 GiB).
func checkStorageOptSize(t *testing.T, e *harness.Engine, fs string) {
	base := e.RootSize()
	sized := e.RootSize("--storage-opt", "size=20G")
	t.Logf("%s: default root %d bytes, --storage-opt size=20G root %d bytes", fs, base, sized)
	// The filesystem keeps a few percent for its own metadata; never more than 5 %.
	within := func(got, want int64) bool { return got <= want && got >= want*95/100 }
	if !within(base, 10*harness.GiB) {
		t.Errorf("default root filesystem %d bytes, want about 10 GiB", base)
	}
	if !within(sized, 20*harness.GiB) {
		t.Errorf("--storage-opt size=20G gave %d bytes, want about 20 GiB", sized)
	}
}

// checkPluginInstalls: `make plugin`'s output installs as a managed plugin with `docker plugin
// create`, enables, and answers the handshake on its socket.
func checkPluginInstalls(t *testing.T, e *harness.Engine) {
	e.InstallPlugin(harness.PluginDir(), "dmsize")
	if got := e.Docker("plugin", "inspect", "--format", "{{.Enabled}}", "dmsize"); got != "true" {
		t.Fatalf("plugin enabled = %q", got)
	}
	var manifest struct{ Implements []string }
	if err := e.PluginCall("dmsize", "dmsize.sock", "/Plugin.Activate", struct{}{}, &manifest); err != nil {
		t.Fatal(err)
	}
	if strings.Join(manifest.Implements, ",") != "authz,VolumeDriver" {
		t.Fatalf("handshake implements %v, want [authz VolumeDriver]", manifest.Implements)
	}
	var allow struct{ Allow bool }
	if err := e.PluginCall("dmsize", "dmsize.sock", "/AuthZPlugin.AuthZReq",
		map[string]string{"RequestMethod": "GET", "RequestUri": "/v1.41/info"}, &allow); err != nil {
		t.Fatal(err)
	}
	if !allow.Allow {
		t.Fatal("stub plugin denied a request")
	}
	e.Docker("plugin", "disable", "dmsize")
	e.Docker("plugin", "rm", "dmsize")
}

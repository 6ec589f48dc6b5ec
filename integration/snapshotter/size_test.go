//go:build vmtest

package snapshotter

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dmsize/dmsize/integration/harness"
)

const G = harness.GiB

var mountRE = regexp.MustCompile(`/dev/mapper/(\S+-snap-\d+)`)

// snapDevice is the container's rootfs device, as containerd's API gives it.
func snapDevice(t *testing.T, id string) string {
	t.Helper()
	out := harness.MustRun(t, "ctr", "-n", "moby", "snapshots", "--snapshotter", "devmapper", "mounts", "/mnt", id)
	m := mountRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("container %s: no snapshot device in %q", id, out)
	}
	return m[1]
}

// The whole life of a sized container on containerd's devmapper snapshotter (Docker 26): sized
// before its first start, grown online by `dmsize grow`, bad labels refused, kept across stop
// and start, a dockerd restart and two reboots (with and without containerd-sync),
// removed with nothing left; on ext4 also 1 GiB written into the 512 MiB pool, and a sized volume
// (volumeOnDocker26). `make test-long` runs the volume on a second engine, on xfs, with what
// depends on the filesystem (sizing, growth, the reboot's restore): the restart, the hook and
// the labels are the same code on both.
func TestSnapshotterLifecycle(t *testing.T) {
	t.Run("ext4", func(t *testing.T) { snapshotterLifecycle(t, "ext4", true, !harness.Long()) })
	if harness.Long() {
		t.Run("xfs", func(t *testing.T) { snapshotterLifecycle(t, "xfs", false, true) })
	}
}

// checkEngine checks the test bed: the engine is on the containerd image store and the
// devmapper snapshotter, and a plain container's root filesystem is a thin snapshot device of
// the pool at the 10 GiB base size.
func checkEngine(t *testing.T, e *harness.Engine) {
	t.Helper()
	if got := e.Docker("info", "--format", "{{.Driver}} {{.DriverStatus}}"); got != "devmapper [[driver-type io.containerd.snapshotter.v1]]" {
		t.Fatalf("docker info: %q, want the devmapper snapshotter", got)
	}
	id := e.Docker("run", "-d", "--stop-timeout", "1", "--network", "none", "busybox", "sleep", "1d")
	dev := snapDevice(t, id)
	if !strings.HasPrefix(dev, ctrdPool+"-snap-") {
		t.Fatalf("container %s on %s, not a snapshot device of %s", id, dev, ctrdPool)
	}
	if table := harness.MustRun(t, "dmsetup", "table", dev); !strings.Contains(table, " thin ") {
		t.Fatalf("%s table %q is not thin", dev, table)
	}
	if size := e.ExecRootSize(id); !harness.About(size, 10*G) {
		t.Fatalf("root filesystem %d bytes, want the 10 GiB base image size", size)
	}
	e.Docker("rm", "-f", id)
}

func snapshotterLifecycle(t *testing.T, fs string, all, withVolume bool) {
	setup := harness.Setup{Kind: "containerd-devmapper", FS: fs}
	if all {
		setup.DataSize = "512M" // the fill writes twice that
	}
	e := harness.StartEngine(t, setup)
	e.ImportBusybox()
	e.InstallDmsize()
	if all {
		checkEngine(t, e)
	}
	if withVolume {
		t.Run("volume", func(t *testing.T) { volumeOnDocker26(t, e.With(t)) })
	}

	// docker create, then start: sized in between, the first df sees 20G.
	stopped := e.Docker("create", "--network", "none", "--label", "dm.size=20G", "busybox", "df", "-P", "-k", "/")
	dev := snapDevice(t, stopped)
	took := e.WaitFor("the device to be sized before the first start", 60*time.Second, func() bool {
		return harness.DeviceSectors(dev) == 20*G/512
	})
	t.Logf("sized %s before its first start in %v", dev, took)
	if got := e.StartDf(stopped); !harness.About(got, 20*G) {
		t.Fatalf("first start: root filesystem %d bytes, want 20 GiB", got)
	}

	// docker run with a restart policy; then dmsize grow, online.
	running := e.Docker("run", "-d", "--restart", "always", "--stop-timeout", "1", "--network", "none", "--label", "dm.size=16G", "busybox", "sleep", "1d")
	t.Logf("docker run -d: 16G reached %v after the run returned", e.WaitRootSize(running, 16*G*95/100, 60*time.Second))
	e.WriteChecksummed(running)
	start := time.Now()
	if out, errOut, code := harness.CLI("grow", running, "24G"); code != 0 {
		t.Fatalf("dmsize grow %s 24G: exit %d\n%s\n%s", running, code, out, errOut)
	}
	t.Logf("dmsize grow to 24G online in %v", time.Since(start))
	if got := e.ExecRootSize(running); !harness.About(got, 24*G) {
		t.Fatalf("after dmsize grow: root filesystem %d bytes, want 24 GiB", got)
	}
	if out, _, code := harness.CLI("status", running); code != 0 || !strings.Contains(out, "24G") {
		t.Errorf("dmsize status %s: exit %d\n%s", running, code, out)
	} else {
		t.Logf("dmsize status:\n%s", out)
	}

	if all {
		badLabels(t, e, running)
	}

	// Stop and start.
	if got := e.StartDf(stopped); !harness.About(got, 20*G) {
		t.Fatalf("second start: root filesystem %d bytes, want 20 GiB", got)
	}

	if all {
		// A dockerd restart: the devices stay active at their sizes.
		e.Restart()
		e.WaitFor("the plugin to come back", 3*time.Minute, func() bool { return harness.PluginPID() != 0 })
		e.WaitFor("the restart-policy container to run", 60*time.Second, func() bool {
			out, err := e.TryDocker("inspect", "--format", "{{.State.Running}}", running)
			return err == nil && out == "true"
		})
		if got := e.ExecRootSize(running); !harness.About(got, 24*G) {
			t.Fatalf("after a dockerd restart: %d bytes, want 24 GiB", got)
		}
		e.CheckChecksummed(running)
		if got := e.StartDf(stopped); !harness.About(got, 20*G) {
			t.Fatalf("after a dockerd restart, the stopped one: %d bytes, want 20 GiB", got)
		}
	}

	// A reboot: every snapshot device gone; containerd re-creates them at its recorded 10G,
	// the plugin gives them back their sizes before dockerd starts the restart-policy one.
	runDev := snapDevice(t, running)
	e.Reboot(false)
	waitRunning(t, e, running)
	if n := harness.DeviceSectors(runDev); n != 24*G/512 {
		t.Errorf("after the reboot %s is %d sectors, want 24 GiB", runDev, n)
	}
	// 0: its first start after the reboot found the device at its size already.
	t.Logf("after the reboot the restart-policy container ran after %s restarts", e.Docker("inspect", "--format", "{{.RestartCount}}", running))
	if got := e.ExecRootSize(running); !harness.About(got, 24*G) {
		t.Fatalf("after the reboot, the running one: %d bytes, want 24 GiB", got)
	}
	e.CheckChecksummed(running)
	if got := e.StartDf(stopped); !harness.About(got, 20*G) {
		t.Fatalf("after the reboot, the stopped one: %d bytes, want 20 GiB", got)
	}
	if n := harness.CountLines(e.DaemonLog(), "containerd re-created the device"); n < 2 {
		t.Errorf("the plugin said it restored %d devices after the reboot, want 2", n)
	}

	if all {
		// The host hook: containerd-sync before containerd writes the sizes into containerd's
		// records, and containerd itself re-creates the devices at them: the containers start
		// at their sizes with the plugin disabled.
		e.Docker("plugin", "disable", harness.Plugin)
		t.Logf("reboot with containerd-sync, plugin disabled:\n%s", e.Reboot(true))
		waitRunning(t, e, running)
		if n := harness.DeviceSectors(runDev); n != 24*G/512 {
			t.Errorf("containerd re-created %s at %d sectors, want 24 GiB", runDev, n)
		}
		if got := e.ExecRootSize(running); !harness.About(got, 24*G) {
			t.Fatalf("after the reboot with containerd-sync, the running one: %d bytes, want 24 GiB", got)
		}
		e.CheckChecksummed(running)
		if got := e.StartDf(stopped); !harness.About(got, 20*G) {
			t.Fatalf("after the reboot with containerd-sync, the stopped one: %d bytes, want 20 GiB", got)
		}
		e.Docker("plugin", "enable", harness.Plugin)
		fillGuarded(t, e)
	}

	// docker rm: containerd removes the devices, nothing of dmsize's stops it or stays.
	devs := []string{dev, runDev}
	e.Docker("rm", "-f", stopped, running)
	if all {
		e.Docker("rm", "-f", "bad", "shrink")
	}
	for _, d := range devs {
		if n := harness.DeviceSectors(d); n != -1 {
			t.Errorf("after docker rm, %s still exists (%d sectors)", d, n)
		}
	}
	e.WaitFor("the records of the removed containers to go", 30*time.Second, func() bool {
		recs, err := harness.Records()
		return err == nil && len(recs) == 0
	})
	e.WaitFor("the sizes of the removed devices to go", 30*time.Second, func() bool {
		ents, err := os.ReadDir("/var/lib/docker/dmsize/snapshotter")
		return err == nil && len(ents) == 0
	})
}

func waitRunning(t *testing.T, e *harness.Engine, id string) {
	t.Helper()
	e.WaitFor("the restart-policy container to run", 120*time.Second, func() bool {
		out, err := e.TryDocker("inspect", "--format", "{{.State.Running}}", id)
		return err == nil && out == "true"
	})
}

// badLabels: a bad label or one below the base size leaves the container at the base size,
// changes nothing, and the log says why; dmsize grow refuses a shrink.
func badLabels(t *testing.T, e *harness.Engine, running string) {
	t.Helper()
	bad := e.Docker("run", "-d", "--name", "bad", "--stop-timeout", "1", "--network", "none", "--label", "dm.size=lots", "busybox", "sleep", "1d")
	shrink := e.Docker("run", "-d", "--name", "shrink", "--stop-timeout", "1", "--network", "none", "--label", "dm.size=5G", "busybox", "sleep", "1d")
	e.WaitFor("both bad labels logged", 30*time.Second, func() bool {
		log := e.DaemonLog()
		return strings.Contains(log, bad[:12]) && strings.Contains(log, shrink[:12]) &&
			harness.CountLines(log, "dm.size=lots") > 0 && harness.CountLines(log, "dm.size=5G", "shrink") > 0
	})
	for _, id := range []string{bad, shrink} {
		if got := e.ExecRootSize(id); !harness.About(got, 10*G) {
			t.Errorf("container with a bad label: root filesystem %d bytes, want the 10 GiB base", got)
		}
	}
	if _, errOut, code := harness.CLI("grow", running, "20G"); code == 0 || !strings.Contains(errOut, "shrink") {
		t.Errorf("dmsize grow to a smaller size: exit %d, %q; want a refusal naming the shrink", code, errOut)
	}
}

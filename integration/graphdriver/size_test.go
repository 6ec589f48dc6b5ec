//go:build vmtest

package graphdriver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmsize/dmsize/integration/harness"
)

const G = harness.GiB

// The whole life of a sized container, on both pool kinds of the graph driver: sized
// before its first start, grown online when `docker run` wins the race, kept across stop and
// start, `docker restart` and a dockerd restart, and removed cleanly.
//
// The fast suite runs 2 stop/start cycles on loop-lvm and xfs; `make test-long` 30, on
// direct-lvm and on ext4 too. The sizing is the same code on both pool kinds and both
// filesystems but for the filesystem's grow (TestCLIGrowOnline grows ext4 online, and
// TestDirectLVMEngine and TestGuardDirectLVM run direct-lvm, in the fast suite).
// sharedLoop is the engine that TestCLI, TestDmSizeLifecycle, TestDmSizeSurvivesPluginRestarts
// and TestDmSizeBadLabels pass on to each other (harness.Shared), in that order: the test files'
// order (upgrade_test.go's fresh engine comes after them).
var sharedLoop = harness.Setup{Kind: "loop-lvm", FS: "xfs", DataSize: "20G"}

func TestDmSizeLifecycle(t *testing.T) {
	setups := []harness.Setup{sharedLoop}
	if harness.Long() {
		setups = append(setups, harness.Setup{Kind: "direct-lvm", FS: "xfs"}, harness.Setup{Kind: "loop-lvm", FS: "ext4"}, harness.Setup{Kind: "direct-lvm", FS: "ext4"})
	}
	cycles := harness.Pick(2, 30)
	for _, s := range setups {
		t.Run(s.Kind+"-"+s.FS, func(t *testing.T) { lifecycle(t, s, cycles) })
	}
}

func lifecycle(t *testing.T, setup harness.Setup, cycles int) {
	e := harness.Shared(t, setup)

	// docker create, then start: the plugin sizes the device in between, so the very first df
	// sees 42G.
	id := e.Docker("create", "--network", "none", "--label", "dm.size=42G", "busybox", "df", "-P", "-k", "/")
	dev := e.DeviceOf(id)
	took := e.WaitFor("the device to be sized before the first start", 60*time.Second, func() bool {
		return harness.DeviceSectors(dev) == 42*G/512
	})
	t.Logf("sized %s before its first start in %v", dev, took)
	if got := e.StartDf(id); !harness.About(got, 42*G) {
		t.Fatalf("first start: root filesystem %d bytes, want 42 GiB", got)
	}

	// docker run: create and start back to back. Whoever wins, the container reaches 42G at
	// once, online if need be.
	run := e.Docker("run", "-d", "--network", "none", "--label", "dm.size=42G", "busybox", "sleep", "3600")
	t.Logf("docker run -d: 42G reached %v after the run returned", e.WaitRootSize(run, 42*G*95/100, 30*time.Second))

	// Stop and start, over and over: each start finds the grown device.
	start := time.Now()
	for i := 0; i < cycles; i++ {
		if got := e.StartDf(id); !harness.About(got, 42*G) {
			t.Fatalf("start %d: root filesystem %d bytes, want 42 GiB", i+2, got)
		}
	}
	t.Logf("%d stop/start cycles at 42G in %v", cycles, time.Since(start))

	e.Docker("restart", run)
	if got := e.ExecRootSize(run); !harness.About(got, 42*G) {
		t.Fatalf("after docker restart: %d bytes", got)
	}

	// A dockerd restart: the engine now reads the rewritten size; no hold is needed any more.
	e.Restart()
	e.WaitFor("the plugin to come back", 3*time.Minute, func() bool { return harness.PluginPID() != 0 })
	if got := e.CachedSize(id); got != 42*G {
		t.Fatalf("after a dockerd restart the engine's DeviceSize is %d, want 42 GiB", got)
	}
	if got := e.StartDf(id); !harness.About(got, 42*G) {
		t.Fatalf("start after a dockerd restart: %d bytes", got)
	}
	e.Docker("start", run)
	if got := e.ExecRootSize(run); !harness.About(got, 42*G) {
		t.Fatalf("running after a dockerd restart: %d bytes", got)
	}

	// docker rm: the space comes back as without dmsize: no device left marked deleted.
	e.Docker("rm", "-f", id, run)
	e.WaitFor("the engine to delete both devices", 60*time.Second, func() bool {
		return e.DriverStatus()["Deferred Deleted Device Count"] == "0" && harness.DeviceSectors(dev) < 0
	})
}

// A crash or a disable/enable of the plugin between a stop and the next start does not cost
// the size; neither do restart-policy restarts, which do not pass through the API.
//
// The same engine then runs TestDmSizeComposeAndSwarm's checks: one engine for both saves the
// suite a start, an import and an install.
func TestDmSizeSurvivesPluginRestarts(t *testing.T) {
	e := harness.Shared(t, sharedLoop) // the lifecycle's engine
	t.Run("restarts", func(t *testing.T) { checkSurvivesPluginRestarts(t, e.With(t)) })
	t.Run("compose-and-swarm", func(t *testing.T) { checkComposeAndSwarm(t, e.With(t)) })
}

func checkSurvivesPluginRestarts(t *testing.T, e *harness.Engine) {
	id := e.Docker("create", "--network", "none", "--label", "dm.size=42G", "busybox", "df", "-P", "-k", "/")
	dev := e.DeviceOf(id)
	if got := e.StartDf(id); !harness.About(got, 42*G) {
		t.Fatalf("first start: %d bytes", got)
	}

	// Crash: kill -9 between the stop and the next start. The engine restarts the plugin,
	// which re-activates the grown device before anything starts the container.
	pid := harness.PluginPID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.WaitFor("the engine to restart the plugin", 60*time.Second, func() bool {
		p := harness.PluginPID()
		return p != 0 && p != pid
	})
	e.WaitFor("the plugin to hold the grown device again", 60*time.Second, func() bool {
		return harness.DeviceSectors(dev) == 42*G/512
	})
	if got := e.StartDf(id); !harness.About(got, 42*G) {
		t.Fatalf("start after a plugin crash: %d bytes", got)
	}

	// Disable and enable.
	e.Docker("plugin", "disable", harness.Plugin)
	e.Docker("plugin", "enable", harness.Plugin)
	e.WaitFor("the plugin to hold the grown device again", 60*time.Second, func() bool {
		return harness.DeviceSectors(dev) == 42*G/512
	})
	if got := e.StartDf(id); !harness.About(got, 42*G) {
		t.Fatalf("start after plugin disable/enable: %d bytes", got)
	}

	// Restart policy: the engine restarts the container itself, four times.
	pol := e.Docker("run", "-d", "--network", "none", "--restart", "on-failure:3", "--label", "dm.size=42G",
		"busybox", "sh", "-c", "df -P -k / | tail -n1; sleep 1; exit 1")
	e.WaitFor("the restart policy to run out", 120*time.Second, func() bool {
		return e.Docker("inspect", "--format", "{{.State.Running}} {{.RestartCount}}", pol) == "false 3"
	})
	logs := strings.Split(strings.TrimSpace(e.Docker("logs", pol)), "\n")
	if len(logs) != 4 {
		t.Fatalf("expected 4 runs, logs:\n%s", strings.Join(logs, "\n"))
	}
	// The first run may have seen the base size if docker run's start won the race; every
	// restart after it must see 42G.
	for i, l := range logs[1:] {
		if got := harness.ParseDfKiB(t, l); !harness.About(got, 42*G) {
			t.Fatalf("restart %d: %d bytes (%q)", i+1, got, l)
		}
	}
	e.Docker("rm", "-f", id, pol)
}

// Bad labels never break a container: it runs at its current size, and the plugin logs one
// line naming the container, the label and the reason.
func TestDmSizeBadLabels(t *testing.T) {
	e := harness.Shared(t, sharedLoop, "MAX_SIZE=100G", "OVERCOMMIT=1.5")
	cases := []struct{ name, label, reason string }{
		{"malformed", "42X", "not a size in Docker's grammar"},
		{"zero", "0", "must be positive"},
		{"negative", "-1G", "not a size"},
		{"smaller", "5G", "smaller than the current size"},
		{"overmax", "200G", "above the plugin's maximum 100GiB"},
		{"overpool", "40G", "the pool cannot hold it"},
	}
	// All six run side by side; then each is checked.
	ids := make([]string, len(cases))
	for i, tc := range cases {
		ids[i] = e.Docker("run", "-d", "--name", "bad-"+tc.name, "--network", "none", "--label", "dm.size="+tc.label, "busybox", "sleep", "3600")
	}
	for _, tc := range cases {
		e.WaitFor("the plugin to log the rejection of bad-"+tc.name, 30*time.Second, func() bool {
			return harness.CountLines(e.DaemonLog(), "bad-"+tc.name, "dm.size="+tc.label, tc.reason) > 0
		})
	}
	// Let a second event (start) pass; each line must still be there once.
	time.Sleep(2 * time.Second)
	running := e.Docker(append([]string{"inspect", "--format", "{{.State.Running}}"}, ids...)...)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "bad-" + tc.name
			if n := harness.CountLines(e.DaemonLog(), name, "dm.size="+tc.label+" rejected"); n != 1 {
				t.Fatalf("%d log lines about %s, want 1", n, name)
			}
			if got := e.With(t).ExecRootSize(ids[i]); !harness.About(got, 10*G) {
				t.Fatalf("container runs at %d bytes, want its base 10 GiB", got)
			}
			if state := strings.Fields(running); len(state) != len(ids) || state[i] != "true" {
				t.Fatalf("container not running: %q", running)
			}
		})
	}
}

// Strict mode: labels are checked at create, a bad one is denied with the reason, and a good
// one is applied before the create returns, so `docker run`'s first df sees it.
func TestDmSizeStrictMode(t *testing.T) {
	// Without the driver's discard before a delete: it re-activates the device and races udev
	// (harness.Setup.NoBlkDiscard), which would hide whether dmsize let go in time.
	e := harness.StartEngine(t, harness.Setup{Kind: "loop-lvm", FS: "xfs", NoBlkDiscard: true})
	e.ImportBusybox()
	e.InstallDmsize()
	e.Strict()
	for i := 0; i < harness.Pick(1, 3); i++ {
		out := e.Docker("run", "--rm", "--network", "none", "--label", "dm.size=42G", "busybox", "df", "-P", "-k", "/")
		if got := harness.ParseDfKiB(t, out); !harness.About(got, 42*G) {
			t.Fatalf("strict docker run %d: first df %d bytes, want 42 GiB", i, got)
		}
	}
	out, err := e.TryDocker("run", "--rm", "--network", "none", "--label", "dm.size=42X", "busybox", "true")
	if err == nil || !strings.Contains(out, "dm.size=42X rejected") || !strings.Contains(out, "not a size") {
		t.Fatalf("a bad label in strict mode: %v\n%s", err, out)
	}
	// The engine routes on the decoded path, the plugin is handed the raw one: every spelling
	// of the create route is a create to strict mode.
	for _, target := range []string{"/v1.41/containers/%63reate", "/v1.41%2Fcontainers/create", "/v1.41/containers%2Fcreate", "/containers/%63reate"} {
		if code, body := rawCreate(t, target, "42X"); code != http.StatusForbidden || !strings.Contains(body, "dm.size=42X") {
			t.Fatalf("POST %s with dm.size=42X in strict mode: HTTP %d %s", target, code, body)
		}
	}
	// Everything else passes untouched.
	e.Docker("ps", "-a")
	e.Docker("run", "--rm", "--network", "none", "busybox", "true")

	// docker rm: the hold is let go before the engine deletes, so nothing is left to retry.
	// Left to the kernel, the removal the engine asked for at stop would complete on a work
	// queue once dmsize let go, and the engine's delete could meet the thin device still open
	// in the pool: dmsize removes it itself (graphdriver.Backend.Release). Each rm is checked
	// on its own device, before the next.
	removed := func(what, id, dev, before string) {
		t.Helper()
		if n := e.DriverStatus()["Deferred Deleted Device Count"]; n != "0" {
			after, _ := harness.Run("dmsetup", "info", "-c", "--noheadings", "-o", "name,open,attr", dev)
			t.Fatalf("%s in strict mode: %s devices marked deleted; before rm: %s; after: %s; plugin: %s",
				what, n, before, after, harness.LastLines(strings.Join(harness.Lines(e.DaemonLog(), id[:12]), "\n"), 4))
		}
		if dev != "" && harness.DeviceSectors(dev) >= 0 {
			t.Fatalf("%s: device %s still active; before rm: %s", what, dev, before)
		}
	}
	for i := 0; i < 3; i++ {
		id := e.Docker("create", "--network", "none", "--label", "dm.size=20G", "busybox", "true")
		dev := e.DeviceOf(id)
		e.Docker("start", "-a", id)
		before, _ := harness.Run("dmsetup", "info", "-c", "--noheadings", "-o", "name,open,attr", dev)
		e.Docker("rm", id)
		removed(fmt.Sprintf("docker rm %d (stopped)", i), id, dev, before)
	}
	// A created container removed at once (DELETE right after the create's answer, no CLI in
	// between): its device, grown and held by dmsize, has just been resumed with dmsize's own
	// ioctls, which do not wait for udev as libdevmapper does, and udev's probe may still have
	// it open. dmsize waits for that opener, then removes the device itself: the opener's
	// close would start the kernel's work queue, which raced the engine's delete.
	for i := 0; i < harness.Pick(4, 25); i++ {
		code, body := rawCreate(t, "/v1.41/containers/create", "20G")
		var created struct{ ID string }
		if err := json.Unmarshal([]byte(body), &created); code != http.StatusCreated || err != nil || created.ID == "" {
			t.Fatalf("a create with dm.size=20G in strict mode: HTTP %d %s", code, body)
		}
		if code, body := rawRequest(t, http.MethodDelete, "/v1.41/containers/"+created.ID, ""); code != http.StatusNoContent {
			t.Fatalf("DELETE of created container %s in strict mode: HTTP %d %s", created.ID[:12], code, body)
		}
		removed(fmt.Sprintf("docker rm %d (created, removed at once)", i), created.ID, "", "")
	}
	if out := e.Docker("info", "--format", "{{json .Plugins.Authorization}}"); !strings.Contains(out, "dmsize") {
		t.Fatalf("engine authorization plugins: %s", out)
	}

	// Swarm tasks: the engine creates them itself, past the authorization plugin, and the event
	// stream sizes them as in events mode; a bad label leaves the task at its size, logged.
	swarmInit(t, e)
	task := serviceTask(t, e, "strict-sized", "42G")
	t.Logf("strict mode, swarm task: 42G reached in %v", e.WaitRootSize(task, 42*G*95/100, 60*time.Second))
	bad := serviceTask(t, e, "strict-bad", "42X")
	e.WaitFor("the bad label's log line", 60*time.Second, func() bool {
		return harness.CountLines(e.DaemonLog(), bad[:12], "dm.size=42X rejected") > 0
	})
	if got := e.ExecRootSize(bad); !harness.About(got, 10*G) {
		t.Fatalf("strict mode, swarm task with dm.size=42X: %d bytes, want the base 10 GiB", got)
	}
	e.Docker("service", "rm", "strict-sized", "strict-bad")
}

// rawCreate posts a container create with label dm.size to the engine's socket, its request
// target sent as written (URL.Opaque: nothing re-encodes it), and returns the answer.
func rawCreate(t *testing.T, target, label string) (int, string) {
	t.Helper()
	return rawRequest(t, http.MethodPost, target, `{"Image":"busybox","Labels":{"dm.size":"`+label+`"},"HostConfig":{"NetworkMode":"none"}}`)
}

// rawRequest sends one request to the engine's socket, its target as written, with a JSON body
// unless body is empty, and returns the answer.
func rawRequest(t *testing.T, method, target, body string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", "/run/docker.sock")
	}}}
	req, err := http.NewRequest(method, "http://docker/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = target
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The label works the same from compose and from swarm (`--container-label`): swarm tasks are
// created by the engine itself, not through the API, and events mode sees them.
func checkComposeAndSwarm(t *testing.T, e *harness.Engine) {
	dir := t.TempDir()
	compose := `version: "2.4"
services:
  web:
    image: busybox
    command: sleep 3600
    network_mode: none
    labels:
      dm.size: 42G
`
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	harness.MustRun(t, "docker-compose", "--project-directory", dir, "-f", filepath.Join(dir, "docker-compose.yml"), "-p", "dmsizetest", "up", "-d")
	web := e.Docker("ps", "-q", "--filter", "label=com.docker.compose.project=dmsizetest")
	t.Logf("compose: 42G reached in %v", e.WaitRootSize(web, 42*G*95/100, 30*time.Second))
	harness.MustRun(t, "docker-compose", "--project-directory", dir, "-f", filepath.Join(dir, "docker-compose.yml"), "-p", "dmsizetest", "down")

	swarmInit(t, e)
	task := serviceTask(t, e, "sized", "42G")
	t.Logf("swarm task: 42G reached in %v", e.WaitRootSize(task, 42*G*95/100, 30*time.Second))
	e.Docker("service", "rm", "sized")
}

// swarmInit makes the engine a one-node swarm for the rest of the test.
func swarmInit(t *testing.T, e *harness.Engine) {
	t.Helper()
	// Swarm wants an address to advertise; a dummy interface gives one with no traffic.
	harness.MustRun(t, "ip", "link", "add", "dmsize0", "type", "dummy")
	t.Cleanup(func() { harness.Run("ip", "link", "del", "dmsize0") })
	harness.MustRun(t, "ip", "addr", "add", "10.213.0.1/24", "dev", "dmsize0")
	harness.MustRun(t, "ip", "link", "set", "dmsize0", "up")
	e.Docker("swarm", "init", "--advertise-addr", "10.213.0.1")
	t.Cleanup(func() { harness.Run("docker", "swarm", "leave", "--force") })
}

// serviceTask creates service name with --container-label dm.size=label and returns its task's
// container.
func serviceTask(t *testing.T, e *harness.Engine, name, label string) string {
	t.Helper()
	e.Docker("service", "create", "--detach", "--no-resolve-image", "--name", name, "--network", "host",
		"--container-label", "dm.size="+label, "--restart-condition", "none", "busybox", "sleep", "3600")
	var task string
	e.WaitFor("the service's task container", 120*time.Second, func() bool {
		task = e.Docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name="+name)
		return task != ""
	})
	return task
}

// An engine without deferred removal would re-create a grown device too small after a stop;
// one without deferred deletion could not remove a container whose device dmsize holds. On
// either the plugin says at start what to change, sizes nothing, and every container can be
// stopped and removed. The fast suite runs the engine without deferred removal (the same check
// and refusal, another option); `make test-long` both.
func TestDmSizeNeedsDeferredRemovalAndDeletion(t *testing.T) {
	cases := []struct {
		name   string
		setup  harness.Setup
		status string // docker info's line that is false
		words  string // what the plugin's log line names
		option string // and the option to set
	}{
		{"removal", harness.Setup{Kind: "loop-lvm", NoDeferredRemoval: true}, "Deferred Removal Enabled", "deferred device removal", "dm.use_deferred_removal=true"},
		{"deletion", harness.Setup{Kind: "loop-lvm", NoDeferredDeletion: true}, "Deferred Deletion Enabled", "deferred device deletion", "dm.use_deferred_deletion=true"},
	}
	for _, c := range cases[:harness.Pick(1, len(cases))] {
		t.Run(c.name, func(t *testing.T) {
			e := harness.StartEngine(t, c.setup)
			if st := e.DriverStatus()[c.status]; st != "false" {
				t.Fatalf("docker info %q = %q, want false", c.status, st)
			}
			e.ImportBusybox()
			e.InstallDmsize()
			e.WaitFor("the plugin to say what to change", 60*time.Second, func() bool {
				return harness.CountLines(e.DaemonLog(), c.words, c.option) > 0
			})
			id := e.Docker("run", "-d", "--name", "nodeferred", "--network", "none", "--label", "dm.size=42G", "busybox", "sleep", "3600")
			e.WaitFor("the plugin to refuse the container", 30*time.Second, func() bool {
				return harness.CountLines(e.DaemonLog(), "nodeferred", c.words) > 0
			})
			if got := e.ExecRootSize(id); !harness.About(got, 10*G) {
				t.Fatalf("container runs at %d bytes, want its base 10 GiB", got)
			}
			dev := e.DeviceOf(id)
			e.Docker("stop", "-t", "1", id)
			e.Docker("start", id)
			e.Docker("stop", "-t", "1", id)
			e.Docker("rm", id) // not -f: a hold would make this fail
			if harness.DeviceSectors(dev) != -1 {
				t.Fatalf("device %s still active after docker rm", dev)
			}
		})
	}
}

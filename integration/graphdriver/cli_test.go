//go:build vmtest

package graphdriver

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/integration/harness"
)

// cli runs dmsize, wants exit code want, and returns stdout; a failure must be one line on
// stderr that starts with "dmsize: ".
func cli(t *testing.T, want int, args ...string) string {
	t.Helper()
	out, _ := cliBoth(t, want, args...)
	return out
}

// cliBoth is cli, with what the command wrote on stderr (one line, on a failure).
func cliBoth(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	out, errOut, code := harness.CLI(args...)
	if code != want {
		t.Fatalf("dmsize %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
	}
	if code != 0 && (strings.Count(errOut, "\n") != 0 || !strings.HasPrefix(errOut, "dmsize: ")) {
		t.Fatalf("dmsize %s: the error is not one line starting with \"dmsize: \": %q", strings.Join(args, " "), errOut)
	}
	if code != 0 {
		t.Logf("dmsize %s -> exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out, errOut
}

// writer is a container that writes with fsync in a loop and says WRITE-ERROR if a write fails.
var writer = []string{"sh", "-c", "i=0; while :; do dd if=/dev/zero of=/f$((i%4)) bs=256k count=4 conv=fsync 2>/dev/null || echo WRITE-ERROR; i=$((i+1)); done"}

// dmsize grow on ext4: a running container grows online under fsync'd writes. (xfs: TestCLI's
// first subtest, on its engine.) `make test-long` only: the fast suite grows ext4 online in
// kernel/fs (the ioctl), kernel/thin (mounted, under writes) and TestSnapshotterLifecycle (a
// running container, dmsize grow), which leaves this engine's 90 s of set-up to the long one.
func TestCLIGrowOnline(t *testing.T) {
	e := harness.StartEngine(t, harness.Setup{Kind: "loop-lvm", FS: "ext4", DataSize: "12G"})
	e.ImportBusybox()
	e.InstallDmsize()
	checkGrowOnline(t, e)
}

func checkGrowOnline(t *testing.T, e *harness.Engine) {
	id := e.Docker(append([]string{"run", "-d", "--name", "writer", "--network", "none", "busybox"}, writer...)...)
	time.Sleep(2 * time.Second)
	start := time.Now()
	out := cli(t, 0, "grow", "writer", "20G")
	t.Logf("dmsize grow writer 20G (%v): %s", time.Since(start).Round(time.Millisecond), out)
	if !strings.Contains(out, "10GiB -> 20GiB") {
		t.Fatalf("grow said %q", out)
	}
	if got := e.ExecRootSize(id); !harness.About(got, 20*G) {
		t.Fatalf("df inside after the grow: %d bytes, want 20 GiB", got)
	}
	time.Sleep(2 * time.Second)
	if logs := e.Docker("logs", id); strings.Contains(logs, "WRITE-ERROR") {
		t.Fatalf("the writer saw a failed write:\n%s", logs)
	}
	if out := cli(t, 0, "grow", "writer", "20G"); !strings.Contains(out, "already 20GiB") {
		t.Fatalf("a repeated grow said %q", out)
	}
	e.Docker("rm", "-f", id)
}

// Everything else dmsize does, on one engine: a created container, a labelled one grown past
// its label across a plugin restart, a dry run, each bad request's exit code, status, the
// pool, a dockerd restart, and the CLI with the plugin disabled.
func TestCLI(t *testing.T) {
	e := harness.Shared(t, sharedLoop, "MAX_SIZE=100G")
	t.Run("grow-online-xfs", func(t *testing.T) { checkGrowOnline(t, e.With(t)) })

	run := e.Docker("run", "-d", "--name", "web", "--network", "none", "busybox", "sleep", "3600")
	cli(t, 0, "grow", "web", "20G")

	// A created container, never started: sized before its first start.
	created := e.Docker("create", "--name", "created", "--network", "none", "busybox", "df", "-P", "-k", "/")
	cli(t, 0, "grow", "created", "15G")
	if got := e.StartDf(created); !harness.About(got, 15*G) {
		t.Fatalf("first start of a grown created container: %d bytes", got)
	}

	// Past its label; then a plugin restart and a stop/start keep the grown size.
	labelled := e.Docker("create", "--name", "labelled", "--network", "none", "--label", "dm.size=12G", "busybox", "df", "-P", "-k", "/")
	dev := e.DeviceOf(labelled)
	e.WaitFor("the label's size", time.Minute, func() bool { return harness.DeviceSectors(dev) == 12*G/512 })
	cli(t, 0, "grow", "labelled", "25G")
	e.Docker("plugin", "disable", harness.Plugin)
	e.Docker("plugin", "enable", harness.Plugin)
	e.WaitFor("the plugin to hold the grown device again", time.Minute, func() bool { return harness.DeviceSectors(dev) == 25*G/512 })
	if got := e.StartDf(labelled); !harness.About(got, 25*G) {
		t.Fatalf("labelled container after grow and a plugin restart: %d bytes", got)
	}

	// A dry run changes nothing.
	webDev := e.DeviceOf(run)
	if out := cli(t, 0, "grow", "--dry-run", "web", "30G"); !strings.Contains(out, "would grow") {
		t.Fatalf("dry run said %q", out)
	}
	if harness.DeviceSectors(webDev) != 20*G/512 {
		t.Fatalf("a dry run changed the device: %d sectors", harness.DeviceSectors(webDev))
	}

	// Bad requests: the exit code, one line, nothing changed.
	for _, tc := range []struct {
		code int
		args []string
		says string
	}{
		{1, []string{"grow", "web", "5G"}, "smaller than the current size"},
		{1, []string{"grow", "web", "200G"}, "MAX_SIZE"},
		{1, []string{"grow", "nosuch", "20G"}, "nosuch"},
		{2, []string{"grow", "web", "12X"}, "not a size"},
		{2, []string{"grow", "web"}, ""},
		{2, []string{"frobnicate"}, ""},
	} {
		_, errOut := cliBoth(t, tc.code, tc.args...)
		if !strings.Contains(errOut, tc.says) {
			t.Errorf("dmsize %s: %q does not say %q", strings.Join(tc.args, " "), errOut, tc.says)
		}
	}
	if harness.DeviceSectors(webDev) != 20*G/512 {
		t.Fatalf("a refused request changed the device: %d sectors", harness.DeviceSectors(webDev))
	}

	// Status, as a table and as JSON with exact bytes.
	table := cli(t, 0, "status")
	t.Logf("dmsize status:\n%s", table)
	var list []controlapi.Container
	if err := json.Unmarshal([]byte(cli(t, 0, "status", "--format", "json")), &list); err != nil {
		t.Fatal(err)
	}
	byName := map[string]controlapi.Container{}
	for _, c := range list {
		byName[c.Name] = c
	}
	if w := byName["web"]; w.SizeBytes != 20*G || w.FSSizeBytes < 19*G || w.CachedBytes != 10*G || !w.Held || w.State != "running" || w.GrownBytes != 20*G {
		t.Fatalf("status of web: %+v", w)
	}
	if l := byName["labelled"]; l.Label != "12G" || l.GrownBytes != 25*G || l.PersistedBytes != 25*G {
		t.Fatalf("status of labelled: %+v", l)
	}

	// The pool: status, an extension by hand, one a setting refuses.
	t.Logf("dmsize pool status:\n%s", cli(t, 0, "pool", "status"))
	var p controlapi.Pool
	if err := json.Unmarshal([]byte(cli(t, 0, "pool", "status", "--format", "json")), &p); err != nil {
		t.Fatal(err)
	}
	if p.DataSizeBytes != 20*G || p.Guard != "on" || p.Kind != "loop-lvm" || p.ProvisionedBytes == 0 {
		t.Fatalf("pool status: %+v", p)
	}
	t.Logf("dmsize pool extend +1G: %s", cli(t, 0, "pool", "extend", "+1G"))
	if err := json.Unmarshal([]byte(cli(t, 0, "pool", "status", "--format", "json")), &p); err != nil || p.DataSizeBytes != 21*G {
		t.Fatalf("after extend +1G: %+v %v", p, err)
	}
	if out := cli(t, 0, "pool", "extend", "16G"); !strings.Contains(out, "already") {
		t.Fatalf("extend to a smaller size said %q", out)
	}
	cli(t, 1, "pool", "extend", "10T") // over the host's room: MIN_HOST_FREE

	// A dockerd restart keeps every size; no hold is needed after it.
	e.Restart()
	e.WaitFor("the plugin to come back", 3*time.Minute, func() bool { return harness.PluginPID() != 0 })
	e.Docker("start", run)
	if got := e.ExecRootSize(run); !harness.About(got, 20*G) {
		t.Fatalf("web after a dockerd restart: %d bytes", got)
	}
	for id, want := range map[string]int64{created: 15 * G, labelled: 25 * G} {
		if got := e.StartDf(id); !harness.About(got, want) {
			t.Fatalf("%s after a dockerd restart: %d bytes, want %d", id[:12], got, want)
		}
	}

	// The plugin disabled: plain words and exit 3.
	e.Docker("plugin", "disable", "-f", harness.Plugin)
	for _, args := range [][]string{{"status"}, {"grow", "web", "30G"}, {"pool", "status"}} {
		_, errOut := cliBoth(t, 3, args...)
		if !strings.Contains(errOut, "disabled") {
			t.Errorf("dmsize %s with the plugin disabled: %q", strings.Join(args, " "), errOut)
		}
	}
	e.Docker("plugin", "enable", harness.Plugin)
	e.Docker("rm", "-f", run, created, labelled)
}

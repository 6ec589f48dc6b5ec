// Package harness is what the VM integration tests use to drive a real Docker engine: start it
// in one of the test set-ups, run docker commands, import a busybox image, install the plugin.
//
// It wraps the guest script dmsize-engine (integration/vm/guest), so the tests, `make demo` and
// the Vagrant box share one implementation of every set-up. It only works as root inside a test
// VM; the tests that use it are built with the vmtest tag.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Setup names an engine set-up of dmsize-engine. Empty fields take the script's defaults.
type Setup struct {
	Kind     string // "loop-lvm" (default), "direct-lvm" or "containerd-devmapper"
	FS       string // "xfs" (default) or "ext4"
	DataSize string // sparse data file size, or direct-lvm's data LV size
	MetaSize string // sparse metadata file size, or direct-lvm's metadata LV size
	BaseSize string // dm.basesize / base_image_size
	VGSize   string // direct-lvm: volume group smaller than the spare disk
	// NoDeferredRemoval starts the graph driver without deferred removal and deletion.
	NoDeferredRemoval bool
	// NoDeferredDeletion starts it with deferred removal but without deferred deletion.
	NoDeferredDeletion bool
	// DataRoot is dockerd's --data-root (default /var/lib/docker).
	DataRoot string
	// NoAutoextend leaves LVM's own thin pool autoextension off (direct-lvm).
	NoAutoextend bool
	// NoBlkDiscard sets dm.blkdiscard=false. On loop files the driver discards a device's
	// blocks before deleting it: it activates the device again, opens it, and the close wakes
	// udev, whose blkid can still have it open when the delete comes (EBUSY: marked deleted,
	// retried 30 s later). That is the stock engine's race, 1 docker rm in 15 without dmsize
	// (measured in the VM); a test of what dmsize adds to a removal turns it off.
	NoBlkDiscard bool
}

func (s Setup) args() []string {
	var a []string
	for _, kv := range [][2]string{
		{"--setup", s.Kind}, {"--fs", s.FS}, {"--data-size", s.DataSize},
		{"--meta-size", s.MetaSize}, {"--base-size", s.BaseSize}, {"--vg-size", s.VGSize},
		{"--data-root", s.DataRoot},
	} {
		if kv[1] != "" {
			a = append(a, kv[0], kv[1])
		}
	}
	if s.NoDeferredRemoval {
		a = append(a, "--deferred-removal", "false")
	}
	if s.NoDeferredDeletion {
		a = append(a, "--deferred-deletion", "false")
	}
	if s.NoAutoextend {
		a = append(a, "--autoextend", "off")
	}
	if s.NoBlkDiscard {
		a = append(a, "--blkdiscard", "false")
	}
	return a
}

// Engine is a running Docker engine in the test VM.
type Engine struct {
	t       testing.TB
	Setup   Setup
	logFrom int64 // where this engine's part of the daemon's log starts
}

// Payload is the directory the VM runner copied in: plugin, guest scripts, test binaries.
func Payload() string {
	if p := os.Getenv("DMSIZE_PAYLOAD"); p != "" {
		return p
	}
	return "/payload"
}

// PluginDir is the managed plugin directory (config.json + rootfs) built by `make plugin`.
func PluginDir() string { return filepath.Join(Payload(), "plugin") }

// PluginDirFor is the plugin flavor a set-up needs: the lvm flavor (build/plugin-lvm) for
// direct-lvm, whose guard runs the host's lvm; the containerd flavor (build/plugin-containerd)
// for containerd's devmapper snapshotter; the default one for every other.
func PluginDirFor(s Setup) string {
	switch s.Kind {
	case "direct-lvm":
		return filepath.Join(Payload(), "plugin-lvm")
	case "containerd-devmapper":
		return filepath.Join(Payload(), "plugin-containerd")
	}
	return PluginDir()
}

// StartEngine wipes whatever engine state a previous test left and starts a fresh engine. The
// engine is reset when the test ends; if the test failed, the daemon's log tail is attached.
func StartEngine(t testing.TB, s Setup) *Engine {
	t.Helper()
	e := startEngine(t, s)
	t.Cleanup(func() { e.reset() })
	return e
}

// Shared is StartEngine, ImportBusybox and InstallDmsize(settings...) for a test that leaves
// the engine as it found it but for its containers and volumes: when the test before was
// Shared with the same set-up, its engine is used again (dmsize installed afresh if the
// settings differ). At the test's end the engine keeps running for the next test with no
// container and no volume; if the test failed, or that cleaning fails, it is reset.
func Shared(t testing.TB, s Setup, settings ...string) *Engine {
	t.Helper()
	key := strings.Join(settings, " ")
	var e *Engine
	if last.ok && last.setup == s {
		e = &Engine{t: t, Setup: s, logFrom: daemonLogSize()}
		t.Logf("engine %s: the one the test before used", s.Kind)
		if last.settings != key {
			e.resetSettings(strings.Fields(last.settings), settings)
		}
	} else {
		e = startEngine(t, s)
		e.ImportBusybox()
		e.InstallDmsize(settings...)
	}
	last.setup, last.settings, last.ok = s, key, true
	t.Cleanup(func() {
		if !t.Failed() {
			err := e.tidy()
			if err == nil {
				return
			}
			t.Logf("the shared engine could not be cleaned for the next test (%v): reset", err)
		}
		e.reset()
	})
	return e
}

// resetSettings changes the plugin's settings from old to settings: each key of old that
// settings does not set goes back to the default the plugin's config gives it. A disable, set
// and enable take a few seconds where a new install took 15 to 40 under TCG.
func (e *Engine) resetSettings(old, settings []string) {
	e.t.Helper()
	c, err := dockerAPI()
	if err != nil {
		e.t.Fatal(err)
	}
	p, _, err := c.PluginInspectWithRaw(context.Background(), Plugin)
	if err != nil {
		e.t.Fatal(err)
	}
	defaults := map[string]string{}
	for _, env := range p.Config.Env {
		if env.Value != nil {
			defaults[env.Name] = *env.Value
		}
	}
	set := map[string]bool{}
	for _, kv := range settings {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	all := append([]string(nil), settings...)
	for _, kv := range old {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			all = append(all, k+"="+defaults[k])
		}
	}
	t0 := time.Now()
	e.SetDmsize(all...)
	e.t.Logf("plugin settings %q in %v", all, time.Since(t0).Round(100*time.Millisecond))
}

// last is the engine that a Shared test left running for the next one.
var last struct {
	setup    Setup
	settings string
	ok       bool
}

func daemonLogSize() int64 {
	if st, err := os.Stat(daemonLog); err == nil {
		return st.Size()
	}
	return 0
}

func startEngine(t testing.TB, s Setup) *Engine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("VM integration tests run as root inside the test VM (make test)")
	}
	last.ok = false
	t0 := time.Now()
	MustRun(t, "dmsize-engine", "reset")
	reset := time.Since(t0)
	// The daemon's log file outlives engines: this engine's part starts here.
	from := daemonLogSize()
	MustRun(t, append([]string{"dmsize-engine", "start"}, s.args()...)...)
	t.Logf("engine %s: reset %v, started %v", s.Kind, reset.Round(100*time.Millisecond), (time.Since(t0) - reset).Round(100*time.Millisecond))
	return &Engine{t: t, Setup: s, logFrom: from}
}

// reset stops and wipes the engine, with the daemons' log tails if the test failed.
func (e *Engine) reset() {
	t := e.t
	last.ok = false
	if t.Failed() {
		for _, f := range []string{"dockerd.log", "containerd.log"} {
			// The daemons' own gRPC chatter says nothing about a failure.
			sh := "grep -v -e module=grpc -e 'loading plugin' /var/log/dmsize-engine/" + f + " | tail -n 40"
			if out, err := exec.Command("sh", "-c", sh).Output(); err == nil && len(out) > 0 {
				t.Logf("--- tail of %s:\n%s", f, out)
			}
		}
	}
	if out, err := Run("dmsize-engine", "reset"); err != nil {
		t.Errorf("resetting the engine: %v\n%s", err, out)
	}
}

// tidy removes every container and volume and enables dmsize if the test left it disabled.
func (e *Engine) tidy() error {
	if out, err := docker("plugin", "inspect", "--format", "{{.Enabled}}", Plugin); err != nil {
		return err
	} else if out != "true" {
		if out, err := docker("plugin", "enable", Plugin); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
	}
	for _, list := range [][]string{{"ps", "-aq"}, {"volume", "ls", "-q"}} {
		out, err := docker(list...)
		if err != nil || out == "" {
			if err != nil {
				return err
			}
			continue
		}
		rm := []string{"rm", "-f"}
		if list[0] == "volume" {
			rm = []string{"volume", "rm", "-f"}
		}
		if out, err := docker(append(rm, strings.Fields(out)...)...); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
	}
	return nil
}

// Docker runs a docker command (see docker in api.go) and returns its trimmed output; a
// failure fails the test.
func (e *Engine) Docker(args ...string) string {
	e.t.Helper()
	out, err := docker(args...)
	if err != nil {
		e.t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// TryDocker runs a docker command and returns its output and error, for expected failures.
func (e *Engine) TryDocker(args ...string) (string, error) {
	return docker(args...)
}

// Restart stops dockerd and starts it again with the same set-up; pools and devices persist.
func (e *Engine) Restart() { e.t.Helper(); MustRun(e.t, "dmsize-engine", "restart") }

// Reboot is a host reboot as the containerd-devmapper set-up's devices see it: daemons, shims
// and plugins killed, every snapshot device removed, containerd then dockerd started again.
// With sync, `dmsize containerd-sync` runs before containerd starts, as the systemd drop-in
// does; its output is returned.
func (e *Engine) Reboot(sync bool) string {
	e.t.Helper()
	if sync {
		return MustRun(e.t, "dmsize-engine", "reboot", "--sync")
	}
	return MustRun(e.t, "dmsize-engine", "reboot")
}

// ImportBusybox imports busybox:latest from the guest's static busybox.
func (e *Engine) ImportBusybox() {
	e.t.Helper()
	t0 := time.Now()
	MustRun(e.t, "dmsize-engine", "busybox")
	e.t.Logf("busybox imported in %v", time.Since(t0).Round(100*time.Millisecond))
}

// InstallPlugin creates the managed plugin NAME from dir and enables it.
func (e *Engine) InstallPlugin(dir, name string) {
	e.t.Helper()
	MustRun(e.t, "dmsize-engine", "plugin", dir, name)
}

// DriverStatus is `docker info`'s storage driver status as a map ("Pool Name" -> "...").
func (e *Engine) DriverStatus() map[string]string {
	e.t.Helper()
	var pairs [][2]string
	if err := json.Unmarshal([]byte(e.Docker("info", "--format", "{{json .DriverStatus}}")), &pairs); err != nil {
		e.t.Fatalf("docker info DriverStatus: %v", err)
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		m[p[0]] = p[1]
	}
	return m
}

// Run runs a command with a 10-minute limit and returns its trimmed combined output.
func Run(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	// A command that runs over 3 minutes says so, live, with what runs beside it: a hang shows its
	// cause in the suite's output instead of only its timeout.
	slow := time.AfterFunc(180*time.Second, func() {
		ps, _ := exec.Command("ps", "-eo", "pid,ppid,stat,wchan:24,etime,args", "--sort", "start_time").Output()
		fmt.Printf("    [still running after 180s: %s]\n%s\n", strings.Join(argv, " "), LastLines(string(ps), 25))
	})
	err := cmd.Run()
	slow.Stop()
	out := strings.TrimSpace(buf.String())
	if err != nil {
		return out, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return out, nil
}

// MustRun is Run that fails the test on error, with the command's output.
func MustRun(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := Run(argv...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// LastLines is the last n lines of s.
func LastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

package harness

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// Plugin is the dmsize managed plugin, as the tests install it.
const Plugin = "dmsize"

// InstallDmsize installs the plugin built by `make plugin`, in the flavor the engine's set-up
// needs, and enables it with the given settings ("MODE=strict", "MAX_SIZE=100G", ...).
func (e *Engine) InstallDmsize(settings ...string) {
	e.t.Helper()
	t0 := time.Now()
	e.Docker("plugin", "create", Plugin, PluginDirFor(e.Setup))
	if len(settings) > 0 {
		e.Docker(append([]string{"plugin", "set", Plugin}, settings...)...)
	}
	e.Docker("plugin", "enable", Plugin)
	e.t.Logf("plugin installed and enabled in %v", time.Since(t0).Round(100*time.Millisecond))
}

// SetDmsize disables the plugin, changes settings and enables it again.
func (e *Engine) SetDmsize(settings ...string) {
	e.t.Helper()
	e.Docker("plugin", "disable", Plugin)
	e.Docker(append([]string{"plugin", "set", Plugin}, settings...)...)
	e.Docker("plugin", "enable", Plugin)
}

// Strict puts the plugin in strict mode and makes it the engine's authorization plugin
// (restarting dockerd).
func (e *Engine) Strict() {
	e.t.Helper()
	e.SetDmsize("MODE=strict")
	MustRun(e.t, "dmsize-engine", "authz", Plugin)
}

// daemonLog is dockerd's log file; dmsize-engine appends every engine's to it.
const daemonLog = "/var/log/dmsize-engine/dockerd.log"

// DaemonLog is dockerd's log so far, since this engine started (managed plugins log into it).
func (e *Engine) DaemonLog() string {
	b, _ := os.ReadFile(daemonLog)
	if int64(len(b)) < e.logFrom {
		return string(b)
	}
	return string(b[e.logFrom:])
}

// ExecRootSize is the size of a running container's root filesystem, from df inside it.
func (e *Engine) ExecRootSize(id string) int64 {
	e.t.Helper()
	return ParseDfKiB(e.t, e.Docker("exec", id, "df", "-P", "-k", "/"))
}

// StartDf starts a stopped container whose command is `df -P -k /`, attached, and returns the
// size it printed: what the container's first look at its root filesystem says.
func (e *Engine) StartDf(id string) int64 {
	e.t.Helper()
	return ParseDfKiB(e.t, e.Docker("start", "-a", id))
}

// WaitRootSize polls a running container until its root filesystem is at least min bytes, and
// returns how long that took.
func (e *Engine) WaitRootSize(id string, min int64, timeout time.Duration) time.Duration {
	e.t.Helper()
	start := time.Now()
	var last int64
	for b := newBackoff(); time.Since(start) < timeout; b.sleep() {
		out, err := e.TryDocker("exec", id, "df", "-P", "-k", "/")
		if err == nil {
			if last = ParseDfKiB(e.t, out); last >= min {
				return time.Since(start)
			}
		}
	}
	e.t.Fatalf("container %s: root filesystem %d bytes after %v, want at least %d", id, last, timeout, min)
	return 0
}

// DeviceOf is the container's thin device name.
func (e *Engine) DeviceOf(id string) string {
	e.t.Helper()
	return e.Docker("inspect", "--format", "{{.GraphDriver.Data.DeviceName}}", id)
}

// CachedSize is the engine's in-memory size of the container's device (DeviceSize).
func (e *Engine) CachedSize(id string) int64 {
	e.t.Helper()
	n, err := strconv.ParseInt(e.Docker("inspect", "--format", "{{.GraphDriver.Data.DeviceSize}}", id), 10, 64)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// DeviceSectors is the length of an active device's table, or -1 when it is not active.
func DeviceSectors(name string) int64 {
	out, err := Run("dmsetup", "table", name)
	if err != nil {
		return -1
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		return -1
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n
}

// WaitFor polls cond until it holds or timeout passes, and fails the test then. The polls start
// 100 ms apart and back off to 1 s: a poll is a process or two (dmsetup, docker), which under
// TCG take CPU from what the test waits for.
func (e *Engine) WaitFor(what string, timeout time.Duration, cond func() bool) time.Duration {
	e.t.Helper()
	start := time.Now()
	for b := newBackoff(); time.Since(start) < timeout; b.sleep() {
		if cond() {
			return time.Since(start)
		}
	}
	e.t.Fatalf("timed out after %v waiting for %s", timeout, what)
	return 0
}

// backoff is the pause between polls: 100 ms, then half as long again each time, up to 1 s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{100 * time.Millisecond} }

func (b *backoff) sleep() {
	time.Sleep(b.d)
	b.d = min(b.d*3/2, time.Second)
}

// PluginPID is the pid of the running plugin process (the lowest, as pgrep lists them), 0 if
// none. It reads /proc itself: the crash tests poll it every 20 ms, and a pgrep process each
// time kept one vCPU busy under TCG.
func PluginPID() int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	lowest := 0
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || (lowest != 0 && pid > lowest) {
			continue
		}
		if comm, err := os.ReadFile("/proc/" + ent.Name() + "/comm"); err == nil && strings.TrimSpace(string(comm)) == "dmsize-plugin" {
			lowest = pid
		}
	}
	return lowest
}

// CountLines counts the lines of s containing every one of parts.
func CountLines(s string, parts ...string) int { return len(Lines(s, parts...)) }

// Lines returns the lines of s containing every one of parts.
func Lines(s string, parts ...string) []string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(l, p) {
				ok = false
				break
			}
		}
		if ok {
			lines = append(lines, l)
		}
	}
	return lines
}

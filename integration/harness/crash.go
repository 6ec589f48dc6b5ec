package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StateDir is the plugin's STATE_DIR with the test bed's defaults: one record per sized
// container, and the crash hook's file.
const StateDir = "/var/lib/docker/dmsize"

// CrashFile arms the plugin's test-only crash hook (internal/crashpoint): read once when the
// plugin starts, it names the step at which the plugin removes it and SIGKILLs itself.
var CrashFile = filepath.Join(StateDir, "crash-at")

// Crash is one armed crash of the plugin at a named step, as the test saw it happen.
type Crash struct {
	Step     string
	Armed    time.Time // the enable of the plugin with the hook armed began
	Hit      time.Time // the hook's file was seen gone: the plugin reached the step
	Died     time.Time // the armed process was last seen (the hook syncs before it kills)
	Back     time.Time // a new plugin process was first seen
	ByEngine bool      // dockerd restarted the plugin by itself (false: the test had to)
	// OnHit, if set, runs (in Wait) as soon as the plugin is seen to reach the step: to look at
	// what the crash leaves before the restarted plugin repairs it.
	OnHit func()
	e     *Engine
	w     *PluginWatch
}

// ArmCrash arms the crash hook for step and (re)starts the plugin so that it reads the file: a
// disable (if the plugin is enabled), the file, an enable. Whatever the plugin does next that
// passes the step kills it; Crash.Wait sees that and the restart.
func (e *Engine) ArmCrash(step string) *Crash {
	e.t.Helper()
	if e.PluginEnabled() {
		e.Docker("plugin", "disable", Plugin)
	}
	if err := os.MkdirAll(StateDir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(CrashFile, []byte(step+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	// The watch times what follows from its own polls: the crash and the restart can both come
	// before `docker plugin enable` returns.
	c := &Crash{Step: step, e: e, w: watchPlugin(CrashFile), Armed: time.Now()}
	e.t.Cleanup(c.w.Stop)
	// A plugin that reaches the step within 0.5 s of its start dies before dockerd's first dial
	// of its socket: the enable then fails (after 12.5 s), and Wait restarts the plugin itself.
	if out, err := e.TryDocker("plugin", "enable", Plugin); err != nil {
		e.t.Logf("docker plugin enable with the crash hook armed for %s: %v\n%s", step, err, out)
	}
	return c
}

// Wait waits for the armed plugin to reach the step (its file gone, its process dead) and for a
// new plugin process. dockerd restarts a managed plugin that dies; if it has not done so 30 s
// after the crash, the test does it (disable -f, enable) and logs that it had to.
func (c *Crash) Wait(timeout time.Duration) {
	t := c.e.t
	t.Helper()
	defer c.w.Stop()
	deadline := time.Now().Add(timeout)
	for c.Hit = c.w.FileGone(); c.Hit.IsZero(); c.Hit = c.w.FileGone() {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin never reached step %s in %v (plugin pids seen: %v)", c.Step, timeout, c.w.Pids())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c.OnHit != nil {
		c.OnHit()
	}
	armed := c.w.First()
	if armed == 0 {
		t.Fatalf("step %s: the armed plugin process was never seen", c.Step)
	}
	back := func() bool {
		p := PluginPID()
		return p != 0 && p != armed
	}
	for until := time.Now().Add(30 * time.Second); time.Now().Before(until); time.Sleep(20 * time.Millisecond) {
		if seen := c.w.seenPIDs(); len(seen) > 1 {
			c.Died, c.Back, c.ByEngine = seen[0].last, seen[1].first, true
			return
		}
	}
	t.Logf("step %s: dockerd did not restart the plugin within 30 s of its crash; the test restarts it (disable -f, enable)", c.Step)
	c.e.RestartPlugin()
	c.e.WaitFor("the plugin process", 60*time.Second, back)
	c.Died, c.Back = c.w.seenPIDs()[0].last, time.Now()
}

// Restart is how long the plugin took to come back after it died.
func (c *Crash) Restart() time.Duration { return c.Back.Sub(c.Died) }

// String says when the crash came, how long the dying took and the restart, for the test's log.
func (c *Crash) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	by := "dockerd"
	if !c.ByEngine {
		by = "the test"
	}
	// The watch polls with pgrep, about every 0.2 s under TCG: a process gone within a poll of
	// the hit shows as gone at once.
	return fmt.Sprintf("step %s hit %v after arming, the process gone %v later, restarted by %s %v after that",
		c.Step, r(c.Hit.Sub(c.Armed)), r(max(c.Died.Sub(c.Hit), 0)), by, r(c.Restart()))
}

// With is the engine as seen from test t (a subtest): its failures fail t.
func (e *Engine) With(t testing.TB) *Engine {
	c := *e
	c.t = t
	return &c
}

// RestartPlugin starts the plugin again by hand, as an operator would after dockerd gave up on
// it: disable -f (if dockerd still has it enabled), enable.
func (e *Engine) RestartPlugin() {
	e.t.Helper()
	if e.PluginEnabled() {
		e.Docker("plugin", "disable", "-f", Plugin)
	}
	e.Docker("plugin", "enable", Plugin)
}

// PluginEnabled says whether `docker plugin inspect` has the plugin enabled.
func (e *Engine) PluginEnabled() bool {
	e.t.Helper()
	return e.Docker("plugin", "inspect", "--format", "{{.Enabled}}", Plugin) == "true"
}

// KillPlugin SIGKILLs the running plugin and waits for the engine to start a new one; it
// returns how long that took. It then waits for the new plugin to serve its metrics, and for
// dockerd to have finished starting it (WaitStarted).
func (e *Engine) KillPlugin() time.Duration {
	e.t.Helper()
	pid := PluginPID()
	if pid == 0 {
		e.t.Fatal("no plugin process to kill")
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		e.t.Fatal(err)
	}
	_, took, ok := NextPluginPID(pid, 60*time.Second)
	if !ok {
		e.t.Fatalf("the engine did not restart the plugin in 60 s after a SIGKILL; dockerd's log:\n%s", LastLines(e.DaemonLog(), 30))
	}
	e.WaitFor("the restarted plugin's metrics", 60*time.Second, func() bool {
		_, err := Metrics()
		return err == nil
	})
	e.WaitStarted(killed)
	return took
}

// WaitStarted waits until dockerd has finished (re)starting the plugin since time since.
// dockerd dials a plugin it started 0.5 s after starting it, then every 3 s, and only after a
// dial succeeds does it count the plugin as started and restart it if it dies: a plugin that
// dies before that is disabled for good. Its last act is to save the plugin's config.json
// (pluginPostStart, moby 20.10 to 26): that write is the sign. It returns when the save came, counted from since.
func (e *Engine) WaitStarted(since time.Time) time.Duration {
	e.t.Helper()
	root := e.Setup.DataRoot
	if root == "" {
		root = "/var/lib/docker"
	}
	cfg := filepath.Join(root, "plugins", e.Docker("plugin", "inspect", "--format", "{{.Id}}", Plugin), "config.json")
	var saved time.Time
	e.WaitFor("dockerd to finish starting the plugin (its save of "+cfg+")", 30*time.Second, func() bool {
		st, err := os.Stat(cfg)
		if err != nil {
			return false
		}
		saved = st.ModTime()
		return saved.After(since)
	})
	return saved.Sub(since)
}

// NextPluginPID waits for a plugin process other than old; it returns its pid, how long the
// wait was and whether one came in time. It polls every 10 ms.
func NextPluginPID(old int, timeout time.Duration) (int, time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < timeout {
		if p := PluginPID(); p != 0 && p != old {
			return p, time.Since(start), true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, time.Since(start), false
}

// PluginWatch follows the plugin's processes from the moment it is made: every pid seen, in
// order, when it was first and last seen, and (if asked) when a file went away. It polls every
// 20 ms (a read of /proc); a process that lives less than that can be missed.
type PluginWatch struct {
	mu       sync.Mutex
	seen     []seenPID
	file     string
	fileGone time.Time
	stop     chan struct{}
	once     sync.Once
}

type seenPID struct {
	pid         int
	first, last time.Time
}

// WatchPlugin starts a PluginWatch; Stop ends it.
func WatchPlugin() *PluginWatch { return watchPlugin("") }

// watchPlugin starts a PluginWatch that also notes when file is gone.
func watchPlugin(file string) *PluginWatch {
	w := &PluginWatch{file: file, stop: make(chan struct{})}
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			p, now := PluginPID(), time.Now()
			_, err := os.Stat(file)
			w.mu.Lock()
			if n := len(w.seen); p != 0 && n > 0 && w.seen[n-1].pid == p {
				w.seen[n-1].last = now
			} else if p != 0 {
				w.seen = append(w.seen, seenPID{p, now, now})
			}
			if file != "" && w.fileGone.IsZero() && errors.Is(err, os.ErrNotExist) {
				w.fileGone = now
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *PluginWatch) seenPIDs() []seenPID {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]seenPID(nil), w.seen...)
}

// Pids are the plugin's pids seen so far, in order.
func (w *PluginWatch) Pids() []int {
	var pids []int
	for _, s := range w.seenPIDs() {
		pids = append(pids, s.pid)
	}
	return pids
}

// First is the first pid seen, 0 if none yet.
func (w *PluginWatch) First() int {
	if p := w.Pids(); len(p) > 0 {
		return p[0]
	}
	return 0
}

// FileGone is when the watched file was first seen gone; zero while it is there.
func (w *PluginWatch) FileGone() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fileGone
}

// Stop ends the watch; it may be called more than once.
func (w *PluginWatch) Stop() { w.once.Do(func() { close(w.stop) }) }

var recordName = regexp.MustCompile(`^[0-9a-f]{64}\.json$`)

// Records are the container ids that have a record in StateDir.
func Records() ([]string, error) {
	ents, err := os.ReadDir(StateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if recordName.MatchString(e.Name()) {
			ids = append(ids, strings.TrimSuffix(e.Name(), ".json"))
		}
	}
	return ids, nil
}

// Record is the plugin's record of container id as raw JSON fields; ok is false when there is
// none.
func Record(id string) (rec map[string]any, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(StateDir, id+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, false, fmt.Errorf("record of %s: %w\n%s", id, err, b)
	}
	return rec, true, nil
}

// RecordApplied says whether the plugin's record of container id says its size was applied
// (`applied` equal to the admitted `want`, no rejection), and gives the record for messages.
func RecordApplied(id string) (bool, string) {
	rec, ok, err := Record(id)
	if err != nil {
		return false, err.Error()
	}
	if !ok {
		return false, "no record"
	}
	b, _ := json.Marshal(rec)
	want, _ := rec["want"].(float64)
	applied, _ := rec["applied"].(float64)
	rejected, _ := rec["rejected"].(string)
	return want > 0 && applied == want && rejected == "", string(b)
}

// DeviceLengths is every active device-mapper device's table length in sectors, from one
// `dmsetup table`.
func DeviceLengths() (map[string]int64, error) {
	out, err := Run("dmsetup", "table")
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, l := range strings.Split(out, "\n") {
		name, table, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		var start, length int64
		if _, err := fmt.Sscan(table, &start, &length); err == nil {
			m[name] = length
		}
	}
	return m, nil
}

// DeviceNames are the device-mapper devices that exist, active or not (`dmsetup ls`).
func DeviceNames() ([]string, error) {
	out, err := Run("dmsetup", "ls")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] != "No" {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// WriteChecksummed writes 16 MiB of random data into a running container, with its checksum
// beside it, both synced to the device.
func (e *Engine) WriteChecksummed(id string) {
	e.t.Helper()
	e.Docker("exec", id, "sh", "-c", "dd if=/dev/urandom of=/data bs=1M count=16 conv=fsync 2>/dev/null && md5sum /data > /data.md5 && sync")
}

// CheckChecksummed fails the test unless the data WriteChecksummed wrote is intact.
func (e *Engine) CheckChecksummed(id string) {
	e.t.Helper()
	if out, err := e.TryDocker("exec", id, "md5sum", "-c", "/data.md5"); err != nil {
		e.t.Fatalf("container %s: the data written before the crash: %v\n%s", id, err, out)
	}
}

// Metrics reads the plugin's metrics with `dmsize metrics` (the plugin serves them on its
// control socket; it has no network of its own): every sample, keyed by its name and labels as
// Prometheus prints them (`go_goroutines`,
// `dmsize_pool_extensions_total{part="data",pool="p",result="ok"}`).
func Metrics() (map[string]float64, error) {
	out, errOut, code := CLI("metrics")
	if code != 0 {
		return nil, fmt.Errorf("dmsize metrics: exit %d: %s", code, errOut)
	}
	m := map[string]float64{}
	for _, l := range strings.Split(out, "\n") {
		i := strings.LastIndexByte(l, ' ')
		if l == "" || l[0] == '#' || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			m[l[:i]] = v
		}
	}
	return m, nil
}

// PoolThinIDs lists the thin device ids in live pool's metadata, read from a metadata snapshot
// (reserve_metadata_snap, thin_dump --metadata-snap, release_metadata_snap): a device that is
// not active is still counted, as dmsetup ls would not.
func PoolThinIDs(t testing.TB, pool string) []string {
	t.Helper()
	table := strings.Fields(MustRun(t, "dmsetup", "table", pool))
	if len(table) < 4 || table[2] != "thin-pool" {
		t.Fatalf("pool %s: table %q", pool, table)
	}
	// The metadata device is MAJ:MIN in the table; its node name is in sysfs.
	uevent := MustRun(t, "cat", "/sys/dev/block/"+table[3]+"/uevent")
	var node string
	for _, l := range strings.Split(uevent, "\n") {
		if name, ok := strings.CutPrefix(l, "DEVNAME="); ok {
			node = "/dev/" + name
		}
	}
	if node == "" {
		t.Fatalf("no DEVNAME for %s: %s", table[3], uevent)
	}
	MustRun(t, "dmsetup", "message", pool, "0", "reserve_metadata_snap")
	out, err := Run("thin_dump", "--metadata-snap", node)
	MustRun(t, "dmsetup", "message", pool, "0", "release_metadata_snap")
	if err != nil {
		t.Fatalf("thin_dump --metadata-snap %s: %v\n%s", node, err, out)
	}
	var ids []string
	for _, f := range strings.Fields(out) {
		if id, ok := strings.CutPrefix(f, `dev_id="`); ok {
			ids = append(ids, strings.TrimSuffix(id, `"`))
		}
	}
	return ids
}

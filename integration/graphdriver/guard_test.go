//go:build vmtest

package graphdriver

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsize/dmsize/integration/harness"
)

// The seed's incident, with the guard on: a 512 MiB loop-lvm pool, a container writing twice
// that at full speed. The write completes, the pool grew in steps, and the metrics say so.
// (Twice the pool proves it; the size of the pool does not add to the proof, only to the minutes.)
func TestGuardLoopData(t *testing.T) {
	e, pool := guarded(t, harness.Setup{Kind: "loop-lvm", FS: "xfs", DataSize: "512M"})
	before := poolStatus(t, pool)
	e.WaitFor("the guard's first metrics", 30*time.Second, func() bool { return metric(t, "dmsize_pool_data_size_bytes") > 0 })

	took := fill(t, e, "data-1g", 1024)
	after := poolStatus(t, pool)
	ok := metric(t, `dmsize_pool_extensions_total{part="data",pool="`+pool+`",result="ok"}`)
	t.Logf("wrote 1 GiB in %v; pool data %s -> %s in %v extensions; used %s", took.Round(time.Millisecond),
		gibs(before.dataTotal), gibs(after.dataTotal), ok, gibs(after.dataUsed))
	if after.dataTotal < 1*G || after.dataUsed < 1*G {
		t.Fatalf("pool data %d bytes (%d used) after writing 1 GiB into a 512 MiB pool", after.dataTotal, after.dataUsed)
	}
	if ok < 2 {
		t.Fatalf("%v data extensions; want the pool grown in steps", ok)
	}
	if failed := metric(t, `dmsize_pool_extensions_total{part="data",pool="`+pool+`",result="failed"}`); failed != 0 {
		t.Fatalf("%v failed extensions", failed)
	}
	if got := metric(t, "dmsize_pool_data_size_bytes"); int64(got) != after.dataTotal {
		t.Fatalf("metrics say the pool has %v data bytes, the kernel %d", got, after.dataTotal)
	}
	if n := harness.CountLines(e.DaemonLog(), "pool guard: extended the pool's data"); float64(n) != ok {
		t.Fatalf("%d log lines for %v extensions", n, ok)
	}
	reportOutOfSpace(t)
	checkHealthy(t, pool, false)
	t.Logf("the guard's log lines:\n%s", strings.Join(pluginMessages(e.DaemonLog(), "pool"), "\n"))
}

// Metadata: a 1 MiB metadata file and many small files. The guard extends the metadata file
// (and the data, which the files need too) before the kernel's own metadata reserve is touched.
func TestGuardLoopMetadata(t *testing.T) {
	e, pool := guarded(t, harness.Setup{Kind: "loop-lvm", FS: "xfs", DataSize: "3G", MetaSize: "1M"})
	before := poolStatus(t, pool)
	start := time.Now()
	// 40000 files of 64 KiB, one block of the pool each, from one process (busybox awk), so
	// the pool maps 40000 more blocks: 2.5 GiB of data and, at ~126 mappings a half-full btree
	// leaf, more metadata than 1 MiB holds.
	out, err := e.TryDocker("run", "--name", "small-files", "--network", "none", "busybox", "sh", "-c",
		`mkdir /f && awk 'BEGIN { s = sprintf("%65536s", ""); for (i = 0; i < 40000; i++) { f = "/f/" i; printf "%s", s > f; close(f) } }' && sync && ls /f | wc -l`)
	if err != nil {
		t.Fatalf("writing small files: %v\n%s", err, out)
	}
	if strings.TrimSpace(out) != "40000" {
		t.Fatalf("%q files, want 40000", out)
	}
	after := poolStatus(t, pool)
	ok := metric(t, `dmsize_pool_extensions_total{part="metadata",pool="`+pool+`",result="ok"}`)
	t.Logf("40000 files in %v; metadata %s -> %s (%s used) in %v extensions", time.Since(start).Round(time.Millisecond),
		mibs(before.metaTotal), mibs(after.metaTotal), mibs(after.metaUsed), ok)
	if after.metaTotal <= before.metaTotal || ok < 1 {
		t.Fatalf("metadata not extended: %d -> %d bytes, %v extensions", before.metaTotal, after.metaTotal, ok)
	}
	if after.metaUsed <= before.metaTotal {
		t.Fatalf("the workload used %d metadata bytes, not more than the %d the pool started with: the test proves nothing", after.metaUsed, before.metaTotal)
	}
	if got := metric(t, "dmsize_pool_metadata_size_bytes"); int64(got) != after.metaTotal {
		t.Fatalf("metrics say %v metadata bytes, the kernel %d", got, after.metaTotal)
	}
	checkHealthy(t, pool, false)
}

// The control experiment: with GUARD=off a write twice the pool's size fails, as in the seed's
// incident, so the guard is what makes the difference. The kernel holds writes to a full pool
// for no_space_timeout before it fails them; 10 s instead of 60 s keeps the test short: 2 GiB
// into a 1 GiB pool, twice the pool as TestGuardLoopData writes with the guard on. `make test-long` only.
func TestGuardOffShowsTheFailure(t *testing.T) {
	e, pool := guarded(t, harness.Setup{Kind: "loop-lvm", FS: "xfs", DataSize: "1G"}, "GUARD=off")
	shortNoSpaceTimeout(t)
	start := time.Now()
	out, err := e.TryDocker("run", "--name", "unguarded", "--network", "none", "busybox",
		"dd", "if=/dev/zero", "of=/big", "bs=1M", "count=2048", "conv=fsync")
	t.Logf("dd with the guard off: %v after %v\n%s", err, time.Since(start).Round(time.Millisecond), harness.LastLines(out, 3))
	if err == nil {
		t.Fatal("2 GiB went into a 1 GiB pool with the guard off; the workload does not reproduce the failure")
	}
	st := poolStatus(t, pool)
	if st.dataTotal != 1*G {
		t.Fatalf("pool data %d bytes; GUARD=off must not extend", st.dataTotal)
	}
	if !strings.Contains(dmesg(t), "out-of-data-space") {
		t.Fatal("the kernel never switched the pool to out-of-data-space")
	}
	if metric(t, "dmsize_pool_extension_blocked") != 1 {
		t.Fatal("dmsize_pool_extension_blocked is not 1 with a full pool and the guard off")
	}
	if harness.CountLines(e.DaemonLog(), "GUARD=off") == 0 {
		t.Fatal("no warning naming GUARD=off in the log")
	}
}

// direct-lvm with room in the volume group: the guard extends the thin pool LV with the host's
// lvm, from inside the plugin, while a container writes twice the pool's size. LVM's own
// autoextension is off, so the guard is what acts.
func TestGuardDirectLVM(t *testing.T) {
	e, pool := guarded(t, harness.Setup{Kind: "direct-lvm", FS: "xfs", DataSize: "1G", MetaSize: "64M", VGSize: "4G", NoAutoextend: true})
	took := fill(t, e, "data-2g", 2048)
	// An extension that began as the writer finished has LVM's size before the kernel's table:
	// wait for the two to agree, bounded.
	var after poolState
	var lv string
	e.WaitFor("the LV and the pool's table to agree", time.Minute, func() bool {
		after = poolStatus(t, pool)
		lv = harness.MustRun(t, "lvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "lv_size", "docker/thinpool")
		n, _ := strconv.ParseInt(strings.TrimSpace(lv), 10, 64)
		return n == after.dataTotal
	})
	ok := metric(t, `dmsize_pool_extensions_total{part="data",pool="`+pool+`",result="ok"}`)
	t.Logf("wrote 2 GiB in %v; LV docker/thinpool now %s bytes, pool data %s, %v extensions", took.Round(time.Millisecond), strings.TrimSpace(lv), gibs(after.dataTotal), ok)
	if after.dataTotal < 2*G || ok < 2 {
		t.Fatalf("pool data %d bytes after %v extensions", after.dataTotal, ok)
	}
	if n, _ := strconv.ParseInt(strings.TrimSpace(lv), 10, 64); n != after.dataTotal {
		t.Fatalf("LV is %s bytes, the pool's data %d", lv, after.dataTotal)
	}
	reportOutOfSpace(t)
	checkHealthy(t, pool, false)
}

// direct-lvm with a volume group that has no room: the guard takes what there is, then says
// clearly that it cannot extend, dm.size refuses growth over the operator's OVERCOMMIT bound, the writer
// gets an error (not silent loss), and nothing else is damaged.
func TestGuardDirectLVMNoRoom(t *testing.T) {
	// OVERCOMMIT set: the bound an operator chooses is what turns a stuck guard into refusals
	// (by default a label is a quota, sized with a warning).
	// A 1 GiB pool (and 64 MiB of metadata, twice with LVM's spare) in a 1250 MiB volume group:
	// about 96 MiB left for an extension that wants 20 %.
	e, pool := guarded(t, harness.Setup{Kind: "direct-lvm", FS: "xfs", DataSize: "1G", MetaSize: "64M", VGSize: "1250M", NoAutoextend: true}, "OVERCOMMIT=1.5")
	shortNoSpaceTimeout(t)
	// A bystander with data that must survive.
	by := e.Docker("run", "-d", "--name", "bystander", "--network", "none", "busybox", "sh", "-c",
		"dd if=/dev/urandom of=/keep bs=1M count=64 conv=fsync 2>/dev/null && md5sum /keep > /keep.md5 && sleep 3600")
	e.WaitFor("the bystander's checksum", 60*time.Second, func() bool {
		_, err := e.TryDocker("exec", by, "test", "-s", "/keep.md5")
		return err == nil
	})
	txBefore := poolStatus(t, pool).transaction
	// Fill the pool past the threshold: the guard takes what the VG has left, then is stuck.
	// To about 85 % of the 1120 MiB the pool has then (its 512 KiB chunks and the image take about
	// 110 MiB beside the files): past the threshold, and short of the 10 % the engine keeps free
	// for creates (dm.min_free_space), which the create below needs.
	fill(t, e, "filler", 780)
	e.WaitFor("the guard to say it is stuck", 30*time.Second, func() bool { return metric(t, "dmsize_pool_extension_blocked") == 1 })
	// dm.size growth that would over-commit is refused, naming the guard's reason.
	e.Docker("run", "-d", "--name", "wants-42g", "--network", "none", "--label", "dm.size=42G", "busybox", "sleep", "3600")
	e.WaitFor("the rejection naming the guard", 30*time.Second, func() bool {
		return harness.CountLines(e.DaemonLog(), "wants-42g", "the pool guard cannot extend the pool") > 0
	})

	out, err := e.TryDocker("run", "--name", "writer", "--network", "none", "busybox",
		"dd", "if=/dev/zero", "of=/big", "bs=1M", "count=2048", "conv=fsync")
	t.Logf("dd into a pool whose VG is full: %v\n%s", err, harness.LastLines(out, 3))
	if err == nil {
		t.Fatal("3 GiB fit in a 1250 MiB volume group")
	}
	log := e.DaemonLog()
	if harness.CountLines(log, "pool guard: the pool needs more space and cannot get it", "volume group docker has") == 0 {
		t.Fatal("no warning naming the volume group and its free space")
	}
	if harness.CountLines(log, "pool guard: the pool is nearly full", `level\":\"error`) == 0 && harness.CountLines(log, "pool guard: the pool is nearly full", `"level":"error"`) == 0 {
		t.Fatal("no error-level line for the nearly full pool")
	}
	if metric(t, "dmsize_pool_extension_blocked") != 1 {
		t.Fatal("dmsize_pool_extension_blocked is not 1")
	}
	st := poolStatus(t, pool)
	vgFree := harness.MustRun(t, "sh", "-c", "vgs --noheadings --units m -o vg_free docker 2>/dev/null")
	t.Logf("pool data %s of %s used, VG free %s, mode %s", gibs(st.dataUsed), gibs(st.dataTotal), strings.TrimSpace(vgFree), st.mode)
	if st.fail || st.needsCheck {
		t.Fatalf("the pool failed or needs a check: %+v", st)
	}
	if st.transaction < txBefore {
		t.Fatalf("transaction id went back: %d -> %d", txBefore, st.transaction)
	}
	// The bystander's data is intact.
	if out, err := e.TryDocker("exec", by, "md5sum", "-c", "/keep.md5"); err != nil {
		t.Fatalf("the bystander's data: %v\n%s", err, out)
	}
	checkHealthy(t, pool, true)
}

// guarded starts an engine with a fresh kernel log (checkHealthy reads it), busybox and the
// plugin with settings, and returns the engine and its pool's name.
func guarded(t *testing.T, s harness.Setup, settings ...string) (*harness.Engine, string) {
	t.Helper()
	e := harness.StartEngine(t, s)
	harness.MustRun(t, "dmesg", "-C")
	e.ImportBusybox()
	e.InstallDmsize(settings...)
	return e, e.DriverStatus()["Pool Name"]
}

// guardedShared is guarded on an engine the test before may have used (harness.Shared): for
// tests that leave the pool's size as they found it.
func guardedShared(t *testing.T, s harness.Setup, settings ...string) (*harness.Engine, string) {
	t.Helper()
	e := harness.Shared(t, s, settings...)
	harness.MustRun(t, "dmesg", "-C")
	return e, e.DriverStatus()["Pool Name"]
}

// A pool on devices nothing can grow (dm.thinpooldev on plain device-mapper devices, no LVM):
// the guard says so at start, and again with the numbers once the pool passes the threshold.
func TestGuardRawBlockWarns(t *testing.T) {
	e, pool := guarded(t, harness.Setup{Kind: "raw-block", FS: "xfs", DataSize: "1G"})
	e.WaitFor("the start-up warning", 30*time.Second, func() bool {
		return harness.CountLines(e.DaemonLog(), "this pool cannot be extended by dmsize", "neither a loop file nor an LVM volume") > 0
	})
	fill(t, e, "over-threshold", 850) // past the 80 % threshold, short of full
	e.WaitFor("the guard to say it is stuck", 30*time.Second, func() bool { return metric(t, "dmsize_pool_extension_blocked") == 1 })
	if harness.CountLines(e.DaemonLog(), "the pool needs more space and cannot get it", "neither a loop file nor an LVM volume") == 0 {
		t.Fatal("no warning with the numbers once past the threshold")
	}
	if st := poolStatus(t, pool); st.dataTotal != 1*G {
		t.Fatalf("the pool changed size: %+v", st)
	}
	t.Logf("%s", strings.Join(pluginMessages(e.DaemonLog(), "pool guard"), "\n"))
	checkHealthy(t, pool, false)
}

// fill runs a container that writes mib MiB with dd conv=fsync (buffered dd can exit 0 after
// losing data) and fails the test if dd fails.
func fill(t *testing.T, e *harness.Engine, name string, mib int) time.Duration {
	t.Helper()
	start := time.Now()
	done := make(chan struct{})
	go watchSlowFill(e, name, done)
	out, err := e.TryDocker("run", "--name", name, "--network", "none", "busybox",
		"dd", "if=/dev/zero", "of=/big", "bs=1M", "count="+strconv.Itoa(mib), "conv=fsync")
	close(done)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("dd of %d MiB: %v after %v\n%s\n--- kernel:\n%s", mib, err, took, out, harness.LastLines(dmesg(t), 20))
	}
	return took
}

// watchSlowFill prints, live, the pool's status and the guard's last lines while a fill runs
// longer than two minutes: a hang then shows its cause in the suite's output, not only its timeout.
func watchSlowFill(e *harness.Engine, name string, done chan struct{}) {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		if time.Since(start) < 2*time.Minute {
			continue
		}
		// The processes are harness.Run's to print (after 3 minutes); this adds the pool's side.
		st, _ := harness.Run("dmsetup", "status")
		msgs := pluginMessages(e.DaemonLog(), "")
		if len(msgs) > 5 {
			msgs = msgs[len(msgs)-5:]
		}
		fmt.Printf("    [%s still writing after %v]\n%s\n%s\n", name, time.Since(start).Round(time.Second), st, strings.Join(msgs, "\n"))
	}
}

type poolState struct {
	transaction                              int64
	dataUsed, dataTotal, metaUsed, metaTotal int64
	mode                                     string
	fail, needsCheck                         bool
}

// poolStatus reads the pool with dmsetup, independently of the plugin's own parser.
func poolStatus(t *testing.T, pool string) poolState {
	t.Helper()
	table := strings.Fields(harness.MustRun(t, "dmsetup", "table", pool))
	status := harness.MustRun(t, "dmsetup", "status", pool)
	f := strings.Fields(status)
	if len(table) < 7 || len(f) < 8 || f[2] != "thin-pool" {
		if strings.Contains(status, "Fail") {
			return poolState{fail: true}
		}
		t.Fatalf("pool %s: table %q status %q", pool, table, status)
	}
	blockSectors, _ := strconv.ParseInt(table[5], 10, 64)
	frac := func(s string) (int64, int64) {
		a, b, _ := strings.Cut(s, "/")
		x, _ := strconv.ParseInt(a, 10, 64)
		y, _ := strconv.ParseInt(b, 10, 64)
		return x, y
	}
	var p poolState
	p.transaction, _ = strconv.ParseInt(f[3], 10, 64)
	mu, mt := frac(f[4])
	du, dt := frac(f[5])
	p.metaUsed, p.metaTotal = mu*4096, mt*4096
	p.dataUsed, p.dataTotal = du*blockSectors*512, dt*blockSectors*512
	p.mode = f[7]
	p.needsCheck = strings.Contains(status, "needs_check")
	return p
}

// checkHealthy fails the test if the pool failed, needs a check, or the kernel logged a failed
// or read-only mode for it, or (unless writesMayFail) the mode in which it fails writes.
func checkHealthy(t *testing.T, pool string, writesMayFail bool) {
	t.Helper()
	st := poolStatus(t, pool)
	if st.fail || st.needsCheck || st.mode == "ro" {
		t.Fatalf("pool %s is not healthy: %+v", pool, st)
	}
	k := dmesg(t)
	if (!writesMayFail && strings.Contains(k, "(error IO) mode")) || strings.Contains(k, "switching pool to fail") || strings.Contains(k, "to read-only mode") {
		t.Fatalf("the kernel put the pool in an error mode:\n%s", harness.LastLines(k, 20))
	}
}

// reportOutOfSpace logs whether the pool ever ran out of data space: with the guard on, writes
// then waited for an extension instead of failing (the kernel queues them).
func reportOutOfSpace(t *testing.T) {
	n := strings.Count(dmesg(t), "switching pool to out-of-data-space")
	t.Logf("the pool reached out-of-data-space %d times (writes waited for the extension)", n)
}

// shortNoSpaceTimeout makes the kernel fail writes to a full pool after 10 s instead of 60 s,
// for this test only.
func shortNoSpaceTimeout(t *testing.T) {
	const p = "/sys/module/dm_thin_pool/parameters/no_space_timeout"
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("10"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(p, old, 0o644) })
}

// metric is the value of the sample named name (a name, or a name with its labels as
// Prometheus prints them; with a name alone, the first of its samples); 0 if the plugin does not
// export it.
func metric(t *testing.T, name string) float64 {
	t.Helper()
	m, err := harness.Metrics()
	if err != nil {
		t.Logf("metrics: %v", err)
		return 0
	}
	if v, ok := m[name]; ok {
		return v
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if strings.HasPrefix(k, name+"{") {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return 0
	}
	sort.Strings(keys)
	return m[keys[0]]
}

// pluginMessages are the plugin's log lines (JSON, which dockerd quotes into its own lines) whose
// message contains part, as "time level: message".
func pluginMessages(daemonLog, part string) []string {
	var out []string
	for _, l := range strings.Split(daemonLog, "\n") {
		i := strings.Index(l, ` msg="{`)
		j := strings.LastIndex(l, `}" plugin=`)
		if i < 0 || j < i {
			continue
		}
		raw, err := strconv.Unquote(l[i+5 : j+2])
		if err != nil {
			continue
		}
		var m struct{ Time, Level, Msg string }
		if json.Unmarshal([]byte(raw), &m) != nil || !strings.Contains(m.Msg, part) {
			continue
		}
		out = append(out, m.Time+" "+m.Level+": "+m.Msg)
	}
	return out
}

func dmesg(t *testing.T) string {
	t.Helper()
	return harness.MustRun(t, "dmesg")
}

func gibs(b int64) string { return fmt.Sprintf("%.2fGiB", float64(b)/float64(G)) }
func mibs(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

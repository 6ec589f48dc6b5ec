//go:build vmtest

package graphdriver

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmsize/dmsize/integration/harness"
)

// The sizer's crash points, in the order a sizing passes them. A running container's sizing
// skips sizer-mounted (its rootfs is mounted already).
var sizerSteps = []string{"sizer-intent", "sizer-persisted", "sizer-mounted", "sizer-held", "sizer-device-grown", "sizer-fs-grown", "sizer-applied"}

// The pool guard's crash points in a loop-lvm extension.
var poolSteps = []string{"pool-file-grown", "pool-loop-refreshed"}

// Kill -9 during a sizing: once the engine has restarted the plugin, the container has its
// size, its data, a healthy pool and a record that says applied. The fast suite kills once per
// kind of step: after the record (a created container), after the device grew (a running one)
// and after the filesystem grew (a created one); every step is unit-tested with a fake kernel
// and engine (sizer.TestCrashAfterEachStep). `make test-long` kills at every step, for a created
// container and for a running one.
func TestCrashSizerSteps(t *testing.T) {
	e, pool := guardedShared(t, harness.Setup{Kind: "loop-lvm", FS: "xfs", DataSize: "20G"})
	if harness.Long() {
		crashSteps(t, e, pool, sizerSteps)
		return
	}
	t.Run("sizer-persisted/created", func(t *testing.T) { crashCreated(t, e.With(t), pool, "sizer-persisted") })
	t.Run("sizer-device-grown/running", func(t *testing.T) { crashRunning(t, e.With(t), pool, "sizer-device-grown") })
	t.Run("sizer-fs-grown/created", func(t *testing.T) { crashCreated(t, e.With(t), pool, "sizer-fs-grown") })
}

// The same on ext4 (online resize through the kernel's ioctl, not xfs growfs), for the two
// steps around the filesystem's growth. `make test-long` only: the fast suite grows ext4
// online in TestCLIGrowOnline.
func TestCrashSizerStepsExt4(t *testing.T) {
	e, pool := guarded(t, harness.Setup{Kind: "loop-lvm", FS: "ext4", DataSize: "20G"})
	crashSteps(t, e, pool, []string{"sizer-device-grown", "sizer-fs-grown"})
}

// crashSteps runs, for each step, the crash of a created container's sizing and (but at
// sizer-mounted, which a running container skips) of a running one's.
func crashSteps(t *testing.T, e *harness.Engine, pool string, steps []string) {
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			t.Run("created", func(t *testing.T) { crashCreated(t, e.With(t), pool, step) })
			if step != "sizer-mounted" {
				t.Run("running", func(t *testing.T) { crashRunning(t, e.With(t), pool, step) })
			}
		})
	}
}

// crashCreated: the plugin, armed for step, sizes a container on its create event and dies at
// the step; the restarted plugin finishes before anything starts the container.
func crashCreated(t *testing.T, e *harness.Engine, pool, step string) {
	c := e.ArmCrash(step)
	id := e.Docker("create", "--network", "none", "--label", "dm.size=20G", "busybox", "sleep", "3600")
	dev := e.DeviceOf(id)
	c.Wait(2 * time.Minute)
	sized := waitSized(t, e, id, dev, 20*G, c.Back)
	t.Logf("%v; device at 20G and recorded applied %v after the restart", c, sized.Round(time.Millisecond))

	e.Docker("start", id)
	if got := e.ExecRootSize(id); !harness.About(got, 20*G) {
		t.Fatalf("first start after the crash: root filesystem %d bytes, want 20 GiB", got)
	}
	e.WriteChecksummed(id)
	e.Docker("stop", "-t", "0", id)
	e.Docker("start", id)
	if got := e.ExecRootSize(id); !harness.About(got, 20*G) {
		t.Fatalf("after a stop and start: root filesystem %d bytes, want 20 GiB", got)
	}
	e.CheckChecksummed(id)
	checkAfterCrash(t, e, pool, id)
}

// crashRunning: a running container with data written, then the plugin armed for step: its
// start-up check sizes the container online and dies at the step. The container keeps running,
// and reaches its size with the data intact.
func crashRunning(t *testing.T, e *harness.Engine, pool, step string) {
	// Created while the plugin is off, so that the data is written before any sizing.
	e.Docker("plugin", "disable", harness.Plugin)
	id := e.Docker("run", "-d", "--network", "none", "--label", "dm.size=20G", "busybox", "sleep", "3600")
	dev := e.DeviceOf(id)
	e.WriteChecksummed(id)
	started := e.Docker("inspect", "--format", "{{.State.StartedAt}}", id)
	c := e.ArmCrash(step)
	c.Wait(2 * time.Minute)
	sized := waitSized(t, e, id, dev, 20*G, c.Back)
	t.Logf("%v; device at 20G and recorded applied %v after the restart", c, sized.Round(time.Millisecond))

	if got := e.Docker("inspect", "--format", "{{.State.Running}} {{.State.StartedAt}}", id); got != "true "+started {
		t.Fatalf("the container did not keep running: %s (started %s)", got, started)
	}
	if got := e.ExecRootSize(id); !harness.About(got, 20*G) {
		t.Fatalf("root filesystem %d bytes, want 20 GiB", got)
	}
	e.CheckChecksummed(id)
	// The engine's mount and the plugin's hold: without the hold, the next stop would let the
	// engine re-create the device at its cached 10G.
	if open, _ := strconv.Atoi(harness.MustRun(t, "dmsetup", "info", "-c", "--noheadings", "-o", "open", dev)); open < 2 {
		t.Fatalf("device %s open %d times; want the mount and the plugin's hold", dev, open)
	}
	checkAfterCrash(t, e, pool, id)
}

// waitSized waits for the container's device to be active at want bytes with a record that says
// applied, and returns how long after since that was.
func waitSized(t *testing.T, e *harness.Engine, id, dev string, want int64, since time.Time) time.Duration {
	t.Helper()
	e.WaitFor("the device sized and recorded as applied", 2*time.Minute, func() bool {
		ok, _ := harness.RecordApplied(id)
		return ok && harness.DeviceSectors(dev) == want/512
	})
	return time.Since(since)
}

// checkAfterCrash: the record says applied, the pool needs no check, and the container goes.
func checkAfterCrash(t *testing.T, e *harness.Engine, pool, id string) {
	t.Helper()
	if ok, rec := harness.RecordApplied(id); !ok {
		t.Fatalf("the plugin's record does not say applied: %s", rec)
	}
	checkHealthy(t, pool, false)
	e.Docker("rm", "-f", id)
}

// Labelled creates from 8 goroutines, the plugin SIGKILLed twice while they run: every
// container's device ends up at its size, and the plugin's memory and goroutines say nothing
// piles up. 8 creates in the fast suite (a kill lands among creates still running either
// way), 200 in `make test-long`.
func TestCrashBurst(t *testing.T) {
	e, pool := guardedShared(t, harness.Setup{Kind: "loop-lvm", FS: "xfs", DataSize: "20G"})
	n := int32(harness.Pick(8, 200))
	sizedAt := watchSized(t, 12*G)
	cr := startCreates(e, "burst", int(n), 8)
	for _, at := range []int32{n / 3, 2 * n / 3} {
		for cr.done.Load() < at {
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("after %d creates: plugin SIGKILLed, back in %v", at, e.KillPlugin().Round(time.Millisecond))
	}
	ids := cr.wait(t)
	t.Logf("%d creates from 8 goroutines in %v", n, time.Since(cr.start).Round(time.Millisecond))

	devs := devicesOf(t, e, ids)
	took := waitAllSized(t, sizedAt, devs, 10*time.Minute)
	t.Logf("all %d devices at 12G %v after the first create (%v after the last)", n, took.Round(time.Millisecond), time.Since(cr.end).Round(time.Millisecond))
	logLatencies(t, cr, devs, sizedAt)
	lengths, err := harness.DeviceLengths()
	if err != nil {
		t.Fatal(err)
	}
	for id, dev := range devs {
		if lengths[dev] != 12*G/512 {
			t.Errorf("container %s: device %s is %d sectors now, want 12 GiB", id[:12], dev, lengths[dev])
		}
	}
	// A device reaches its size before its filesystem grows and its record says so: wait for
	// the records, bounded.
	var notApplied []string
	e.WaitFor("every record to say applied", 2*time.Minute, func() bool {
		notApplied = notApplied[:0]
		for _, id := range ids {
			if ok, rec := harness.RecordApplied(id); !ok {
				notApplied = append(notApplied, rec)
			}
		}
		return len(notApplied) == 0
	})
	e.WaitFor("the sizer's queue to drain", time.Minute, func() bool { return metricIs("dmsize_sizer_queue", 0) })
	m := metrics(t)
	t.Logf("after the burst: RSS %.1f MiB, %v goroutines, %v lock entries, queue %v",
		m["process_resident_memory_bytes"]/(1<<20), m["go_goroutines"], m["dmsize_sizer_locks"], m["dmsize_sizer_queue"])
	// The first start of some of them (3 in the fast suite, 10 in the long) sees the size.
	for i := 0; i < len(ids); i += max(len(ids)/harness.Pick(3, 10), 1) {
		if got := e.StartDf(ids[i]); !harness.About(got, 12*G) {
			t.Errorf("container %d: first start sees %d bytes, want 12 GiB", i, got)
		}
	}
	checkHealthy(t, pool, false)
}

// Kill -9 in the middle of a loop-lvm pool extension: the restarted guard extends again, the
// writer that forced the extension finishes, and the pool needs no check. The fast suite kills
// after the file grew; `make test-long` at each step.
func TestCrashPoolExtension(t *testing.T) {
	// A 1 GiB pool: each step writes about half of it (TestGuardLoopData is the long fill).
	e, pool := guarded(t, harness.Setup{Kind: "loop-lvm", FS: "xfs", DataSize: "1G"}, "GUARD_THRESHOLD=30%")
	dataFile := e.DriverStatus()["Data loop file"]
	for _, step := range harness.Pick(poolSteps[:1], poolSteps) {
		t.Run(step, func(t *testing.T) {
			e := e.With(t)
			before := poolStatus(t, pool)
			// Up to 50 % of the pool: past the threshold (30 %) where the crash hits, and well past
			// the threshold of the size that extension gives (36 % of today's size).
			mib := max((before.dataTotal/2-before.dataUsed)>>20, 256)
			c := e.ArmCrash(step)
			var atCrash poolState
			var fileAtCrash int64
			c.OnHit = func() {
				atCrash = poolStatus(t, pool)
				if fi, err := os.Stat(dataFile); err == nil {
					fileAtCrash = fi.Size()
				}
			}
			name := "fill-" + step
			start := time.Now()
			done := make(chan error, 1)
			var out string
			go func() {
				var err error
				out, err = e.TryDocker("run", "--name", name, "--network", "none", "busybox",
					"dd", "if=/dev/zero", "of=/big", "bs=1M", "count="+strconv.FormatInt(mib, 10), "conv=fsync")
				done <- err
			}()
			c.Wait(3 * time.Minute)
			if err := <-done; err != nil {
				t.Fatalf("dd of %d MiB across the crash: %v\n%s", mib, err, out)
			}
			// On a 1 GiB pool the write may end before dockerd restarts the plugin: the restarted
			// guard's first check then finds the pool past its threshold.
			var after poolState
			e.WaitFor("the restarted guard to extend past where the crash left the pool", time.Minute, func() bool {
				after = poolStatus(t, pool)
				return after.dataTotal > max(atCrash.dataTotal, fileAtCrash)
			})
			m := metrics(t)
			ok := m[`dmsize_pool_extensions_total{part="data",pool="`+pool+`",result="ok"}`]
			failed := m[`dmsize_pool_extensions_total{part="data",pool="`+pool+`",result="failed"}`]
			t.Logf("%d MiB written in %v; %v; pool data %s (file %s) at the crash, %s -> %s in all, %v extensions since the restart",
				mib, time.Since(start).Round(time.Millisecond), c, gibs(atCrash.dataTotal), gibs(fileAtCrash), gibs(before.dataTotal), gibs(after.dataTotal), ok)
			if after.dataTotal <= max(atCrash.dataTotal, fileAtCrash) {
				t.Fatalf("pool data %s after the restart: not past where the crash left it (pool %s, file %s)", gibs(after.dataTotal), gibs(atCrash.dataTotal), gibs(fileAtCrash))
			}
			if ok < 1 || failed != 0 {
				t.Fatalf("the restarted guard made %v data extensions, %v failed", ok, failed)
			}
			checkHealthy(t, pool, false)
			e.Docker("rm", name)
		})
	}
}

// Rounds of labelled creates and then `docker rm` leave no record, no lock entry and no device
// behind: three rounds of 40, in `make test-long` only (the fast suite's lifecycle, strict
// and volume tests remove what they make and check that nothing is left).
func TestSizerRoundsLeaveNothing(t *testing.T) {
	e, pool := guarded(t, harness.Setup{Kind: "loop-lvm", FS: "xfs", DataSize: "20G"})
	// dockerd 20.10 starts its deferred-deletion worker only when it finds its loop files at
	// start (initMetaData runs only when !createdLoopback): during a fresh loop-lvm engine's first
	// life, a device marked deleted stays so until dockerd restarts (seen: no devmapper goroutine
	// in its stack dump, 40 devices marked deleted for 3 minutes). Restart once, as any host has.
	e.Restart()
	e.WaitFor("the plugin's metrics after the dockerd restart", time.Minute, func() bool {
		_, err := harness.Metrics()
		return err == nil
	})
	const perRound, rounds = 40, 3
	for round := 1; round <= rounds; round++ {
		sizedAt := watchSized(t, 12*G)
		cr := startCreates(e, fmt.Sprintf("round%d", round), perRound, 8)
		ids := cr.wait(t)
		devs := devicesOf(t, e, ids)
		took := waitAllSized(t, sizedAt, devs, 5*time.Minute)
		rmStart := time.Now()
		e.Docker(append([]string{"rm"}, ids...)...)
		removed := time.Now()
		e.WaitFor("no records left", 30*time.Second, func() bool {
			recs, err := harness.Records()
			return err == nil && len(recs) == 0
		})
		e.WaitFor("dmsize_sizer_locks and dmsize_devices_held 0", 30*time.Second, func() bool {
			return metricIs("dmsize_sizer_locks", 0) && metricIs("dmsize_devices_held", 0)
		})
		clean := time.Since(removed)
		// The engine retries deferred deletions every 30 s, one device after the other.
		gone := waitDevicesGone(t, e, pool, 75*time.Second)
		m := metrics(t)
		t.Logf("round %d: %d creates in %v, all sized %v after the first; docker rm took %v; records and locks gone %v after it, devices %v after it; RSS %.1f MiB, %v goroutines",
			round, perRound, cr.end.Sub(cr.start).Round(time.Millisecond), took.Round(time.Millisecond), removed.Sub(rmStart).Round(time.Millisecond),
			clean.Round(time.Millisecond), gone.Round(time.Millisecond), m["process_resident_memory_bytes"]/(1<<20), m["go_goroutines"])
	}
}

// waitDevicesGone waits until the engine has no device marked deleted and `dmsetup ls` shows
// only the pool, and returns how long that took; it logs how the engine's count of devices
// marked deleted went down, and on timeout says who keeps what is left.
func waitDevicesGone(t *testing.T, e *harness.Engine, pool string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var counts []string
	last := ""
	for {
		deleted := e.DriverStatus()["Deferred Deleted Device Count"]
		if deleted != last {
			counts = append(counts, fmt.Sprintf("%s at %v", deleted, time.Since(start).Round(100*time.Millisecond)))
			last = deleted
		}
		names, err := harness.DeviceNames()
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, n := range names {
			if n != pool {
				left = append(left, n)
			}
		}
		if deleted == "0" && len(left) == 0 {
			t.Logf("devices marked deleted: %s", strings.Join(counts, ", "))
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			var why []string
			for _, n := range left {
				why = append(why, harness.DeviceUsers(n))
			}
			if deleted != "0" {
				why = append(why, e.DebugDevmapper())
			}
			t.Fatalf("after %v: %s devices marked deleted (%s), %d devices besides the pool:\n%s", timeout, deleted, strings.Join(counts, ", "), len(left), strings.Join(why, "\n\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// A label above the size of a pool that cannot grow: the container gets its size, and the plugin
// says once, at warning level, that the sizes it gave pass the pool's.
func TestSizerOvercommitWarns(t *testing.T) {
	e, _ := guarded(t, harness.Setup{Kind: "loop-lvm", FS: "xfs", DataSize: "8G"}, "GUARD=off")
	id := e.Docker("create", "--name", "over-pool", "--network", "none", "--label", "dm.size=20G", "busybox", "df", "-P", "-k", "/")
	dev := e.DeviceOf(id)
	took := waitSized(t, e, id, dev, 20*G, time.Now())
	if got := e.StartDf(id); !harness.About(got, 20*G) {
		t.Fatalf("first start: %d bytes, want 20 GiB", got)
	}
	var warnings []string
	for _, l := range pluginMessages(e.DaemonLog(), "") {
		if strings.Contains(l, " warning: ") && strings.Contains(l, "sum of all thin device sizes") && strings.Contains(l, "exceeds the size of the thin pool") {
			warnings = append(warnings, l)
		}
	}
	t.Logf("sized to 20G on an 8G pool in %v; warnings:\n%s", took.Round(time.Millisecond), strings.Join(warnings, "\n"))
	if len(warnings) != 1 {
		t.Fatalf("%d over-commit warnings, want 1", len(warnings))
	}
}

// creates is a batch of labelled `docker create`s (dm.size=12G, `df -P -k /`) running from
// several goroutines.
type creates struct {
	start, end time.Time
	done       atomic.Int32
	ids        []string
	at         []time.Time // when each create returned
	errs       []error
	wg         sync.WaitGroup
}

func startCreates(e *harness.Engine, prefix string, n, workers int) *creates {
	c := &creates{start: time.Now(), ids: make([]string, n), at: make([]time.Time, n), errs: make([]error, n)}
	jobs := make(chan int)
	go func() {
		for i := range n {
			jobs <- i
		}
		close(jobs)
	}()
	for range workers {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for i := range jobs {
				out, err := e.TryDocker("create", "--name", fmt.Sprintf("%s-%03d", prefix, i), "--network", "none",
					"--label", "dm.size=12G", "busybox", "df", "-P", "-k", "/")
				c.ids[i], c.at[i], c.errs[i] = out, time.Now(), err
				c.done.Add(1)
			}
		}()
	}
	return c
}

// wait waits for every create and fails the test on the first error.
func (c *creates) wait(t *testing.T) []string {
	t.Helper()
	c.wg.Wait()
	c.end = time.Now()
	for i, err := range c.errs {
		if err != nil {
			t.Fatalf("create %d: %v\n%s", i, err, c.ids[i])
		}
	}
	return c.ids
}

// devicesOf maps container ids to their thin device names, with one docker inspect.
func devicesOf(t *testing.T, e *harness.Engine, ids []string) map[string]string {
	t.Helper()
	out := e.Docker(append([]string{"inspect", "--format", "{{.Id}} {{.GraphDriver.Data.DeviceName}}"}, ids...)...)
	devs := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if id, dev, ok := strings.Cut(l, " "); ok {
			devs[id] = dev
		}
	}
	if len(devs) != len(ids) {
		t.Fatalf("docker inspect gave %d devices for %d containers", len(devs), len(ids))
	}
	return devs
}

// sizedWatch records when each active device was first seen at a length, polling dmsetup
// every 250 ms until the test ends.
type sizedWatch struct {
	mu    sync.Mutex
	first map[string]time.Time
	start time.Time
}

func watchSized(t *testing.T, want int64) *sizedWatch {
	w := &sizedWatch{first: map[string]time.Time{}, start: time.Now()}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			if lengths, err := harness.DeviceLengths(); err == nil {
				now := time.Now()
				w.mu.Lock()
				for name, l := range lengths {
					if _, seen := w.first[name]; !seen && l == want/512 {
						w.first[name] = now
					}
				}
				w.mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *sizedWatch) at(dev string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.first[dev]
	return at, ok
}

// waitAllSized waits until every device of devs has been seen at the watched size, and returns
// how long after the watch started the last one was.
func waitAllSized(t *testing.T, w *sizedWatch, devs map[string]string, timeout time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var last time.Time
		var missing []string
		for id, dev := range devs {
			at, ok := w.at(dev)
			if !ok {
				missing = append(missing, id[:12])
			} else if at.After(last) {
				last = at
			}
		}
		if len(missing) == 0 {
			return last.Sub(w.start)
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			t.Fatalf("%d of %d devices not sized after %v: %s", len(missing), len(devs), timeout, strings.Join(missing, " "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// logLatencies logs, from each create's return to its device first seen sized, the median, the
// 95th percentile and the longest.
func logLatencies(t *testing.T, c *creates, devs map[string]string, w *sizedWatch) {
	var l []time.Duration
	for i, id := range c.ids {
		if at, ok := w.at(devs[id]); ok {
			l = append(l, max(at.Sub(c.at[i]), 0))
		}
	}
	if len(l) == 0 {
		return
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
	t.Logf("create returned -> device sized (250 ms polls): median %v, p95 %v, max %v", r(l[len(l)/2]), r(l[len(l)*95/100]), r(l[len(l)-1]))
}

// metrics reads the plugin's metrics and fails the test if they cannot be read.
func metrics(t *testing.T) map[string]float64 {
	t.Helper()
	m, err := harness.Metrics()
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	return m
}

// metricIs says whether the plugin exports the sample name with value v (false while the
// metrics cannot be read).
func metricIs(name string, v float64) bool {
	m, err := harness.Metrics()
	got, ok := m[name]
	return err == nil && ok && got == v
}

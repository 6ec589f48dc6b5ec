//go:build vmtest

package dm

// The dm package against a real kernel: runs as root in the test VM (Debian, dm_thin_pool and
// loop loaded, udev running, dmsetup installed). Every device it makes is named dmsize-test-*
// and is removed at the end, loop devices included.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/internal/vmfixture"
)

// loopDev attaches a loop device to file until the test ends and gives its number.
func loopDev(t *testing.T, file string) Dev {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(vmfixture.Losetup(t, file), &st); err != nil {
		t.Fatal(err)
	}
	return decodeDev(st.Rdev)
}

// removeAtCleanup removes a device at the end of the test if it is still there, retrying
// while udev's probes keep it busy.
func removeAtCleanup(t *testing.T, c *Control, name string) {
	t.Cleanup(func() {
		for i := 0; ; i++ {
			vmfixture.Settle()
			err := c.Remove(name, false)
			if err == nil || errors.Is(err, ErrNotFound) {
				return
			}
			if i == 20 {
				t.Errorf("cleanup: %v", err)
				exec.Command("dmsetup", "remove", "--force", name).Run()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

func removeBusy(t *testing.T, c *Control, name string) {
	t.Helper()
	for i := 0; ; i++ {
		vmfixture.Settle()
		err := c.Remove(name, false)
		if err == nil {
			return
		}
		if !errors.Is(err, unix.EBUSY) || i == 20 {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeThin writes 1 MiB at off of the device, which maps 16 blocks of 64 KiB.
func writeThin(t *testing.T, name string, off int64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join("/dev/mapper", name), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = 0xab
	}
	if _, err := f.WriteAt(buf, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func dmsetupInfo(t *testing.T, name string) []string {
	t.Helper()
	out := vmfixture.Sh(t, "dmsetup", "info", "-c", "--noheadings", "--separator", "|", "-o", "name,uuid,major,minor,open,segments,events,attr", name)
	return strings.Split(out, "|")
}

func checkInfo(t *testing.T, c *Control, name string) Info {
	t.Helper()
	info, err := c.Info(name)
	if err != nil {
		t.Fatal(err)
	}
	d := dmsetupInfo(t, name)
	want := []string{info.Name, info.UUID, fmt.Sprint(info.Dev.Major), fmt.Sprint(info.Dev.Minor),
		fmt.Sprint(info.OpenCount), fmt.Sprint(info.TargetCount), fmt.Sprint(info.EventNr)}
	if len(d) != 8 || strings.Join(d[:7], "|") != strings.Join(want, "|") {
		t.Fatalf("Info %+v\ndmsetup info %q", info, d)
	}
	if attr := d[7]; strings.Contains(attr, "s") != info.Suspended || strings.HasSuffix(attr, "r") != info.ReadOnly {
		t.Fatalf("Info %+v, dmsetup attr %q", info, attr)
	}
	return info
}

// dmsetupLines runs "dmsetup table|status NAME" and returns its lines as Targets.
func dmsetupLines(t *testing.T, what, name string) []Target {
	t.Helper()
	var targets []Target
	for _, l := range strings.Split(vmfixture.Sh(t, "dmsetup", what, name), "\n") {
		targets = append(targets, splitLine(t, l))
	}
	return targets
}

func sameTargets(t *testing.T, what string, got, want []Target) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		// dmsetup prints the kernel's text as is; compare without trailing spaces all the same.
		g.Params, w.Params = strings.TrimRight(g.Params, " "), strings.TrimRight(w.Params, " ")
		ok = g == w
	}
	if !ok {
		t.Fatalf("%s: got %+v\ndmsetup: %+v", what, got, want)
	}
}

func poolStatus(t *testing.T, c *Control, pool string) PoolStatus {
	t.Helper()
	st, err := c.Status(pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Type != "thin-pool" {
		t.Fatalf("pool status %+v", st)
	}
	ps, err := ParsePoolStatus(st[0].Params)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestVMThinPool(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the VM test runs as root")
	}
	// Registered first, so it runs last: nothing of ours may be left behind.
	dir := t.TempDir()
	t.Cleanup(func() {
		if out := vmfixture.Sh(t, "dmsetup", "ls"); strings.Contains(out, "dmsize-test-") {
			t.Errorf("devices left behind:\n%s", out)
		}
		if out := vmfixture.Sh(t, "losetup", "-a"); strings.Contains(out, dir) {
			t.Errorf("loop devices left behind:\n%s", out)
		}
	})
	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	v, err := c.Version()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dm ioctl interface %d.%d.%d", v[0], v[1], v[2])

	suffix := strconv.Itoa(os.Getpid())
	pool, thin, bare := "dmsize-test-pool-"+suffix, "dmsize-test-thin-"+suffix, "dmsize-test-bare-"+suffix
	uuid := "dmsize-test-uuid-" + suffix

	dataFile, metaFile := filepath.Join(dir, "data"), filepath.Join(dir, "meta")
	vmfixture.Sparse(t, dataFile, 1<<30)
	vmfixture.Sparse(t, metaFile, 64<<20)
	dataDev := loopDev(t, dataFile)
	metaDev := loopDev(t, metaFile)

	// The pool, with our Create/Load/Resume.
	const poolSectors = 1 << 30 / 512
	poolTable := PoolTable{MetaDev: metaDev.String(), DataDev: dataDev.String(), DataBlockSectors: 128,
		LowWaterBlocks: 32768, Features: []string{"skip_block_zeroing"}}
	start := time.Now()
	poolDev, err := c.Create(pool, uuid)
	if err != nil {
		t.Fatal(err)
	}
	removeAtCleanup(t, c, pool)
	if err := c.Load(pool, []Target{{0, poolSectors, "thin-pool", poolTable.String()}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(pool); err != nil {
		t.Fatal(err)
	}
	t.Logf("pool %s (%v) up in %v", pool, poolDev, time.Since(start))

	t.Run("Info", func(t *testing.T) {
		info := checkInfo(t, c, pool)
		if info.Dev != poolDev || info.UUID != uuid || !info.LiveTable || info.InactiveTable || info.Suspended || info.TargetCount != 1 {
			t.Fatalf("%+v", info)
		}
		_, err := c.Info("dmsize-test-missing-" + suffix)
		if !errors.Is(err, ErrNotFound) || err.Error() != "dm: info dmsize-test-missing-"+suffix+": no such device-mapper device" {
			t.Fatalf("missing device: %v", err)
		}
	})
	t.Run("Table", func(t *testing.T) {
		table, err := c.Table(pool)
		if err != nil {
			t.Fatal(err)
		}
		sameTargets(t, "table", table, dmsetupLines(t, "table", pool))
		pt, err := ParsePoolTable(table[0].Params)
		if err != nil || pt.String() != poolTable.String() {
			t.Fatalf("%+v %v", pt, err)
		}
	})
	t.Run("Status", func(t *testing.T) {
		st, err := c.Status(pool)
		if err != nil {
			t.Fatal(err)
		}
		sameTargets(t, "status", st, dmsetupLines(t, "status", pool))
		ps, err := ParsePoolStatus(st[0].Params)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pool status %q: %+v", st[0].Params, ps)
		if ps.Mode != "rw" || ps.TotalDataBlocks != poolSectors/128 || ps.UsedDataBlocks != 0 || ps.HeldMetadataRoot != "-" {
			t.Fatalf("%+v", ps)
		}
	})
	t.Run("List", func(t *testing.T) {
		list, err := c.List()
		if err != nil {
			t.Fatal(err)
		}
		ours := map[string]Dev{}
		for _, e := range list {
			ours[e.Name] = e.Dev
		}
		if ours[pool] != poolDev {
			t.Fatalf("pool missing from %+v", list)
		}
		re := regexp.MustCompile(`^(\S+)\s+\((\d+)(?::|, )(\d+)\)$`)
		n := 0
		for _, l := range strings.Split(vmfixture.Sh(t, "dmsetup", "ls"), "\n") {
			m := re.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("dmsetup ls line %q", l)
			}
			n++
			if got := ours[m[1]].String(); got != m[2]+":"+m[3] {
				t.Fatalf("dmsetup ls %q, List has %s", l, got)
			}
		}
		if n != len(list) {
			t.Fatalf("dmsetup ls has %d devices, List %d: %+v", n, len(list), list)
		}
	})

	// A thin device: created in the pool with dmsetup (Message refuses create_thin), activated
	// with our Create/Load/Resume.
	vmfixture.Sh(t, "dmsetup", "message", pool, "0", "create_thin 0")
	const thinSectors = 10 << 30 / 512
	thinTable := ThinTable{PoolDev: poolDev.String(), DevID: 0}
	thinDev, err := c.Create(thin, "")
	if err != nil {
		t.Fatal(err)
	}
	removeAtCleanup(t, c, thin)
	if err := c.Load(thin, []Target{{0, thinSectors, "thin", thinTable.String()}}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := c.Resume(thin); err != nil {
		t.Fatal(err)
	}
	t.Logf("thin %s (%v) resumed, node ready in %v", thin, thinDev, time.Since(start))

	t.Run("Node", func(t *testing.T) {
		path := filepath.Join("/dev/mapper", thin)
		var lst, st unix.Stat_t
		if err := unix.Lstat(path, &lst); err != nil {
			t.Fatal(err)
		}
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFBLK || decodeDev(st.Rdev) != thinDev {
			t.Fatalf("%s: mode %o dev %v", path, st.Mode, decodeDev(st.Rdev))
		}
		if lst.Mode&unix.S_IFMT == unix.S_IFLNK {
			link, _ := os.Readlink(path)
			t.Logf("%s is udev's symlink to %s", path, link)
		} else {
			t.Logf("%s is a block node (udev was slower than %v)", path, c.NodeWait)
		}
	})
	t.Run("ThinStatus", func(t *testing.T) {
		writeThin(t, thin, 0)
		st, err := c.Status(thin)
		if err != nil {
			t.Fatal(err)
		}
		sameTargets(t, "thin status", st, dmsetupLines(t, "status", thin))
		ts, err := ParseThinStatus(st[0].Params)
		if err != nil {
			t.Fatal(err)
		}
		if ts.MappedSectors != 2048 || ts.HighestMappedSector != 2047 {
			t.Fatalf("%q: %+v", st[0].Params, ts)
		}
		table, err := c.Table(thin)
		if err != nil {
			t.Fatal(err)
		}
		sameTargets(t, "thin table", table, dmsetupLines(t, "table", thin))
		if tt, err := ParseThinTable(table[0].Params); err != nil || tt != thinTable {
			t.Fatalf("%+v %v", tt, err)
		}
		if ps := poolStatus(t, c, pool); ps.UsedDataBlocks != 16 {
			t.Fatalf("pool after 1 MiB: %+v", ps)
		}
	})
	t.Run("SuspendResume", func(t *testing.T) {
		if err := c.Suspend(thin, false); err != nil {
			t.Fatal(err)
		}
		if info := checkInfo(t, c, thin); !info.Suspended {
			t.Fatalf("not suspended: %+v", info)
		}
		if err := c.Resume(thin); err != nil {
			t.Fatal(err)
		}
		if info := checkInfo(t, c, thin); info.Suspended || !info.LiveTable {
			t.Fatalf("not resumed: %+v", info)
		}
		if err := c.Suspend(thin, true); err != nil {
			t.Fatal(err)
		}
		if err := c.Resume(thin); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ClearInactive", func(t *testing.T) {
		if err := c.Load(thin, []Target{{0, thinSectors, "thin", thinTable.String()}}); err != nil {
			t.Fatal(err)
		}
		if info := checkInfo(t, c, thin); !info.InactiveTable {
			t.Fatalf("no inactive table: %+v", info)
		}
		if err := c.ClearInactive(thin); err != nil {
			t.Fatal(err)
		}
		if info := checkInfo(t, c, thin); info.InactiveTable || !info.LiveTable {
			t.Fatalf("%+v", info)
		}
	})
	t.Run("Message", func(t *testing.T) {
		before := poolStatus(t, c, pool)
		for _, msg := range []string{"create_thin 1", "create_snap 1 0", "delete 0", "set_transaction_id 0 1"} {
			if _, err := c.Message(pool, 0, msg); !errors.Is(err, ErrRefused) {
				t.Fatalf("%q: %v", msg, err)
			}
		}
		if after := poolStatus(t, c, pool); after.TransactionID != before.TransactionID {
			t.Fatalf("transaction id %d -> %d", before.TransactionID, after.TransactionID)
		}
		// Had "create_thin 1" reached the pool, creating device 1 again would fail.
		vmfixture.Sh(t, "dmsetup", "message", pool, "0", "create_thin 1")
		vmfixture.Sh(t, "dmsetup", "message", pool, "0", "delete 1")
		// Device 0 is still there: it still maps what was written.
		if st, err := c.Status(thin); err != nil || !strings.HasPrefix(st[0].Params, "2048 ") {
			t.Fatalf("thin status %+v %v", st, err)
		}

		// The allowed pair does reach the kernel.
		if ans, err := c.Message(pool, 0, "reserve_metadata_snap"); err != nil || ans != "" {
			t.Fatalf("reserve: %q %v", ans, err)
		}
		held := poolStatus(t, c, pool).HeldMetadataRoot
		if _, err := c.Message(pool, 0, "release_metadata_snap"); err != nil {
			t.Fatal(err)
		}
		if held == "-" || poolStatus(t, c, pool).HeldMetadataRoot != "-" {
			t.Fatalf("held root %q while reserved", held)
		}
		if _, err := c.Message(pool, 0, "release_metadata_snap"); err == nil || !strings.HasPrefix(err.Error(), "dm: message "+pool+": ") {
			t.Fatalf("second release: %v", err)
		}
	})
	t.Run("WaitEvent", func(t *testing.T) {
		w, err := Open()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		last := checkInfo(t, c, pool).EventNr

		start := time.Now()
		info, err := w.WaitEvent(pool, last, 500*time.Millisecond)
		if d := time.Since(start); err != nil || info.EventNr != last || d < 450*time.Millisecond || d > 5*time.Second {
			t.Fatalf("quiet wait: %+v %v after %v", info, err, d)
		}

		type result struct {
			info Info
			err  error
			at   time.Time
		}
		done := make(chan result, 1)
		go func() {
			info, err := w.WaitEvent(pool, last, time.Minute)
			done <- result{info, err, time.Now()}
		}()
		time.Sleep(300 * time.Millisecond) // let it arm and poll
		// An unrelated dm event (another device comes and goes) must not end the wait.
		if _, err := c.Create(bare, ""); err != nil {
			t.Fatal(err)
		}
		removeAtCleanup(t, c, bare)
		if err := c.Remove(bare, false); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			t.Fatalf("woke without a pool event: %+v %v", r.info, r.err)
		case <-time.After(300 * time.Millisecond):
		}
		// A pool event: the pool's low water mark (32768 blocks) is above its size, so the
		// first allocation after a resume, which re-arms the mark, raises one. The reload and
		// resume alone raise none on 6.1.
		trigger := time.Now()
		if err := c.Load(pool, []Target{{0, poolSectors, "thin-pool", poolTable.String()}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Resume(pool); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			t.Logf("the reload and resume alone woke the waiter: event %d -> %d", last, r.info.EventNr)
			done <- r
		case <-time.After(300 * time.Millisecond):
			t.Logf("no event from the reload and resume")
		}
		writeThin(t, thin, 512<<20)
		select {
		case r := <-done:
			if r.err != nil || r.info.EventNr == last {
				t.Fatalf("%+v %v", r.info, r.err)
			}
			t.Logf("event %d -> %d seen %v after the trigger", last, r.info.EventNr, r.at.Sub(trigger))
			checkInfo(t, c, pool)
		case <-time.After(30 * time.Second):
			info, _ := c.Info(pool)
			t.Fatalf("no wake-up 30s after the trigger; pool now %+v", info)
		}

		// Close ends a wait at once.
		w2, err := Open()
		if err != nil {
			t.Fatal(err)
		}
		last = checkInfo(t, c, pool).EventNr
		go func() {
			info, err := w2.WaitEvent(pool, last, time.Minute)
			done <- result{info, err, time.Now()}
		}()
		time.Sleep(300 * time.Millisecond)
		closed := time.Now()
		w2.Close()
		select {
		case r := <-done:
			if !errors.Is(r.err, os.ErrClosed) {
				t.Fatalf("after Close: %+v %v", r.info, r.err)
			}
			t.Logf("Close ended the wait in %v: %v", r.at.Sub(closed), r.err)
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not end the wait")
		}
	})
	t.Run("WaitEventByTimer", func(t *testing.T) {
		// The path of kernels without DM_DEV_ARM_POLL (before 4.13), forced on this one.
		w, err := Open()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if w.EventsByTimer() {
			t.Fatal("this kernel's device-mapper is put on the timer")
		}
		w.byTimer.Store(true)
		last := checkInfo(t, c, pool).EventNr
		start := time.Now()
		info, err := w.WaitEvent(pool, last, 500*time.Millisecond)
		if d := time.Since(start); err != nil || info.EventNr != last || d < 450*time.Millisecond || d > 5*time.Second {
			t.Fatalf("wait on the timer: %+v %v after %v", info, err, d)
		}
		done := make(chan error, 1)
		go func() {
			_, err := w.WaitEvent(pool, last, time.Minute)
			done <- err
		}()
		time.Sleep(300 * time.Millisecond)
		closed := time.Now()
		w.Close()
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrClosed) {
				t.Fatalf("after Close: %v", err)
			}
			t.Logf("on the timer: a quiet wait of 500ms, and Close ended a wait in %v", time.Since(closed))
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not end a wait on the timer")
		}
	})
	t.Run("EnsureNodeFallback", func(t *testing.T) {
		// A device without a table gets no udev link: EnsureNode makes the node, replacing a
		// stale node of another device, and Remove takes it away again.
		dev, err := c.Create(bare, "")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("/dev/mapper", bare)
		if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 250))); err != nil {
			t.Fatal(err)
		}
		if err := EnsureNode(bare, dev, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != unix.S_IFBLK|0o600 || decodeDev(st.Rdev) != dev {
			t.Fatalf("mode %o dev %v", st.Mode, decodeDev(st.Rdev))
		}
		if tb, err := c.Table(bare); err != nil || len(tb) != 0 {
			t.Fatalf("table of a bare device: %+v %v", tb, err)
		}
		if err := c.Remove(bare, false); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Fatalf("node left behind: %v", err)
		}
		if _, err := c.Info(bare); !errors.Is(err, ErrNotFound) {
			t.Fatalf("still there: %v", err)
		}
	})
	t.Run("Remove", func(t *testing.T) {
		vmfixture.Settle()
		f, err := os.Open(filepath.Join("/dev/mapper", thin))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := c.Remove(thin, false); !errors.Is(err, unix.EBUSY) || !strings.HasPrefix(err.Error(), "dm: remove "+thin+": ") {
			t.Fatalf("remove of an open device: %v", err)
		}
		if err := c.Remove(thin, true); err != nil {
			t.Fatal(err)
		}
		if info := checkInfo(t, c, thin); !info.DeferredRemove {
			t.Fatalf("no deferred removal: %+v", info)
		}
		// Taken back, and asked for again.
		if err := c.CancelDeferredRemove(thin); err != nil {
			t.Fatal(err)
		}
		if info := checkInfo(t, c, thin); info.DeferredRemove || info.OpenCount != 1 {
			t.Fatalf("after CancelDeferredRemove: %+v", info)
		}
		if err := c.Remove(thin, true); err != nil {
			t.Fatal(err)
		}
		f.Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := c.Info(thin)
			if errors.Is(err, ErrNotFound) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("deferred removal did not happen: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		vmfixture.Settle()
		if _, err := os.Lstat(filepath.Join("/dev/mapper", thin)); !os.IsNotExist(err) {
			t.Errorf("/dev/mapper/%s left behind: %v", thin, err)
		}

		vmfixture.Sh(t, "dmsetup", "message", pool, "0", "delete 0")
		removeBusy(t, c, pool)
		if _, err := os.Lstat(filepath.Join("/dev/mapper", pool)); !os.IsNotExist(err) {
			vmfixture.Settle()
			if _, err := os.Lstat(filepath.Join("/dev/mapper", pool)); !os.IsNotExist(err) {
				t.Errorf("/dev/mapper/%s left behind: %v", pool, err)
			}
		}
	})
}

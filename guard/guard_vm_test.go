//go:build vmtest

package guard

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/internal/vmfixture"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/thin"
)

// chanObs hands extensions to the test.
type chanObs struct{ ext chan Extension }

func (chanObs) Read(Usage)             {}
func (chanObs) Event(time.Time)        {}
func (o chanObs) Extended(e Extension) { o.ext <- e }
func (chanObs) Blocked(bool)           {}

// rawWriter writes 1 MiB blocks with O_DIRECT, sequentially, to a thin device, so each write
// allocates fresh pool blocks: the pool's use is the start plus what was written.
type rawWriter struct {
	once    sync.Once
	err     error
	mu      sync.Mutex
	done    []write
	stop    chan struct{}
	stopped chan error
}

type write struct {
	end     time.Time
	total   int64 // bytes written when this write completed
	latency time.Duration
}

// startRawWriter writes until Stop, or until limit bytes (0: no limit).
func startRawWriter(t testing.TB, dev string, limit int64) *rawWriter {
	f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE) // page-aligned for O_DIRECT
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = byte(i)
	}
	w := &rawWriter{stop: make(chan struct{}), stopped: make(chan error, 1)}
	go func() {
		defer f.Close()
		var total int64
		for {
			select {
			case <-w.stop:
				w.stopped <- nil
				return
			default:
			}
			if limit > 0 && total >= limit {
				<-w.stop
				w.stopped <- nil
				return
			}
			start := time.Now()
			if _, err := f.WriteAt(buf, total); err != nil {
				w.stopped <- err
				return
			}
			total += int64(len(buf))
			end := time.Now()
			w.mu.Lock()
			w.done = append(w.done, write{end, total, end.Sub(start)})
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.Stop() })
	return w
}

// Stop stops the writer and returns its error; a second call returns the same.
func (w *rawWriter) Stop() error {
	w.once.Do(func() {
		close(w.stop)
		w.err = <-w.stopped
	})
	return w.err
}

// crossed is when the write that took the bytes written to at least n completed.
func (w *rawWriter) crossed(n int64) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := sort.Search(len(w.done), func(i int) bool { return w.done[i].total >= n })
	if i == len(w.done) {
		return time.Time{}, false
	}
	return w.done[i].end, true
}

// totalAt is the bytes written by writes completed at t.
func (w *rawWriter) totalAt(t time.Time) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := sort.Search(len(w.done), func(i int) bool { return w.done[i].end.After(t) })
	if i == 0 {
		return 0
	}
	return w.done[i-1].total
}

// worst is the longest write that completed in [from, to].
func (w *rawWriter) worst(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var m time.Duration
	for _, d := range w.done {
		if !d.end.Before(from) && !d.end.After(to) {
			m = max(m, d.latency)
		}
	}
	return m
}

func (w *rawWriter) median() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := make([]time.Duration, len(w.done))
	for i, d := range w.done {
		l[i] = d.latency
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	if len(l) == 0 {
		return 0
	}
	return l[len(l)/2]
}

// guardedPool is a loop-backed pool with a thin device and a running guard.
func guardedPool(t testing.TB, dataSize, metaSize int64, pol Policy) (*vmfixture.Pool, string, chan Extension) {
	p := vmfixture.NewPool(t, "guard", dataSize, metaSize)
	dev := "/dev/mapper/" + p.Thin(t, "t1", 64<<30)
	waitCtl, err := dm.Open()
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := dm.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	obs := chanObs{ext: make(chan Extension, 100)}
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	if os.Getenv("DMSIZE_GUARD_DEBUG") != "" {
		log.SetLevel(logrus.DebugLevel)
	}
	g := &Guard{Pool: p.Name, Ctl: waitCtl, Ext: &loopExtender{c: ctl, pool: p.Name, data: p.DataFile, meta: p.MetaFile, minFree: pol.MinHostFree}, Policy: pol, Log: log, Obs: obs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return p, dev, obs.ext
}

func poolNow(t testing.TB, name string) thin.Pool {
	ctl, err := dm.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	p, err := thin.ReadPool(ctl, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The guard keeps a pool that a writer fills at full speed from ever refusing a write, in
// steps, with every extension verified live; and it stops at the cap, saying so.
func TestGuardKeepsWriterGoing(t *testing.T) {
	pol := DefaultPolicy()
	pol.Step = Step{Bytes: 256 << 20}
	pol.MinHostFree = 0
	pol.MaxData = 2 << 30
	p, dev, ext := guardedPool(t, 1<<30, 16<<20, pol)
	base, _ := poolNow(t, p.Name).DataBytes()
	// Up to 90 % of the cap: past the threshold there, short of full (a full pool holds writes
	// in the kernel for no_space_timeout).
	w := startRawWriter(t, dev, (2<<30)*9/10-base)
	var steps []Extension
	for len(steps) < 4 {
		select {
		case e := <-ext:
			if e.Err != nil {
				t.Fatalf("extension failed: %v", e.Err)
			}
			steps = append(steps, e)
		case <-time.After(2 * time.Minute):
			t.Fatalf("only %d extensions in 2 minutes", len(steps))
		}
	}
	for _, e := range steps {
		t.Logf("%s %d -> %d MiB: seen to live %v, stall %v", e.Part, e.From>>20, e.To>>20, e.Live.Sub(e.Seen), e.Stall)
	}
	if got := poolNow(t, p.Name); func() int64 { _, d := got.DataBytes(); return d }() != 2<<30 {
		t.Fatalf("pool data after 4 steps of 256 MiB from 1 GiB: %+v", got)
	}
	// At the cap, the guard extends no more.
	select {
	case e := <-ext:
		t.Fatalf("extended past the cap: %+v", e)
	case <-time.After(5 * time.Second):
	}
	if err := w.Stop(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	if used, _ := poolNow(t, p.Name).DataBytes(); used < (2<<30)*8/10 {
		t.Fatalf("the writer took the pool only to %d bytes; the cap was not tested", used)
	}
	// The data file grew exactly as the pool did, never beyond.
	if fi, err := os.Stat(p.DataFile); err != nil || fi.Size() != 2<<30 {
		t.Fatalf("data file: %v %v", fi.Size(), err)
	}
}

// BenchmarkGuardReaction: a writer fills a loop-backed pool at full speed with 1 MiB O_DIRECT
// writes; each op is one extension by the running guard (threshold 80 %, 256 MiB steps).
// Reported per extension: live-vs-threshold-ms, from the write that took the pool over the
// threshold to the read that saw the new size live (negative: live before the writer got
// there, which the guard aims for); seen-vs-threshold-ms, the same for the read that decided
// to extend; free-at-live-%, how much of the old size was still free
// then; full-before-live, extensions that came after the pool had filled; stall-ms, the
// longest write between the guard's decision and the new size going live, against the
// writer's median write (write-ms).
func BenchmarkGuardReaction(b *testing.B) {
	pol := DefaultPolicy()
	pol.Step = Step{Bytes: 256 << 20}
	pol.MinHostFree = 0
	const start = 1 << 30
	p, dev, ext := guardedPool(b, start, 64<<20, pol)
	base, _ := poolNow(b, p.Name).DataBytes()
	w := startRawWriter(b, dev, 0)
	var exts []Extension
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		select {
		case e := <-ext:
			if e.Err != nil {
				b.Fatal(e.Err)
			}
			exts = append(exts, e)
		case <-time.After(2 * time.Minute):
			b.Fatalf("no extension in 2 minutes (op %d)", i)
		}
	}
	b.StopTimer()
	last := exts[len(exts)-1]
	deadline := time.Now().Add(time.Minute)
	for _, ok := w.crossed(int64(pol.Threshold*float64(last.From)) - base); !ok && time.Now().Before(deadline); _, ok = w.crossed(int64(pol.Threshold*float64(last.From)) - base) {
		time.Sleep(50 * time.Millisecond) // the last threshold may still be ahead of the writer
	}
	if err := w.Stop(); err != nil {
		b.Fatalf("writer: %v", err)
	}
	var lead, seenLead, stall time.Duration
	var free float64
	full := 0
	for _, e := range exts {
		cross, ok := w.crossed(int64(pol.Threshold*float64(e.From)) - base)
		if !ok {
			b.Fatalf("the writer never reached the threshold of %d bytes", e.From)
		}
		lead += e.Live.Sub(cross)
		seenLead += e.Seen.Sub(cross)
		used := base + w.totalAt(e.Live)
		free += 100 * float64(e.From-used) / float64(e.From)
		if used >= e.From {
			full++
		}
		stall += w.worst(e.Seen, e.Live.Add(50*time.Millisecond))
	}
	n := float64(len(exts))
	b.ReportMetric(float64(lead.Microseconds())/1000/n, "live-vs-threshold-ms")
	b.ReportMetric(float64(seenLead.Microseconds())/1000/n, "seen-vs-threshold-ms")
	b.ReportMetric(free/n, "free-at-live-%")
	b.ReportMetric(float64(full), "full-before-live")
	b.ReportMetric(float64(stall.Microseconds())/1000/n, "stall-ms")
	b.ReportMetric(float64(w.median().Microseconds())/1000, "write-ms")
}

// BenchmarkPoolExtend: one 256 MiB extension of a busy loop-backed pool, by the guard's
// extender (dmsize) and by the shell recipe (truncate, losetup -c, dmsetup table | sed | load,
// resume). stall-ms is the longest 1 MiB write during the extension.
func BenchmarkPoolExtend(b *testing.B) {
	for _, how := range []string{"dmsize", "shell"} {
		b.Run(how, func(b *testing.B) {
			pol := DefaultPolicy()
			pol.Extend = false    // the guard only watches; the benchmark extends
			const start = 4 << 30 // room for the writer while the ops run
			p, dev, _ := guardedPool(b, start, 64<<20, pol)
			ctl, err := dm.Open()
			if err != nil {
				b.Fatal(err)
			}
			defer ctl.Close()
			ext := &loopExtender{c: ctl, pool: p.Name, data: p.DataFile, meta: p.MetaFile}
			w := startRawWriter(b, dev, start/2)
			var stall time.Duration
			size := int64(start)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				size += 256 << 20
				t0 := time.Now()
				switch how {
				case "dmsize":
					pool, err := thin.ReadPool(ctl, p.Name)
					if err != nil {
						b.Fatal(err)
					}
					_, meta := pool.MetaBytes()
					if _, err := ext.Extend(pool, size, meta); err != nil {
						b.Fatal(err)
					}
				case "shell":
					script := fmt.Sprintf(`set -e
truncate -s %[2]d %[3]s
losetup -c %[4]s
dmsetup table %[1]s | sed "s/^0 [0-9]* thin-pool/0 %[5]d thin-pool/" | dmsetup load %[1]s
dmsetup resume %[1]s`, p.Name, size, p.DataFile, p.DataLoop, size/512)
					if out, err := exec.Command("bash", "-c", script).CombinedOutput(); err != nil {
						b.Fatalf("shell recipe: %v\n%s", err, out)
					}
				}
				stall += w.worst(t0, time.Now().Add(50*time.Millisecond))
			}
			b.StopTimer()
			time.Sleep(60 * time.Millisecond)
			if err := w.Stop(); err != nil {
				b.Fatalf("writer: %v", err)
			}
			if _, d := poolNow(b, p.Name).DataBytes(); d != size {
				b.Fatalf("pool data %d, want %d", d, size)
			}
			b.ReportMetric(float64(stall.Microseconds())/1000/float64(b.N), "stall-ms/op")
		})
	}
}

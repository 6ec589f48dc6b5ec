//go:build vmtest

package snapshotter

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsize/dmsize/integration/harness"
)

const ctrdPool = "dmsize-ctrd-pool"

// poolData is the snapshotter pool's data size and use, in bytes, from the kernel.
func poolData(t *testing.T) (used, total int64) {
	t.Helper()
	// 0 <len> thin-pool <tid> <meta used>/<meta total> <data used>/<data total> ...
	f := strings.Fields(harness.MustRun(t, "dmsetup", "status", ctrdPool))
	table := strings.Fields(harness.MustRun(t, "dmsetup", "table", ctrdPool))
	if len(f) < 6 || len(table) < 6 {
		t.Fatalf("pool status %q, table %q", f, table)
	}
	block, _ := strconv.ParseInt(table[5], 10, 64) // data block size, sectors
	ut := strings.Split(f[5], "/")
	u, _ := strconv.ParseInt(ut[0], 10, 64)
	n, _ := strconv.ParseInt(ut[1], 10, 64)
	return u * block * 512, n * block * 512
}

// metricSum adds up every sample of a metric whose name and labels contain all of parts; 0,
// logged, while the plugin cannot answer.
func metricSum(t *testing.T, parts ...string) float64 {
	t.Helper()
	m, err := harness.Metrics()
	if err != nil {
		t.Logf("metrics: %v", err)
		return 0
	}
	var sum float64
next:
	for k, v := range m {
		for _, p := range parts {
			if !strings.Contains(k, p) {
				continue next
			}
		}
		sum += v
	}
	return sum
}

// fillGuarded writes 1 GiB into the 512 MiB snapshotter pool on loop files of e: it completes,
// the guard extends containerd's pool online, as it does loop-lvm's, and its metrics carry the
// pool's name.
func fillGuarded(t *testing.T, e *harness.Engine) {
	t.Helper()
	_, before := poolData(t)
	e.WaitFor("the guard's first metrics", 60*time.Second, func() bool {
		return metricSum(t, "dmsize_pool_data_size_bytes", `pool="`+ctrdPool+`"`) > 0
	})
	start := time.Now()
	out, err := e.TryDocker("run", "--name", "fill", "--network", "none", "busybox",
		"dd", "if=/dev/zero", "of=/big", "bs=1M", "count=1024", "conv=fsync")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("dd of 1 GiB into a 512 MiB pool: %v after %v\n%s", err, took, out)
	}
	used, after := poolData(t)
	ok := metricSum(t, "dmsize_pool_extensions_total", `part="data"`, `pool="`+ctrdPool+`"`, `result="ok"`)
	t.Logf("wrote 1 GiB in %v; pool data %.2f -> %.2f GiB in %v extensions; %.2f GiB used", took.Round(time.Millisecond),
		float64(before)/float64(G), float64(after)/float64(G), ok, float64(used)/float64(G))
	if after < 1*G || used < 1*G {
		t.Fatalf("pool data %d bytes (%d used) after writing 1 GiB into a 512 MiB pool", after, used)
	}
	if ok < 1 {
		t.Fatalf("%v data extensions", ok)
	}
	if failed := metricSum(t, "dmsize_pool_extensions_total", `pool="`+ctrdPool+`"`, `result="failed"`); failed != 0 {
		t.Fatalf("%v failed extensions", failed)
	}
	var lines []string
	for _, l := range strings.Split(e.DaemonLog(), "\n") {
		if strings.Contains(l, "pool guard") {
			lines = append(lines, l)
		}
	}
	t.Logf("the guard's log lines:\n%s", strings.Join(lines, "\n"))
	e.Docker("rm", "fill")
}

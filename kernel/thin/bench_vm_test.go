//go:build vmtest

package thin

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/dmsize/dmsize/internal/vmfixture"
	"github.com/dmsize/dmsize/kernel/fs"
)

// BenchmarkGrowMounted grows a mounted, busy thin device and its filesystem by 256 MiB per
// operation, through this package and fs (dmsize), and through the shell recipe of the old
// write-ups (shell): `dmsetup table | sed | dmsetup load`, `dmsetup resume`, then resize2fs or
// xfs_growfs. A writer does 64 KiB write+fsync in a loop throughout; stall-ms is the longest
// such write during an operation: the I/O stall a container would see.
func BenchmarkGrowMounted(b *testing.B) {
	for _, fstype := range []string{"ext4", "xfs"} {
		for _, how := range []string{"dmsize", "shell"} {
			b.Run(how+"/"+fstype, func(b *testing.B) { benchGrow(b, how, fstype) })
		}
	}
}

func benchGrow(b *testing.B, how, fstype string) {
	c := control(b)
	p := vmfixture.NewPool(b, "bench", 8*GiB, 64*MiB)
	name := p.Thin(b, "c1", 1*GiB)
	dev := "/dev/mapper/" + name
	vmfixture.Mkfs(b, fstype, dev)
	dir := vmfixture.Mount(b, fstype, dev)
	w := vmfixture.StartWriter(b, dir, vmfixture.WriterOpts{Chunk: 64 << 10})
	pool := poolDev(b, p)
	cur := 1 * GiB
	var stall, resume time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cur += 256 * MiB
		w.ResetMaxGap()
		switch how {
		case "dmsize":
			g, err := GrowDevice(c, name, pool, cur)
			if err != nil {
				b.Fatal(err)
			}
			resume += g.Stall
			if _, err := fs.Grow(dev, cur); err != nil {
				b.Fatal(err)
			}
		case "shell":
			grow := "resize2fs -f " + dev
			if fstype == "xfs" {
				grow = "xfs_growfs " + dir
			}
			script := fmt.Sprintf(`set -e
dmsetup table %[1]s | sed "s/^0 [0-9]* thin/0 %[2]d thin/" | dmsetup load %[1]s
dmsetup resume %[1]s
%[3]s >/dev/null 2>&1`, name, cur/512, grow)
			if out, err := exec.Command("bash", "-c", script).CombinedOutput(); err != nil {
				b.Fatalf("shell recipe: %v\n%s", err, out)
			}
		}
		stall += w.Gap()
	}
	b.StopTimer()
	b.ReportMetric(float64(stall.Microseconds())/1000/float64(b.N), "stall-ms/op")
	if how == "dmsize" {
		b.ReportMetric(float64(resume.Microseconds())/1000/float64(b.N), "resume-ms/op")
	}
	if err := w.Stop(); err != nil {
		b.Fatalf("writer: %v", err)
	}
	// statfs, not the on-disk superblock: a mounted xfs writes its superblock back lazily.
	if got := vmfixture.StatfsSize(b, dir); got > cur || got < cur*9/10 {
		b.Fatalf("filesystem is %d bytes after growing to %d", got, cur)
	}
}

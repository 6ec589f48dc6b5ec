//go:build vmtest

package thin

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/internal/vmfixture"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/kernel/fs"
)

const (
	MiB = int64(1) << 20
	GiB = int64(1) << 30
)

func control(t testing.TB) *dm.Control {
	t.Helper()
	c, err := dm.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func poolDev(t testing.TB, p *vmfixture.Pool) dm.Dev {
	t.Helper()
	d, err := dm.ParseDev(p.Dev)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A mounted thin device and its filesystem grow online while a writer keeps writing and
// fsyncing: no write fails, and every byte reads back as written.
func TestGrowMountedWhileWriting(t *testing.T) {
	for _, fstype := range []string{"ext4", "xfs"} {
		t.Run(fstype, func(t *testing.T) {
			c := control(t)
			p := vmfixture.NewPool(t, "grow-"+fstype, 4*GiB, 64*MiB)
			name := p.Thin(t, "c1", 1*GiB)
			dev := "/dev/mapper/" + name
			vmfixture.Mkfs(t, fstype, dev)
			dir := vmfixture.Mount(t, fstype, dev)
			w := vmfixture.StartWriter(t, dir, vmfixture.WriterOpts{Chunk: 256 << 10})
			w.WaitWritten(t, 32*MiB)
			before := vmfixture.StatfsSize(t, dir)

			g, err := GrowDevice(c, name, poolDev(t, p), 3*GiB)
			if err != nil {
				t.Fatal(err)
			}
			if g.Before != 1*GiB || g.After != 3*GiB {
				t.Fatalf("grown %+v, want 1 GiB -> 3 GiB", g)
			}
			r, err := fs.Grow(dev, 3*GiB)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Mounted || r.After <= r.Before || r.After > 3*GiB || r.After < 3*GiB-64*MiB {
				t.Fatalf("filesystem grow %+v, want mounted, about 3 GiB", r)
			}
			after := vmfixture.StatfsSize(t, dir)
			t.Logf("%s: device stall %v, fs grow %v, statfs %d -> %d MiB", fstype, g.Stall, r.Duration, before>>20, after>>20)
			if after < before+(3*GiB-1*GiB)*9/10 {
				t.Fatalf("statfs size %d -> %d: filesystem did not grow", before, after)
			}
			w.WaitWritten(t, 64*MiB)
			w.Verify(t)
			if info := mustInfo(t, c, name); info.Suspended {
				t.Fatal("device left suspended")
			}
		})
	}
}

func mustInfo(t testing.TB, c *dm.Control, name string) dm.Info {
	t.Helper()
	i, err := c.Info(name)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// Shrinking is refused at both layers with the sizes in the error, and nothing changes.
func TestRefuseShrink(t *testing.T) {
	c := control(t)
	p := vmfixture.NewPool(t, "shrink", 2*GiB, 32*MiB)
	name := p.Thin(t, "c1", 2*GiB)
	dev := "/dev/mapper/" + name
	vmfixture.Mkfs(t, "ext4", dev)
	tableBefore := vmfixture.Sh(t, "dmsetup", "table", name)

	_, err := GrowDevice(c, name, poolDev(t, p), 1*GiB)
	var se *errs.Refusal
	if !errors.As(err, &se) || se.Current != 2*GiB || se.Requested != 1*GiB {
		t.Fatalf("GrowDevice to 1 GiB: %v, want a shrink Refusal 2 GiB -> 1 GiB", err)
	}
	if !strings.Contains(err.Error(), name) {
		t.Fatalf("error %q does not name the device", err)
	}
	if got := vmfixture.Sh(t, "dmsetup", "table", name); got != tableBefore {
		t.Fatalf("table changed: %q -> %q", tableBefore, got)
	}
	_, err = fs.Grow(dev, 1*GiB)
	if !errors.As(err, &se) {
		t.Fatalf("fs.Grow to 1 GiB: %v, want a shrink Refusal", err)
	}
	// Growing to the current size is a no-op, not an error.
	if g, err := GrowDevice(c, name, poolDev(t, p), 2*GiB); err != nil || g.After != 2*GiB || g.Stall != 0 {
		t.Fatalf("GrowDevice to the current size: %+v, %v", g, err)
	}
}

// Only thin devices of the expected pool are touched.
func TestRefuseForeignDevices(t *testing.T) {
	c := control(t)
	p := vmfixture.NewPool(t, "mine", 1*GiB, 16*MiB)
	other := vmfixture.NewPool(t, "other", 1*GiB, 16*MiB)
	foreign := other.Thin(t, "x", 512*MiB)
	if _, err := GrowDevice(c, foreign, poolDev(t, p), 1*GiB); err == nil || !strings.Contains(err.Error(), "not of the engine's pool") {
		t.Fatalf("growing a thin device of another pool: %v", err)
	}
	// A linear device over the pool's own data loop.
	lin := "dmsize-test-linear"
	vmfixture.Sh(t, "dmsetup", "create", lin, "--table", fmt.Sprintf("0 2048 linear %s 0", p.DataLoop))
	t.Cleanup(func() { vmfixture.Sh(t, "dmsetup", "remove", "--retry", lin) })
	if _, err := GrowDevice(c, lin, dm.Dev{}, 1*GiB); err == nil || !strings.Contains(err.Error(), "not a thin device") {
		t.Fatalf("growing a linear device: %v", err)
	}
	if _, err := GrowDevice(c, "dmsize-test-absent", poolDev(t, p), 1*GiB); !errors.Is(err, dm.ErrNotFound) {
		t.Fatalf("growing a device that does not exist: %v", err)
	}
}

// The pool's data and metadata devices grow online under a writing thin device; the pool's
// transaction id and every other table parameter are untouched.
func TestGrowLoopPoolOnline(t *testing.T) {
	c := control(t)
	p := vmfixture.NewPool(t, "poolgrow", 1*GiB, 16*MiB)
	name := p.Thin(t, "c1", 4*GiB)
	vmfixture.Mkfs(t, "xfs", "/dev/mapper/"+name)
	dir := vmfixture.Mount(t, "xfs", "/dev/mapper/"+name)
	w := vmfixture.StartWriter(t, dir, vmfixture.WriterOpts{Chunk: 256 << 10})

	before, err := ReadPool(c, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := GrowLoopPool(c, p.Name, p.DataFile, 2*GiB, p.MetaFile, 32*MiB)
	if err != nil {
		t.Fatal(err)
	}
	after := r.After
	t.Logf("pool %s: data %d -> %d blocks, metadata %d -> %d blocks, stall %v",
		p.Name, before.Status.TotalDataBlocks, after.Status.TotalDataBlocks, before.Status.TotalMetaBlocks, after.Status.TotalMetaBlocks, r.Stall)
	if _, total := after.DataBytes(); total != 2*GiB {
		t.Fatalf("pool data total %d, want 2 GiB", total)
	}
	if _, total := after.MetaBytes(); total < 31*MiB {
		t.Fatalf("pool metadata total %d, want about 32 MiB", total)
	}
	if after.Status.TransactionID != before.Status.TransactionID {
		t.Fatalf("transaction id %d -> %d", before.Status.TransactionID, after.Status.TransactionID)
	}
	if after.Table.String() != before.Table.String() {
		t.Fatalf("pool parameters changed: %q -> %q", before.Table, after.Table)
	}
	// Repeating is a no-op: same sizes, nothing refused.
	if _, err := GrowLoopPool(c, p.Name, p.DataFile, 2*GiB, p.MetaFile, 32*MiB); err != nil {
		t.Fatalf("repeating the grow: %v", err)
	}
	// Shrinking is refused before anything is touched.
	var se *errs.Refusal
	if _, err := GrowLoopPool(c, p.Name, p.DataFile, 1*GiB, "", 0); !errors.As(err, &se) {
		t.Fatalf("shrinking the pool: %v", err)
	}
	if st, _ := os.Stat(p.DataFile); st.Size() != 2*GiB {
		t.Fatalf("data file is %d bytes after a refused shrink", st.Size())
	}
	w.WaitWritten(t, 32*MiB)
	w.Verify(t)
}

// Status parsing against the live pool agrees with dmsetup and moves with writes.
func TestPoolStatusLive(t *testing.T) {
	c := control(t)
	p := vmfixture.NewPool(t, "status", 2*GiB, 32*MiB)
	name := p.Thin(t, "c1", 1*GiB)
	st0, err := ReadPool(c, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(vmfixture.Sh(t, "dmsetup", "status", p.Name))
	// 0 LEN thin-pool TID META DATA HELD MODE ...
	if want := fmt.Sprintf("%d", st0.Status.TransactionID); f[3] != want {
		t.Fatalf("transaction id %s (dmsetup) vs %s (ours)", f[3], want)
	}
	if want := fmt.Sprintf("%d/%d", st0.Status.UsedDataBlocks, st0.Status.TotalDataBlocks); f[5] != want {
		t.Fatalf("data blocks %s (dmsetup) vs %s (ours)", f[5], want)
	}
	if st0.Status.Mode != "rw" || st0.Table.DataBlockSectors != 128 || st0.Table.LowWaterBlocks != 32768 {
		t.Fatalf("unexpected pool: %+v", st0)
	}
	vmfixture.Sh(t, "dd", "if=/dev/urandom", "of=/dev/mapper/"+name, "bs=1M", "count=64", "oflag=direct", "status=none")
	st1, err := ReadPool(c, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	used0, _ := st0.DataBytes()
	used1, _ := st1.DataBytes()
	if used1-used0 != 64*MiB {
		t.Fatalf("64 MiB written, pool data use grew by %d", used1-used0)
	}
}

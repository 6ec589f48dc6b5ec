package guard

import (
	"fmt"
	"strings"
	"time"

	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/kernel/lvm"
	"github.com/dmsize/dmsize/kernel/thin"
)

// Extender grows what backs one kind of pool.
type Extender interface {
	// Kind is "loop-lvm", "direct-lvm" or "block".
	Kind() string
	// Room is how many bytes the pool may still take from what backs it under the policy,
	// and what limits that, in words with the numbers.
	Room() (int64, string, error)
	// Extend makes the pool's data and metadata data and meta bytes (a size equal to the
	// current one leaves that part alone) and has the kernel take them in. It returns how long
	// the pool's I/O was held where that is known. Repeating it is safe.
	Extend(p thin.Pool, data, meta int64) (time.Duration, error)
}

// NewExtender picks the extender for the engine's pool: the loop files the engine reports, an
// LVM thin pool (its device-mapper UUID starts with "LVM-") grown by lvm (nil: this plugin may
// not run the host's lvm), or else a plain block device that nothing can grow.
func NewExtender(c thin.Mapper, st engine.Storage, policy Policy, run lvm.Runner) (Extender, error) {
	if st.DataLoopFile != "" {
		return &loopExtender{c: c, pool: st.PoolName, data: st.DataLoopFile, meta: st.MetaLoopFile, minFree: policy.MinHostFree}, nil
	}
	info, err := c.Info(st.PoolName)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(info.UUID, "LVM-") {
		vg, lv, ok := lvm.Split(st.PoolName)
		if !ok {
			return nil, fmt.Errorf("guard: pool %s has an LVM UUID but its name does not split into volume group and logical volume", st.PoolName)
		}
		if run == nil {
			return fixedExtender{kind: "direct-lvm", why: fmt.Sprintf("pool %s is an LVM thin pool: extending it runs the host's lvm, which only the lvm flavor of the plugin may (docker plugin install REGISTRY/dmsize-lvm:VERSION)", st.PoolName)}, nil
		}
		return &lvmExtender{run: run, vg: vg, lv: lv}, nil
	}
	p, err := thin.ReadPool(c, st.PoolName)
	if err != nil {
		return nil, err
	}
	return blockExtender(p.Table.DataDev), nil
}

// blockExtender is a pool on a device dmsize cannot grow (dm.thinpooldev on a partition or a
// device not managed by LVM): the guard can only warn.
func blockExtender(dev string) Extender {
	return fixedExtender{kind: "block", why: fmt.Sprintf("the pool's data device %s is neither a loop file nor an LVM volume; dmsize cannot grow it (extend the device and reload the pool by hand, or move to direct-lvm)", dev)}
}

// fixedExtender is a pool this plugin cannot grow: the guard watches it and says why.
type fixedExtender struct{ kind, why string }

func (f fixedExtender) Kind() string { return f.kind }

func (f fixedExtender) Room() (int64, string, error) { return 0, f.why, nil }

func (f fixedExtender) Extend(thin.Pool, int64, int64) (time.Duration, error) {
	return 0, fmt.Errorf("guard: %s", f.why)
}

// fixed says why ext cannot grow its pool, when it cannot.
func fixed(ext Extender) (string, bool) {
	f, ok := ext.(fixedExtender)
	return f.why, ok
}

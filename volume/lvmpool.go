package volume

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/lvm"
	"github.com/dmsize/dmsize/kernel/thin"
	"github.com/dmsize/dmsize/size"
)

// LVMTag marks the thin LVs dmsize made: it removes no LV without it.
const LVMTag = "dmsize-volume"

// LVMPool is an operator's LVM thin pool (VOLUME_POOL=vg/pool): each volume is a thin LV made,
// grown and removed with the host's lvm. LVM owns the pool's device ids and transaction id
// (lvm2 refuses a pool whose kernel transaction id it did not set), so dmsize never sends this
// pool a message, and grows an LV with lvextend, not a table reload LVM would undo at the next
// activation. It is not Transactional: lvm commits each change itself; an interrupted removal
// is settled by whether the LV exists, an interrupted create by whether its record says it
// made the LV (an LV of that name it did not make is never removed).
type LVMPool struct {
	VG, LV string // the pool LV
	run    lvm.Runner
	ctl    thin.Mapper
	// nodeWait is how long Activate leaves udev to make a device node before making it.
	nodeWait time.Duration
}

var (
	_ Pool  = (*LVMPool)(nil)
	_ Sized = (*LVMPool)(nil)
)

// ensureNode is dm.EnsureNode (the unit tests make no node in /dev/mapper).
var ensureNode = dm.EnsureNode

// lvmNameRE is LVM's rule for VG and LV names.
var lvmNameRE = regexp.MustCompile(`^[a-zA-Z0-9+_.][a-zA-Z0-9+_.-]*$`)

// ParseLVMPool splits VOLUME_POOL's "vg/pool".
func ParseLVMPool(s string) (vg, lv string, err error) {
	vg, lv, ok := strings.Cut(s, "/")
	if !ok || !lvmNameRE.MatchString(vg) || !lvmNameRE.MatchString(lv) {
		return "", "", fmt.Errorf("VOLUME_POOL=%q: want an LVM thin pool as VG/LV (e.g. docker/volumes)", s)
	}
	return vg, lv, nil
}

// OpenLVMPool checks that vg/lv is an LVM thin pool that only LVM changes. run runs the host's
// lvm (the lvm flavor of the plugin).
func OpenLVMPool(ctl thin.Mapper, vg, lv string, run lvm.Runner) (*LVMPool, error) {
	p := &LVMPool{VG: vg, LV: lv, run: run, ctl: ctl, nodeWait: 2 * time.Second}
	out, err := run("lvs", "--noheadings", "--separator", ",", "-o", "lv_attr,transaction_id", vg+"/"+lv)
	if err != nil {
		return nil, fmt.Errorf("VOLUME_POOL=%s/%s: %w", vg, lv, err)
	}
	f := strings.Split(strings.TrimSpace(out), ",")
	if len(f) != 2 || !strings.HasPrefix(f[0], "t") {
		return nil, fmt.Errorf("VOLUME_POOL=%s/%s is not an LVM thin pool (lv_attr %q; make one with lvcreate --type thin-pool)", vg, lv, f[0])
	}
	lvmTid, _ := strconv.ParseUint(strings.TrimSpace(f[1]), 10, 64)
	if name, err := p.PoolDevice(); err == nil {
		st, err := thin.ReadPool(ctl, name)
		if err != nil {
			return nil, err
		}
		// lvm2 itself accepts the kernel's id one behind its own while it has messages queued.
		if k := st.Status.TransactionID; k != lvmTid && k+1 != lvmTid {
			return nil, fmt.Errorf("VOLUME_POOL=%s/%s: the pool's transaction id is %d in the kernel and %d in LVM's metadata: something other than LVM (the engine's devicemapper driver, through dm.thinpooldev?) makes devices in it; volumes need a thin pool of their own", vg, lv, k, lvmTid)
		}
	}
	return p, nil
}

func (p *LVMPool) dmName(lv string) string { return lvm.DMName(p.VG, lv) }

// PoolDevice is the device-mapper name of the pool's thin-pool target: "vg-lv-tpool" once LVM
// has thin LVs in it, "vg-lv" before.
func (p *LVMPool) PoolDevice() (string, error) {
	for _, name := range []string{p.dmName(p.LV) + "-tpool", p.dmName(p.LV)} {
		t, err := p.ctl.Table(name)
		if err == nil && len(t) == 1 && t[0].Type == "thin-pool" {
			return name, nil
		}
	}
	return "", fmt.Errorf("LVM thin pool %s/%s is not active", p.VG, p.LV)
}

// DataBytes is the pool's data size now (lvcreate warns on its own too, on a standard error
// dmsize does not see).
func (p *LVMPool) DataBytes() (int64, error) {
	name, err := p.PoolDevice()
	if err != nil {
		return 0, err
	}
	return poolDataBytes(p.ctl, name)
}

// Name is the pool as VOLUME_POOL names it.
func (p *LVMPool) Name() string { return p.VG + "/" + p.LV }

func (p *LVMPool) path(r Record) string { return p.VG + "/" + r.Device() }

// Node is r's device node, /dev/mapper/VG-LV.
func (p *LVMPool) Node(r Record) string { return dm.Node(p.dmName(r.Device())) }

// lvInfo is one thin LV as lvs reports it.
type lvInfo struct {
	tagged bool
	pool   string
}

// lookup finds r's LV; ok is false if there is none. A selection, not a name: a missing LV is
// then an empty answer, not an error to tell from others.
func (p *LVMPool) lookup(r Record) (lvInfo, bool, error) {
	// "|": lvs joins an LV's tags with commas.
	out, err := p.run("lvs", "--noheadings", "--nosuffix", "--units", "b", "--separator", "|",
		"-o", "lv_name,lv_tags,pool_lv", "-S", "lv_name="+r.Device(), p.VG)
	if err != nil {
		return lvInfo{}, false, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 3 || f[0] != r.Device() {
			continue
		}
		return lvInfo{tagged: slices.Contains(strings.Split(f[1], ","), LVMTag), pool: f[2]}, true, nil
	}
	return lvInfo{}, false, nil
}

// CreateThin makes r's thin LV at r.Size (LVM rounds up to its extent size), tagged and
// active. An LV of that name already there is ErrExists.
func (p *LVMPool) CreateThin(r Record) error {
	_, ok, err := p.lookup(r)
	if err != nil {
		return err
	}
	if ok {
		return ErrExists
	}
	_, err = p.run("lvcreate", "--yes", "--thin", "--virtualsize", strconv.FormatInt(r.Size, 10)+"b",
		"--name", r.Device(), "--addtag", LVMTag, "--setactivationskip", "n", p.Name())
	return err
}

// DeleteThin removes r's LV; none is success. An LV of that name without dmsize's tag was not
// made by dmsize and is left alone.
func (p *LVMPool) DeleteThin(r Record) error {
	lv, ok, err := p.lookup(r)
	if err != nil || !ok {
		return err
	}
	if !lv.tagged || lv.pool != p.LV {
		return fmt.Errorf("LV %s is not one dmsize made in %s (tags %q, pool %q): not removed", p.path(r), p.Name(), LVMTag, lv.pool)
	}
	_, err = p.run("lvremove", "--yes", p.path(r))
	return err
}

// Activate makes r's LV active at r.Size or larger: lvchange -ay if it is not active, lvextend
// if it is smaller (a grow a crash interrupted).
func (p *LVMPool) Activate(r Record) (string, error) {
	name := p.dmName(r.Device())
	info, err := p.ctl.Info(name)
	if err != nil && !errors.Is(err, dm.ErrNotFound) {
		return "", err
	}
	if err != nil || !info.LiveTable {
		if _, err := p.run("lvchange", "--yes", "-ay", p.path(r)); err != nil {
			return "", err
		}
		if info, err = p.ctl.Info(name); err != nil {
			return "", fmt.Errorf("LV %s after lvchange -ay: %w", p.path(r), err)
		}
	}
	_, sectors, err := thin.CheckDevice(p.ctl, name, dm.Dev{})
	if err != nil {
		return "", err
	}
	if have := int64(sectors) * size.Sector; have < r.Size {
		if _, err := p.run("lvextend", "--yes", "-L", strconv.FormatInt(r.Size, 10)+"b", p.path(r)); err != nil && !lvm.Unchanged(err) {
			return "", fmt.Errorf("growing LV %s from %s to %s: %w", p.path(r), size.Format(have), size.Format(r.Size), err)
		}
	}
	if err := ensureNode(name, info.Dev, p.nodeWait); err != nil {
		return "", err
	}
	return dm.Node(name), nil
}

// Deactivate deactivates r's LV; absent is not an error, ErrBusy if it is open.
func (p *LVMPool) Deactivate(r Record) error {
	info, err := p.ctl.Info(p.dmName(r.Device()))
	switch {
	case errors.Is(err, dm.ErrNotFound):
		return nil
	case err != nil:
		return err
	case info.OpenCount > 0:
		return ErrBusy
	}
	if _, ok, err := p.lookup(r); err != nil || !ok {
		return err
	}
	_, err = p.run("lvchange", "--yes", "-an", p.path(r))
	if err != nil && strings.Contains(err.Error(), "in use") {
		return ErrBusy
	}
	return err
}

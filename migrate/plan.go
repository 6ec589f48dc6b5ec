package migrate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dmsize/dmsize/engine/devmeta"
	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/kernel/lvm"
	"github.com/dmsize/dmsize/size"
)

// Source is the loop-lvm pool as migrate finds it, dockerd stopped.
type Source struct {
	DataFile, MetaFile string
	MetaFileBytes      int64
	Meta               Metadata // thin_dump of the metadata file
	CheckErr           error    // thin_check's answer on the metadata file
	HeldRoot           bool     // the superblock holds a metadata snapshot
	// EngineTransaction is transaction-metadata's open_transaction_id: the engine's idea of
	// the pool's transaction id.
	EngineTransaction uint64
	// EngineDevices is the engine's per-device files (<home>/metadata/NAME), by name.
	EngineDevices map[string]devmeta.Device
	StorageOpts   []string // daemon.json's storage-opts
	OptsInFlags   bool     // dockerd is given --storage-opt on its command line
}

// Host is what runs on the host while migrate plans.
type Host struct {
	DockerdRunning bool
	ActiveDevices  []string // device-mapper devices of the pool still active (live-restore, a holder)
	Mounted        []string // filesystems mounted under the driver's mnt/
	MissingTools   []string
}

// Target is the volume group the pool moves to.
type Target struct {
	VG                     string
	FreeBytes, ExtentBytes int64
	HasPmspare             bool  // the VG has a pool metadata spare already
	DataBytes, MetaBytes   int64 // asked (--data-size, --metadata-size); 0: the loop pool's
}

// LV is one logical volume the move makes.
type LV struct {
	Name  string
	Bytes int64
	// Transient: removed before the move ends (its space is needed only while it runs).
	Transient bool
	Why       string
}

// Plan is what the move makes and costs. The command prints it; without -y it stops there.
type Plan struct {
	VG          string
	LVs         []LV
	CopyBytes   int64 // the data blocks some device maps
	NeedBytes   int64 // the VG space the move takes at its peak
	FreeBytes   int64
	StorageOpts []string // daemon.json's storage-opts afterwards
	PoolDevice  string   // dm.thinpooldev
	Flavor      string   // the plugin flavor that extends the new pool
}

// LV names: the pool LV as Docker's direct-lvm guide names it; the two metadata LVs of the
// adoption (the real one is swapped in for the placeholder lvconvert wipes).
const (
	PoolLV        = "thinpool"
	MetaLV        = "dmsize-meta"
	PlaceholderLV = "dmsize-placeholder"
	// pmspareLV is the spare lvconvert makes, as large as the metadata, where the VG has none.
	pmspareLV = "lvol0_pmspare"
)

// maxMetaBytes is LVM's largest thin pool metadata (DM_THIN_MAX_METADATA_SIZE in libdm:
// 255 × 2^14 × 8 sectors less 256 Ki sectors, about 15.8 GiB).
const maxMetaBytes = (255*(1<<14)*8 - 256*1024) * 512

// Storage options the move drops: they describe the loop pool, or a raw one.
var loopOpts = []string{"dm.loopdatasize", "dm.loopmetadatasize", "dm.datadev", "dm.metadatadev", "dm.thinpooldev"}

// MakePlan decides whether the move may start and what it makes. Every reason it may not is
// in the one refusal it returns, with the plan as far as it could be made (to print).
func MakePlan(src Source, host Host, t Target) (Plan, error) {
	var why []string
	no := func(format string, a ...any) { why = append(why, fmt.Sprintf(format, a...)) }

	if host.DockerdRunning {
		no("dockerd is running (stop it first: systemctl stop docker)")
	}
	if len(host.ActiveDevices) > 0 {
		no("%d devices of the pool are still active (%s): a container runs without dockerd (live-restore) or something holds them", len(host.ActiveDevices), strings.Join(host.ActiveDevices, ", "))
	}
	if len(host.Mounted) > 0 {
		no("%d filesystems are mounted under the driver's mnt/ (%s)", len(host.Mounted), strings.Join(host.Mounted, ", "))
	}
	if len(host.MissingTools) > 0 {
		no("the host lacks %s", strings.Join(host.MissingTools, ", "))
	}
	if src.OptsInFlags {
		no("dockerd gets --storage-opt on its command line: move the options to /etc/docker/daemon.json first")
	}
	if src.CheckErr != nil {
		no("thin_check fails on %s: %v", src.MetaFile, src.CheckErr)
	}
	m := src.Meta
	if m.NeedsCheck() {
		no("the kernel flagged the pool's metadata for a check (needs_check)")
	}
	if src.HeldRoot {
		no("the pool's metadata holds a snapshot of itself (a held root), which the copy would carry and nothing would release")
	}
	if src.EngineTransaction != m.Transaction {
		no("the engine's transaction id (%d, transaction-metadata) is not the pool's (%d): start dockerd once so that it settles its open transaction, stop it, then run migrate", src.EngineTransaction, m.Transaction)
	}
	ids := map[uint32]bool{}
	for _, d := range m.Devices {
		ids[d.ID] = true
	}
	names := make([]string, 0, len(src.EngineDevices))
	for n := range src.EngineDevices {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		d := src.EngineDevices[n]
		switch {
		case d.Deleted:
			no("device %s (thin id %d) waits for its deferred deletion: start dockerd and let it finish (docker info: Deferred Deleted Device Count 0)", n, d.DeviceID)
		case !ids[uint32(d.DeviceID)]:
			no("the engine's device %s has thin id %d, which the pool's metadata does not have", n, d.DeviceID)
		}
	}

	p := Plan{VG: t.VG, FreeBytes: t.FreeBytes, Flavor: "dmsize-lvm"}
	p.PoolDevice = "/dev/mapper/" + lvm.DMName(t.VG, PoolLV)
	p.CopyBytes = int64(m.MappedBlocks()) * m.BlockBytes()
	for _, o := range src.StorageOpts {
		k, _, _ := strings.Cut(o, "=")
		if !slices.Contains(loopOpts, strings.TrimSpace(k)) {
			p.StorageOpts = append(p.StorageOpts, o)
		}
	}
	p.StorageOpts = append(p.StorageOpts, "dm.thinpooldev="+p.PoolDevice)

	extent := max(t.ExtentBytes, 1)
	up := func(n int64) int64 { return (n + extent - 1) / extent * extent }
	// Every block keeps its number: the data LV is at least the data device.
	dataBytes := int64(m.DataBlocks) * m.BlockBytes()
	if t.DataBytes > 0 && t.DataBytes < dataBytes {
		no("a data LV of %s is smaller than the loop pool's data (%s): every block keeps its number, so the LV must hold them all", size.Format(t.DataBytes), size.Format(dataBytes))
	}
	dataBytes = up(max(dataBytes, t.DataBytes))
	// The superblock records the metadata device's length: the kernel refuses a shorter one.
	metaBytes := src.MetaFileBytes
	if t.MetaBytes > 0 && t.MetaBytes < metaBytes {
		no("a metadata LV of %s is smaller than the loop pool's metadata file (%s), which the kernel would refuse", size.Format(t.MetaBytes), size.Format(metaBytes))
	}
	metaBytes = up(max(metaBytes, t.MetaBytes))
	if metaBytes > maxMetaBytes {
		no("the pool's metadata (%s) is larger than LVM's largest thin pool metadata (%s)", size.Format(metaBytes), size.Format(maxMetaBytes))
	}
	p.LVs = []LV{
		{Name: PoolLV, Bytes: dataBytes, Why: "the pool's data: the mapped blocks, copied at their numbers"},
		{Name: MetaLV, Bytes: metaBytes, Why: "the pool's metadata, copied as the kernel wrote it, then swapped into the pool"},
		{Name: PlaceholderLV, Bytes: metaBytes, Transient: true, Why: "the metadata lvconvert makes the pool with (and wipes), swapped out and removed"},
	}
	if !t.HasPmspare {
		p.LVs = append(p.LVs, LV{Name: pmspareLV, Bytes: metaBytes, Why: "LVM's spare for a metadata repair, made by lvconvert"})
	}
	for _, lv := range p.LVs {
		p.NeedBytes += lv.Bytes
	}
	if p.NeedBytes > t.FreeBytes {
		no("volume group %s has %s free, and the move needs %s at its peak", t.VG, size.Format(t.FreeBytes), size.Format(p.NeedBytes))
	}
	if len(why) > 0 {
		return p, &errs.Refusal{What: "pool migrate to " + t.VG, Reason: strings.Join(why, "; ")}
	}
	return p, nil
}

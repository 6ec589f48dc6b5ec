package migrate

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/engine/devmeta"
	"github.com/dmsize/dmsize/kernel/errs"
)

const (
	G = int64(1) << 30
	M = int64(1) << 20
)

// goodSource is a stopped loop-lvm engine's pool: 100 GiB of data in 64 KiB blocks, a 2 GiB
// metadata file, the base device (thin id 1) and a container's (4) sharing blocks.
func goodSource() (Source, Host, Target) {
	meta := Metadata{Transaction: 7, BlockSectors: 128, DataBlocks: uint64(100 * G / (64 << 10)), Devices: []Device{
		{ID: 1, MappedBlocks: 4, Mappings: []Mapping{{0, 0, 4}}},
		{ID: 4, MappedBlocks: 5, Mappings: []Mapping{{0, 0, 3}, {3, 10, 2}}},
	}}
	src := Source{
		DataFile: "/var/lib/docker/devicemapper/devicemapper/data", MetaFile: "/var/lib/docker/devicemapper/devicemapper/metadata",
		MetaFileBytes: 2 * G, Meta: meta, EngineTransaction: 7,
		EngineDevices: map[string]devmeta.Device{"base": {DeviceID: 1, Size: 10 * G, Initialized: true}, "4f3c": {DeviceID: 4, Size: 20 * G, Initialized: true}},
		StorageOpts:   []string{"dm.loopdatasize=100G", "dm.basesize=10G", "dm.use_deferred_removal=true", "dm.datadev=/dev/x", "dm.fs=xfs"},
	}
	return src, Host{}, Target{VG: "docker", FreeBytes: 200 * G, ExtentBytes: 4 * M}
}

func TestPlan(t *testing.T) {
	src, host, tgt := goodSource()
	p, err := MakePlan(src, host, tgt)
	if err != nil {
		t.Fatal(err)
	}
	want := []LV{{Name: PoolLV, Bytes: 100 * G}, {Name: MetaLV, Bytes: 2 * G}, {Name: PlaceholderLV, Bytes: 2 * G, Transient: true}, {Name: pmspareLV, Bytes: 2 * G}}
	if len(p.LVs) != len(want) {
		t.Fatalf("LVs: %+v", p.LVs)
	}
	for i, lv := range p.LVs {
		if lv.Name != want[i].Name || lv.Bytes != want[i].Bytes || lv.Transient != want[i].Transient || lv.Why == "" {
			t.Errorf("LV %d: %+v, want %+v", i, lv, want[i])
		}
	}
	// Blocks 0-3 and 10-11: six blocks of 64 KiB.
	if p.CopyBytes != 6*64<<10 || p.NeedBytes != 106*G || p.FreeBytes != 200*G {
		t.Errorf("copy %d, need %d, free %d", p.CopyBytes, p.NeedBytes, p.FreeBytes)
	}
	if p.PoolDevice != "/dev/mapper/docker-thinpool" || p.Flavor != "dmsize-lvm" {
		t.Errorf("pool %s, flavor %s", p.PoolDevice, p.Flavor)
	}
	if want := []string{"dm.basesize=10G", "dm.use_deferred_removal=true", "dm.fs=xfs", "dm.thinpooldev=/dev/mapper/docker-thinpool"}; !slices.Equal(p.StorageOpts, want) {
		t.Errorf("storage-opts %q, want %q", p.StorageOpts, want)
	}
}

// Sizes: asked sizes win when larger, round up to extents; a pmspare already there is not
// made again; LVM's dm names double a hyphen.
func TestPlanSizes(t *testing.T) {
	src, host, tgt := goodSource()
	tgt.VG, tgt.DataBytes, tgt.MetaBytes, tgt.HasPmspare = "vg-ssd", 150*G+1, 3*G, true
	p, err := MakePlan(src, host, tgt)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.LVs) != 3 || p.LVs[0].Bytes != 150*G+4*M || p.LVs[1].Bytes != 3*G || p.LVs[2].Bytes != 3*G {
		t.Fatalf("LVs: %+v", p.LVs)
	}
	if p.NeedBytes != 156*G+4*M || p.PoolDevice != "/dev/mapper/vg--ssd-thinpool" {
		t.Fatalf("need %d, pool %s", p.NeedBytes, p.PoolDevice)
	}
}

// Each reason alone refuses, says why, and still gives the plan to print.
func TestPlanRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(*Source, *Host, *Target)
		want  string
	}{
		{"dockerd running", func(s *Source, h *Host, t *Target) { h.DockerdRunning = true }, "dockerd is running"},
		{"an active device", func(s *Source, h *Host, t *Target) { h.ActiveDevices = []string{"docker-8:1-42-4f3c"} }, "1 devices of the pool are still active (docker-8:1-42-4f3c)"},
		{"a mount", func(s *Source, h *Host, t *Target) { h.Mounted = []string{"/var/lib/docker/devicemapper/mnt/4f3c"} }, "mounted under the driver's mnt/"},
		{"no thin_dump", func(s *Source, h *Host, t *Target) { h.MissingTools = []string{"thin_dump"} }, "the host lacks thin_dump"},
		{"options as flags", func(s *Source, h *Host, t *Target) { s.OptsInFlags = true }, "--storage-opt on its command line"},
		{"thin_check fails", func(s *Source, h *Host, t *Target) { s.CheckErr = errors.New("bad checksum in superblock") }, "thin_check fails on /var/lib/docker/devicemapper/devicemapper/metadata: bad checksum"},
		{"needs_check", func(s *Source, h *Host, t *Target) { s.Meta.Flags = needsCheckFlag }, "needs_check"},
		{"a held root", func(s *Source, h *Host, t *Target) { s.HeldRoot = true }, "held root"},
		{"an open transaction", func(s *Source, h *Host, t *Target) { s.EngineTransaction = 8 }, "transaction id (8, transaction-metadata) is not the pool's (7)"},
		{"a deferred deletion", func(s *Source, h *Host, t *Target) {
			s.EngineDevices["4f3c"] = devmeta.Device{DeviceID: 4, Deleted: true}
		}, "device 4f3c (thin id 4) waits for its deferred deletion"},
		{"a device the pool lacks", func(s *Source, h *Host, t *Target) { s.EngineDevices["9a"] = devmeta.Device{DeviceID: 9} }, "device 9a has thin id 9, which the pool's metadata does not have"},
		{"data LV too small", func(s *Source, h *Host, t *Target) { t.DataBytes = 50 * G }, "a data LV of 50GiB is smaller than the loop pool's data (100GiB)"},
		{"metadata LV too small", func(s *Source, h *Host, t *Target) { t.MetaBytes = 1 * G }, "a metadata LV of 1GiB is smaller"},
		{"metadata above LVM's maximum", func(s *Source, h *Host, t *Target) { s.MetaFileBytes = 16 * G }, "larger than LVM's largest"},
		{"the VG too small", func(s *Source, h *Host, t *Target) { t.FreeBytes = 105 * G }, "volume group docker has 105GiB free, and the move needs 106GiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, host, tgt := goodSource()
			tc.spoil(&src, &host, &tgt)
			p, err := MakePlan(src, host, tgt)
			if !errs.IsRefusal(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a refusal saying %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "pool migrate to docker rejected: ") || strings.Count(err.Error(), ";") != 0 {
				t.Errorf("one reason, named: %v", err)
			}
			if len(p.LVs) < 3 || p.PoolDevice == "" {
				t.Errorf("no plan to print: %+v", p)
			}
		})
	}
}

// Every reason is said at once, so that one run shows all there is to fix.
func TestPlanSaysEveryReason(t *testing.T) {
	src, host, tgt := goodSource()
	host.DockerdRunning, src.HeldRoot, tgt.FreeBytes = true, true, G
	_, err := MakePlan(src, host, tgt)
	if err == nil || strings.Count(err.Error(), "; ") != 2 {
		t.Fatalf("%v", err)
	}
}

package migrate

import (
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

// testdata/two-devices.xml is thin_dump 0.9.0's output for metadata thin_restore made: a
// base device (1) and a snapshot of it (4) that shares some of its blocks and wrote others.
func TestParseDumpOfThinDump(t *testing.T) {
	f, err := os.Open("testdata/two-devices.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := ParseDump(f)
	if err != nil {
		t.Fatal(err)
	}
	if m.Transaction != 7 || m.BlockSectors != 128 || m.BlockBytes() != 64<<10 || m.DataBlocks != 1600 || m.NeedsCheck() || len(m.Devices) != 2 {
		t.Fatalf("superblock: %+v", m)
	}
	want := []Mapping{{0, 0, 3}, {3, 4, 1}, {10, 20, 1}, {11, 5, 1}}
	if d := m.Devices[1]; d.ID != 4 || d.MappedBlocks != 6 || !slices.Equal(d.Mappings, want) {
		t.Fatalf("device 4: %+v", d)
	}
	// Device 1: 0-3, 20, 30. Device 4: 0-2, 4, 20, 5. Shared blocks once.
	if got, want := m.DataRanges(), []Range{{0, 6}, {20, 1}, {30, 1}}; !slices.Equal(got, want) {
		t.Fatalf("DataRanges = %v, want %v", got, want)
	}
	if m.MappedBlocks() != 8 {
		t.Fatalf("MappedBlocks = %d, want 8", m.MappedBlocks())
	}
}

func TestParseDumpRefuses(t *testing.T) {
	const sb = `<superblock uuid="" time="0" transaction="1" flags="0" version="2" data_block_size="128" nr_data_blocks="100">`
	for _, tc := range []struct{ name, xml, want string }{
		{"not XML", "thin_dump: bad checksum", "thin_dump's output"},
		{"no block size", `<superblock transaction="1" nr_data_blocks="100"></superblock>`, "no data_block_size"},
		{"outside the data device", sb + `<device dev_id="1" mapped_blocks="2"><range_mapping origin_begin="0" data_begin="99" length="2" time="0"/></device></superblock>`, "outside"},
		{"mapped blocks disagree", sb + `<device dev_id="1" mapped_blocks="3"><range_mapping origin_begin="0" data_begin="0" length="2" time="0"/></device></superblock>`, "says 3 mapped blocks, its mappings 2"},
		{"a device twice", sb + `<device dev_id="1" mapped_blocks="0"></device><device dev_id="1" mapped_blocks="0"></device></superblock>`, "device 1 twice"},
		{"an empty range", sb + `<device dev_id="1" mapped_blocks="0"><range_mapping origin_begin="0" data_begin="0" length="0" time="0"/></device></superblock>`, "outside"},
	} {
		if _, err := ParseDump(strings.NewReader(tc.xml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// DataRanges against a set of blocks, on random mappings that overlap and touch.
func TestDataRangesIsTheUnion(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		m := Metadata{DataBlocks: 500}
		set := map[uint64]bool{}
		for d := 0; d < 1+r.IntN(4); d++ {
			dev := Device{ID: uint32(d)}
			for i := 0; i < r.IntN(20); i++ {
				start, n := r.Uint64N(480), 1+r.Uint64N(20)
				dev.Mappings = append(dev.Mappings, Mapping{Data: start, Length: n})
				for b := start; b < start+n; b++ {
					set[b] = true
				}
			}
			m.Devices = append(m.Devices, dev)
		}
		got := m.DataRanges()
		var n uint64
		for i, rg := range got {
			if i > 0 && rg.Start <= got[i-1].Start+got[i-1].Length {
				t.Fatalf("round %d: ranges %v and %v not coalesced", round, got[i-1], rg)
			}
			for b := rg.Start; b < rg.Start+rg.Length; b++ {
				if !set[b] {
					t.Fatalf("round %d: block %d in %v is mapped by no device", round, b, rg)
				}
			}
			n += rg.Length
		}
		if n != uint64(len(set)) || m.MappedBlocks() != n {
			t.Fatalf("round %d: ranges cover %d blocks, the devices map %d", round, n, len(set))
		}
	}
}

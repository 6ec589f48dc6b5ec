package migrate

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Metadata is what thin_dump prints of a thin pool's metadata: the superblock's fields and
// every thin device with its mappings. The XML is thin-provisioning-tools' (checked with 0.9.0,
// what Debian bookworm ships: testdata/ was made with it).
type Metadata struct {
	Transaction  uint64 // the pool's transaction id, which the engine's transaction-metadata must match
	BlockSectors uint64 // data_block_size: one data block, in 512-byte sectors
	DataBlocks   uint64 // nr_data_blocks: the data device's length in blocks
	Flags        uint64 // bit 0: needs_check
	Devices      []Device
}

// needsCheckFlag is THIN_METADATA_NEEDS_CHECK_FLAG: the kernel met an error and wants thin_check.
const needsCheckFlag = 1

// NeedsCheck says whether the kernel flagged the metadata for a check.
func (m Metadata) NeedsCheck() bool { return m.Flags&needsCheckFlag != 0 }

// BlockBytes is the size of one data block.
func (m Metadata) BlockBytes() int64 { return int64(m.BlockSectors) * 512 }

// Device is one thin device: its id (the engine's device_id) and where its blocks are.
type Device struct {
	ID           uint32
	MappedBlocks uint64
	Mappings     []Mapping
}

// Mapping maps Length blocks of a thin device, from block Origin, to the data device from
// block Data.
type Mapping struct{ Origin, Data, Length uint64 }

// Range is Length data blocks from block Start.
type Range struct{ Start, Length uint64 }

// ParseDump reads thin_dump's XML. It checks what the copy relies on: one superblock, a
// block size, every mapping inside the data device, every device's mapped_blocks equal to
// its mappings' sum, no device id twice.
func ParseDump(r io.Reader) (Metadata, error) {
	var x struct {
		XMLName      xml.Name `xml:"superblock"`
		Transaction  uint64   `xml:"transaction,attr"`
		BlockSectors uint64   `xml:"data_block_size,attr"`
		DataBlocks   uint64   `xml:"nr_data_blocks,attr"`
		Flags        uint64   `xml:"flags,attr"`
		Devices      []struct {
			ID     uint32 `xml:"dev_id,attr"`
			Mapped uint64 `xml:"mapped_blocks,attr"`
			Ranges []struct {
				Origin uint64 `xml:"origin_begin,attr"`
				Data   uint64 `xml:"data_begin,attr"`
				Length uint64 `xml:"length,attr"`
			} `xml:"range_mapping"`
			Singles []struct {
				Origin uint64 `xml:"origin_block,attr"`
				Data   uint64 `xml:"data_block,attr"`
			} `xml:"single_mapping"`
		} `xml:"device"`
	}
	if err := xml.NewDecoder(r).Decode(&x); err != nil {
		return Metadata{}, fmt.Errorf("thin_dump's output: %w", err)
	}
	if x.BlockSectors == 0 || x.DataBlocks == 0 {
		return Metadata{}, errors.New("thin_dump's output: no data_block_size or nr_data_blocks in the superblock")
	}
	m := Metadata{Transaction: x.Transaction, BlockSectors: x.BlockSectors, DataBlocks: x.DataBlocks, Flags: x.Flags}
	seen := map[uint32]bool{}
	for _, xd := range x.Devices {
		if seen[xd.ID] {
			return Metadata{}, fmt.Errorf("thin_dump's output: device %d twice", xd.ID)
		}
		seen[xd.ID] = true
		d := Device{ID: xd.ID, MappedBlocks: xd.Mapped}
		for _, r := range xd.Ranges {
			d.Mappings = append(d.Mappings, Mapping{r.Origin, r.Data, r.Length})
		}
		for _, s := range xd.Singles {
			d.Mappings = append(d.Mappings, Mapping{s.Origin, s.Data, 1})
		}
		var sum uint64
		for _, mp := range d.Mappings {
			if mp.Length == 0 || mp.Data >= m.DataBlocks || mp.Length > m.DataBlocks-mp.Data {
				return Metadata{}, fmt.Errorf("thin_dump's output: device %d maps blocks %d+%d, outside the data device's %d", d.ID, mp.Data, mp.Length, m.DataBlocks)
			}
			sum += mp.Length
		}
		if sum != d.MappedBlocks {
			return Metadata{}, fmt.Errorf("thin_dump's output: device %d says %d mapped blocks, its mappings %d", d.ID, d.MappedBlocks, sum)
		}
		m.Devices = append(m.Devices, d)
	}
	return m, nil
}

// DataRanges is every data block some device maps, each once (snapshots share blocks with
// their origin), sorted and coalesced: what the copy reads and writes, at the same offsets.
func (m Metadata) DataRanges() []Range {
	var rs []Range
	for _, d := range m.Devices {
		for _, mp := range d.Mappings {
			rs = append(rs, Range{mp.Data, mp.Length})
		}
	}
	slices.SortFunc(rs, func(a, b Range) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && r.Start <= out[n-1].Start+out[n-1].Length {
			out[n-1].Length = max(out[n-1].Length, r.Start+r.Length-out[n-1].Start)
			continue
		}
		out = append(out, r)
	}
	return out
}

// MappedBlocks is the number of distinct data blocks in use: the length of DataRanges.
func (m Metadata) MappedBlocks() uint64 {
	var n uint64
	for _, r := range m.DataRanges() {
		n += r.Length
	}
	return n
}

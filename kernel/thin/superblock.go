package thin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Superblock is what a thin pool's metadata says in its first block (struct
// thin_disk_superblock, drivers/md/dm-thin-metadata.c), read without a kernel or a tool: the
// facts `dmsize pool migrate` checks on a pool that is not active.
type Superblock struct {
	Flags        uint32 // bit 0: needs_check
	Transaction  uint64
	HeldRoot     uint64 // the block of a held metadata snapshot; 0 when none
	DataBlock    uint32 // data_block_size, in 512-byte sectors
	MetaBlocks   uint64 // metadata_nr_blocks, of 4 KiB
	Version      uint32
	IncompatBits uint32
}

// NeedsCheck says whether the kernel flagged the metadata for thin_check.
func (s Superblock) NeedsCheck() bool { return s.Flags&1 != 0 }

// The on-disk layout (little-endian), and the checksum's salt (SUPERBLOCK_CSUM_XOR).
const (
	sbBlock       = 4096
	sbMagic       = 27022010
	sbCsumXor     = 160774
	sbFlags       = 4
	sbMagicOff    = 32
	sbVersion     = 40
	sbTransaction = 48
	sbHeldRoot    = 56
	sbDataBlock   = 336
	sbMetaBlocks  = 344
	sbIncompat    = 360
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// superblockSum is the kernel's dm_bm_checksum of the block after its checksum field: crc32c
// seeded with ~0 and not inverted (Go's is), salted.
func superblockSum(b []byte) uint32 {
	return ^crc32.Checksum(b[4:sbBlock], castagnoli) ^ sbCsumXor
}

// ReadSuperblock reads and checks the superblock of the thin pool metadata in r (the metadata
// file of a loop-lvm pool, or its device).
func ReadSuperblock(r io.ReaderAt) (Superblock, error) {
	b := make([]byte, sbBlock)
	if n, err := r.ReadAt(b, 0); n < sbBlock {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Superblock{}, fmt.Errorf("thin pool metadata: reading its superblock: %w", err)
	}
	le := binary.LittleEndian
	if m := le.Uint64(b[sbMagicOff:]); m != sbMagic {
		return Superblock{}, fmt.Errorf("thin pool metadata: no superblock (magic %d, want %d)", m, sbMagic)
	}
	if got, want := le.Uint32(b), superblockSum(b); got != want {
		return Superblock{}, fmt.Errorf("thin pool metadata: superblock checksum %#x, computed %#x", got, want)
	}
	return Superblock{
		Flags:        le.Uint32(b[sbFlags:]),
		Transaction:  le.Uint64(b[sbTransaction:]),
		HeldRoot:     le.Uint64(b[sbHeldRoot:]),
		DataBlock:    le.Uint32(b[sbDataBlock:]),
		MetaBlocks:   le.Uint64(b[sbMetaBlocks:]),
		Version:      le.Uint32(b[sbVersion:]),
		IncompatBits: le.Uint32(b[sbIncompat:]),
	}, nil
}

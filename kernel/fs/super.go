package fs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On-disk superblock layout, from the ext4 and xfs format documentation.
const (
	extSuperOffset   = 1024
	extMagicOff      = 56 // s_magic, le16
	extMagic         = 0xEF53
	extLogBlockOff   = 24    // s_log_block_size, le32: block size is 1024 << n
	extBlocksLoOff   = 4     // s_blocks_count_lo, le32
	extCompatOff     = 0x5C  // s_feature_compat, le32
	extIncompatOff   = 0x60  // s_feature_incompat, le32
	extROCompatOff   = 0x64  // s_feature_ro_compat, le32
	extIncompat64bit = 0x80  // s_blocks_count_hi is valid
	extBlocksHiOff   = 0x150 // s_blocks_count_hi, le32
	extMaxLogBlock   = 6     // 64 KiB, the largest block size ext4 supports

	xfsMagic        = "XFSB"
	xfsBlockSizeOff = 4   // sb_blocksize, be32
	xfsDBlocksOff   = 8   // sb_dblocks, be64
	xfsVersionOff   = 100 // sb_versionnum, be16: the format version in its low 4 bits
	xfsCompatOff    = 208 // sb_features_compat, sb_features_ro_compat, sb_features_incompat: be32 each (v5)

	superReadLen = extSuperOffset + extBlocksHiOff + 4 // enough for either
)

// ReadSuper reads the filesystem superblock at the start of dev (a block device or an image
// file). Any ext2/3/4 filesystem reports Ext4.
//
// The read goes through the page cache, which a mounted ext4 shares: it sees a resize at once.
// XFS never writes through that cache, so a page read before an XFS change can outlive it
// while anything keeps the device open (Linux 5.10 showed a grown, unmounted XFS at its old
// size): an XFS superblock is read again past the cache, where the device allows it. A mounted
// xfs's size is better asked of the kernel.
func ReadSuper(dev string) (Super, error) {
	f, err := os.Open(dev)
	if err != nil {
		return Super{}, fmt.Errorf("read superblock: %w", err)
	}
	defer f.Close()
	b := make([]byte, superReadLen)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return Super{}, fmt.Errorf("read superblock of %s: %w", dev, err)
	}
	sb, err := parseSuper(dev, b[:n])
	if err != nil || sb.Type != XFS {
		return sb, err
	}
	if direct, ok := readDirect(dev, superReadLen); ok {
		return parseSuper(dev, direct)
	}
	return sb, nil
}

// directAlign is the alignment O_DIRECT asks of offsets, lengths and buffers: 4096 serves every
// logical block size.
const directAlign = 4096

// readDirect reads the first n bytes of dev past the page cache (O_DIRECT). ok is false where
// the file refuses O_DIRECT (tmpfs, some filesystems' image files) or the read fails: the
// caller keeps what it read through the cache.
func readDirect(dev string, n int) ([]byte, bool) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	size := (n + directAlign - 1) / directAlign * directAlign
	raw := make([]byte, size+directAlign)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&raw[0])) % directAlign); r != 0 {
		off = directAlign - r
	}
	b := raw[off : off+size]
	got, err := f.ReadAt(b, 0)
	if got < n || err != nil && !errors.Is(err, io.EOF) {
		return nil, false
	}
	return b[:n], true
}

func parseSuper(dev string, b []byte) (Super, error) {
	switch {
	case len(b) >= xfsDBlocksOff+8 && string(b[:4]) == xfsMagic:
		return parseXFS(dev, b)
	case len(b) >= superReadLen && binary.LittleEndian.Uint16(b[extSuperOffset+extMagicOff:]) == extMagic:
		return parseExt(dev, b[extSuperOffset:])
	case len(b) < superReadLen:
		return Super{}, fmt.Errorf("unknown filesystem on %s (only %d bytes)", dev, len(b))
	}
	return Super{}, fmt.Errorf("unknown filesystem on %s", dev)
}

func parseExt(dev string, sb []byte) (Super, error) {
	le := binary.LittleEndian
	logBlock := le.Uint32(sb[extLogBlockOff:])
	if logBlock > extMaxLogBlock {
		return Super{}, fmt.Errorf("corrupt ext superblock on %s: s_log_block_size %d", dev, logBlock)
	}
	blocks := uint64(le.Uint32(sb[extBlocksLoOff:]))
	if le.Uint32(sb[extIncompatOff:])&extIncompat64bit != 0 {
		blocks |= uint64(le.Uint32(sb[extBlocksHiOff:])) << 32
	}
	if blocks == 0 {
		return Super{}, fmt.Errorf("corrupt ext superblock on %s: zero blocks", dev)
	}
	f := Features{Compat: le.Uint32(sb[extCompatOff:]), ROCompat: le.Uint32(sb[extROCompatOff:]), Incompat: le.Uint32(sb[extIncompatOff:])}
	return Super{Type: Ext4, BlockSize: 1024 << logBlock, Blocks: blocks, Features: f}, nil
}

func parseXFS(dev string, sb []byte) (Super, error) {
	be := binary.BigEndian
	bs := be.Uint32(sb[xfsBlockSizeOff:])
	if bs < 512 || bs > 65536 || bs&(bs-1) != 0 {
		return Super{}, fmt.Errorf("corrupt xfs superblock on %s: block size %d", dev, bs)
	}
	blocks := be.Uint64(sb[xfsDBlocksOff:])
	if blocks == 0 {
		return Super{}, fmt.Errorf("corrupt xfs superblock on %s: zero blocks", dev)
	}
	var f Features
	if len(sb) >= xfsCompatOff+12 && be.Uint16(sb[xfsVersionOff:])&0xf == 5 {
		f = Features{Compat: be.Uint32(sb[xfsCompatOff:]), ROCompat: be.Uint32(sb[xfsCompatOff+4:]), Incompat: be.Uint32(sb[xfsCompatOff+8:])}
	}
	return Super{Type: XFS, BlockSize: bs, Blocks: blocks, Features: f}, nil
}

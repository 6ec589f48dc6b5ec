package snapshotter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
)

// checkTree walks the b+tree of a bolt database file (the bytes of dmsize's own copy) from the
// meta page bbolt would use, and fails on what would make bbolt loop or read past a page: a
// page reached twice (a cycle loops bbolt's cursor forever, and its Check recurses until the
// stack overflows, which no recover catches), a page out of the file or past the high-water
// mark, a page whose id or type is not what points to it, elements past their page. A
// corrupted value inside a sound tree is left to the reader (records.go rejects it).
//
// The layout is bbolt's (go.etcd.io/bbolt/internal/common): a page header of id uint64,
// flags uint16, count uint16, overflow uint32; 16-byte branch elements (pos, ksize uint32,
// pgid uint64) and leaf elements (flags, pos, ksize, vsize uint32), pos counted from the
// element; a bucket's value is its root pgid and sequence, followed by an inline page when
// the root is 0.
func checkTree(db []byte) error {
	const (
		headerSize  = 16
		elemSize    = 16
		branchPage  = 0x01
		leafPage    = 0x02
		bucketValue = 0x01
	)
	m, err := liveMeta(db)
	if err != nil {
		return err
	}
	pageSize := uint64(m.pageSize)
	seen := map[uint64]bool{}

	// elements checks that count elements and their keys and values lie within page.
	elements := func(page []byte, count int, leaf bool) error {
		if headerSize+count*elemSize > len(page) {
			return fmt.Errorf("%d elements do not fit in the page", count)
		}
		for i := 0; i < count; i++ {
			e := page[headerSize+i*elemSize:]
			pos, ksize := uint64(binary.LittleEndian.Uint32(e[4:])), uint64(binary.LittleEndian.Uint32(e[8:]))
			if !leaf {
				pos, ksize = uint64(binary.LittleEndian.Uint32(e[0:])), uint64(binary.LittleEndian.Uint32(e[4:]))
			}
			end := uint64(headerSize+i*elemSize) + pos + ksize
			if leaf {
				end += uint64(binary.LittleEndian.Uint32(e[12:]))
			}
			if end > uint64(len(page)) {
				return fmt.Errorf("element %d ends past its page", i)
			}
		}
		return nil
	}

	// A stack of pages to visit (pgid), and of inline pages (bytes) found in bucket values.
	pgids := []uint64{m.root}
	var inline [][]byte
	// buckets queues the sub-buckets of a leaf page.
	buckets := func(page []byte, count int) error {
		for i := 0; i < count; i++ {
			e := page[headerSize+i*elemSize:]
			if binary.LittleEndian.Uint32(e[0:])&bucketValue == 0 {
				continue
			}
			at := uint64(headerSize+i*elemSize) + uint64(binary.LittleEndian.Uint32(e[4:])) + uint64(binary.LittleEndian.Uint32(e[8:]))
			v := page[at : at+uint64(binary.LittleEndian.Uint32(e[12:]))]
			if len(v) < 16 {
				return fmt.Errorf("bucket value of %d bytes", len(v))
			}
			if root := binary.LittleEndian.Uint64(v); root != 0 {
				pgids = append(pgids, root)
			} else {
				inline = append(inline, v[16:])
			}
		}
		return nil
	}
	for len(pgids) > 0 || len(inline) > 0 {
		if n := len(inline); n > 0 {
			page := inline[n-1]
			inline = inline[:n-1]
			if len(page) < headerSize || binary.LittleEndian.Uint16(page[8:])&leafPage == 0 {
				return errors.New("an inline bucket is not a leaf page")
			}
			count := int(binary.LittleEndian.Uint16(page[10:]))
			if err := elements(page, count, true); err != nil {
				return fmt.Errorf("inline bucket: %w", err)
			}
			if err := buckets(page, count); err != nil {
				return fmt.Errorf("inline bucket: %w", err)
			}
			continue
		}
		id := pgids[len(pgids)-1]
		pgids = pgids[:len(pgids)-1]
		if id < 2 || id >= m.hwm || id*pageSize+headerSize > uint64(len(db)) {
			return fmt.Errorf("page %d: out of the file (%d pages)", id, m.hwm)
		}
		h := db[id*pageSize:]
		overflow := uint64(binary.LittleEndian.Uint32(h[12:]))
		end := (id + overflow + 1) * pageSize
		if id+overflow >= m.hwm || end > uint64(len(db)) {
			return fmt.Errorf("page %d: %d overflow pages run out of the file", id, overflow)
		}
		for p := id; p <= id+overflow; p++ {
			if seen[p] {
				return fmt.Errorf("page %d: reached twice", p)
			}
			seen[p] = true
		}
		page := db[id*pageSize : end]
		if got := binary.LittleEndian.Uint64(page); got != id {
			return fmt.Errorf("page %d: says it is page %d", id, got)
		}
		flags, count := binary.LittleEndian.Uint16(page[8:]), int(binary.LittleEndian.Uint16(page[10:]))
		switch {
		case flags&branchPage != 0:
			if err := elements(page, count, false); err != nil {
				return fmt.Errorf("page %d: %w", id, err)
			}
			for i := 0; i < count; i++ {
				pgids = append(pgids, binary.LittleEndian.Uint64(page[headerSize+i*elemSize+8:]))
			}
		case flags&leafPage != 0:
			if err := elements(page, count, true); err != nil {
				return fmt.Errorf("page %d: %w", id, err)
			}
			if err := buckets(page, count); err != nil {
				return fmt.Errorf("page %d: %w", id, err)
			}
		default:
			return fmt.Errorf("page %d: neither branch nor leaf (flags %#x)", id, flags)
		}
	}
	return nil
}

// meta is what checkTree needs of a bolt meta page.
type meta struct {
	pageSize uint32
	root     uint64 // the root bucket's page
	hwm      uint64 // pages in use: every page id is below it
	txid     uint64
}

// liveMeta is the meta page bbolt reads: of the two whose magic, version and checksum hold, the
// one with the higher transaction id.
func liveMeta(db []byte) (meta, error) {
	const magic, version = 0xED0CDAED, 2
	if len(db) < 32 {
		return meta{}, errors.New("not a bolt database")
	}
	pageSize := binary.LittleEndian.Uint32(db[24:])
	if pageSize < 512 || pageSize > 1<<20 || uint64(len(db)) < 2*uint64(pageSize) {
		return meta{}, fmt.Errorf("not a bolt database: page size %d", pageSize)
	}
	var live meta
	found := false
	for i := uint64(0); i < 2; i++ {
		b := db[i*uint64(pageSize)+16:]
		// magic, version, page size, flags (4 bytes each), root bucket (root, sequence),
		// freelist, pgid, txid, checksum (fnv-64a of the 56 bytes before it).
		h := fnv.New64a()
		h.Write(b[:56])
		if binary.LittleEndian.Uint32(b) != magic || binary.LittleEndian.Uint32(b[4:]) != version ||
			binary.LittleEndian.Uint64(b[56:]) != h.Sum64() {
			continue
		}
		m := meta{pageSize: binary.LittleEndian.Uint32(b[8:]), root: binary.LittleEndian.Uint64(b[16:]),
			hwm: binary.LittleEndian.Uint64(b[40:]), txid: binary.LittleEndian.Uint64(b[48:])}
		if m.pageSize != pageSize {
			continue
		}
		if !found || m.txid > live.txid {
			live, found = m, true
		}
	}
	if !found {
		return meta{}, errors.New("neither meta page is valid")
	}
	return live, nil
}

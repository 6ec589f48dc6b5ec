package migrate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// Copy moves the mapped data blocks of the frozen pool to the data LV, each at its own offset,
// and hashes each range (what Verify re-reads against). It never writes Src.
//
// Crash safety: a checkpoint is taken only after every byte before it is written and Dst is
// synced, so a run resumed from the last checkpoint rewrites at most what followed it (the
// source is frozen: rewriting is idempotent).
type Copy struct {
	Src        io.ReaderAt
	Dst        Writer
	BlockBytes int64
	Ranges     []Range
	// ChunkBytes is one read and one write (4 MiB if 0).
	ChunkBytes int64
	// CheckpointBytes is how much is copied between checkpoints (256 MiB if 0); a range's end
	// is a checkpoint too when it passes that much.
	CheckpointBytes int64
	// Checkpoint records progress (the journal); its error stops the copy.
	Checkpoint func(Progress) error
}

// Writer is where the copy writes: the data LV, opened for writing.
type Writer interface {
	io.WriterAt
	Sync() error
}

// Progress is how far a copy got: Ranges[:Next] are written, synced and hashed (Sums), Bytes of
// Total.
type Progress struct {
	Next         int
	Bytes, Total int64
	Sums         []string // sha256 of each range, hex
}

func (c *Copy) total() int64 {
	var t int64
	for _, r := range c.Ranges {
		t += int64(r.Length) * c.BlockBytes
	}
	return t
}

// Run copies from p (the zero Progress to start) to the end, and returns the final progress.
func (c *Copy) Run(p Progress) (Progress, error) {
	chunk := c.ChunkBytes
	if chunk <= 0 {
		chunk = 4 << 20
	}
	every := c.CheckpointBytes
	if every <= 0 {
		every = 256 << 20
	}
	if p.Next < 0 || p.Next > len(c.Ranges) || len(p.Sums) != p.Next {
		return p, fmt.Errorf("copy: a checkpoint at range %d with %d sums does not fit %d ranges", p.Next, len(p.Sums), len(c.Ranges))
	}
	p.Total = c.total()
	buf := make([]byte, chunk)
	sinceCheckpoint := int64(0)
	for p.Next < len(c.Ranges) {
		r := c.Ranges[p.Next]
		off, end := int64(r.Start)*c.BlockBytes, int64(r.Start+r.Length)*c.BlockBytes
		h := sha256.New()
		for off < end {
			b := buf[:min(chunk, end-off)]
			if err := readFull(c.Src, b, off); err != nil {
				return p, fmt.Errorf("copy: reading %d bytes at %d: %w", len(b), off, err)
			}
			if _, err := c.Dst.WriteAt(b, off); err != nil {
				return p, fmt.Errorf("copy: writing %d bytes at %d: %w", len(b), off, err)
			}
			h.Write(b)
			off += int64(len(b))
			sinceCheckpoint += int64(len(b))
		}
		p.Next++
		p.Bytes += int64(r.Length) * c.BlockBytes
		p.Sums = append(p.Sums, hex.EncodeToString(h.Sum(nil)))
		if sinceCheckpoint >= every || p.Next == len(c.Ranges) {
			if err := c.Dst.Sync(); err != nil {
				return p, fmt.Errorf("copy: sync: %w", err)
			}
			if c.Checkpoint != nil {
				if err := c.Checkpoint(p); err != nil {
					return p, err
				}
			}
			sinceCheckpoint = 0
		}
	}
	return p, nil
}

// readFull reads len(b) bytes at off; a short source (a data file shorter than its mappings)
// is an error, never zeros.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Verify re-reads every range from dst against the sums a copy took, and names the first that
// differs.
func Verify(dst io.ReaderAt, blockBytes int64, ranges []Range, sums []string, chunk int64) error {
	if len(sums) != len(ranges) {
		return fmt.Errorf("verify: %d sums for %d ranges", len(sums), len(ranges))
	}
	if chunk <= 0 {
		chunk = 4 << 20
	}
	buf := make([]byte, chunk)
	for i, r := range ranges {
		off, end := int64(r.Start)*blockBytes, int64(r.Start+r.Length)*blockBytes
		h := sha256.New()
		for off < end {
			b := buf[:min(chunk, end-off)]
			if err := readFull(dst, b, off); err != nil {
				return fmt.Errorf("verify: reading %d bytes at %d: %w", len(b), off, err)
			}
			h.Write(b)
			off += int64(len(b))
		}
		want, err := hex.DecodeString(sums[i])
		if err != nil {
			return fmt.Errorf("verify: range %d: sum %q: %w", i, sums[i], err)
		}
		if !bytes.Equal(h.Sum(nil), want) {
			return fmt.Errorf("verify: blocks %d+%d (bytes %d to %d) differ from what was copied", r.Start, r.Length, int64(r.Start)*blockBytes, end)
		}
	}
	return nil
}

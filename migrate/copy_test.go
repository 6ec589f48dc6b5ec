package migrate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const testBlock = 4096

// pool makes a source data file of 64 blocks whose mapped ranges hold a pattern (the rest is
// a hole) and a destination of the same size filled with 0xAA, as a reused disk would be.
func pool(t *testing.T, ranges []Range) (src, dst *os.File) {
	t.Helper()
	dir := t.TempDir()
	src, err := os.Create(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if err := src.Truncate(64 * testBlock); err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		b := make([]byte, int64(r.Length)*testBlock)
		for i := range b {
			b[i] = byte(int(r.Start)*31 + i%251)
		}
		if _, err := src.WriteAt(b, int64(r.Start)*testBlock); err != nil {
			t.Fatal(err)
		}
	}
	dst, err = os.Create(filepath.Join(dir, "lv"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	if _, err := dst.Write(bytes.Repeat([]byte{0xAA}, 64*testBlock)); err != nil {
		t.Fatal(err)
	}
	return src, dst
}

var testRanges = []Range{{0, 3}, {5, 1}, {10, 20}, {40, 2}}

// checkCopied: every mapped block is in dst at its offset, and nothing else was written.
func checkCopied(t *testing.T, src, dst *os.File, ranges []Range) {
	t.Helper()
	s, d := make([]byte, 64*testBlock), make([]byte, 64*testBlock)
	src.ReadAt(s, 0)
	dst.ReadAt(d, 0)
	mapped := map[int]bool{}
	for _, r := range ranges {
		for b := r.Start; b < r.Start+r.Length; b++ {
			mapped[int(b)] = true
		}
	}
	for b := 0; b < 64; b++ {
		got := d[b*testBlock : (b+1)*testBlock]
		switch {
		case mapped[b] && !bytes.Equal(got, s[b*testBlock:(b+1)*testBlock]):
			t.Fatalf("block %d: not the source's", b)
		case !mapped[b] && !bytes.Equal(got, bytes.Repeat([]byte{0xAA}, testBlock)):
			t.Fatalf("block %d is mapped by nothing and was written", b)
		}
	}
}

func TestCopyAndVerify(t *testing.T) {
	src, dst := pool(t, testRanges)
	var checkpoints []Progress
	c := &Copy{Src: src, Dst: dst, BlockBytes: testBlock, Ranges: testRanges, ChunkBytes: 3 * testBlock, CheckpointBytes: 4 * testBlock,
		Checkpoint: func(p Progress) error { checkpoints = append(checkpoints, p); return nil }}
	p, err := c.Run(Progress{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Next != 4 || p.Bytes != 26*testBlock || p.Total != 26*testBlock || len(p.Sums) != 4 {
		t.Fatalf("progress %+v", p)
	}
	// A checkpoint after 3 blocks is not due (4); after 3+1, 20 and the last range it is.
	var at []int
	for _, cp := range checkpoints {
		at = append(at, cp.Next)
	}
	if !slices.Equal(at, []int{2, 3, 4}) {
		t.Fatalf("checkpoints after ranges %v, want [2 3 4]", at)
	}
	checkCopied(t, src, dst, testRanges)
	if err := Verify(dst, testBlock, testRanges, p.Sums, 5*testBlock); err != nil {
		t.Fatal(err)
	}
	// One changed byte in the third range: Verify names it.
	dst.WriteAt([]byte{0}, 17*testBlock+9)
	if err := Verify(dst, testBlock, testRanges, p.Sums, 0); err == nil || !strings.Contains(err.Error(), "blocks 10+20") {
		t.Fatalf("a changed byte: %v", err)
	}
}

// A kill after any checkpoint, then a run from that checkpoint: the same bytes and the same
// sums as one run without a kill.
func TestCopyResumesFromEveryCheckpoint(t *testing.T) {
	src, dst := pool(t, testRanges)
	whole, err := (&Copy{Src: src, Dst: dst, BlockBytes: testBlock, Ranges: testRanges}).Run(Progress{})
	if err != nil {
		t.Fatal(err)
	}
	for kill := 1; kill <= 3; kill++ {
		src, dst := pool(t, testRanges)
		var saved Progress
		n := 0
		c := &Copy{Src: src, Dst: dst, BlockBytes: testBlock, Ranges: testRanges, CheckpointBytes: 1,
			Checkpoint: func(p Progress) error {
				saved = Progress{Next: p.Next, Bytes: p.Bytes, Sums: slices.Clone(p.Sums)}
				if n++; n == kill {
					return errors.New("killed")
				}
				return nil
			}}
		if _, err := c.Run(Progress{}); err == nil || err.Error() != "killed" {
			t.Fatalf("kill %d: %v", kill, err)
		}
		// Bytes after the checkpoint may be written or not: write some garbage there too.
		dst.WriteAt([]byte("torn"), 41*testBlock)
		c.Checkpoint = nil
		p, err := c.Run(saved)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.Sums, whole.Sums) || p.Bytes != whole.Bytes {
			t.Fatalf("kill after checkpoint %d: sums or bytes differ: %+v", kill, p)
		}
		checkCopied(t, src, dst, testRanges)
	}
}

type failingSync struct{ *os.File }

func (failingSync) Sync() error { return errors.New("EIO") }

func TestCopyFails(t *testing.T) {
	src, dst := pool(t, testRanges)
	called := false
	c := &Copy{Src: src, Dst: failingSync{dst}, BlockBytes: testBlock, Ranges: testRanges, Checkpoint: func(Progress) error { called = true; return nil }}
	if _, err := c.Run(Progress{}); err == nil || !strings.Contains(err.Error(), "sync: EIO") || called {
		t.Fatalf("a failed sync: %v, checkpoint called %v", err, called)
	}
	// Mappings past the end of the data file: an error, never zeros.
	c = &Copy{Src: src, Dst: dst, BlockBytes: testBlock, Ranges: []Range{{60, 8}}}
	if _, err := c.Run(Progress{}); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("a short source: %v", err)
	}
	if _, err := c.Run(Progress{Next: 1}); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Fatalf("a checkpoint without its sums: %v", err)
	}
	if err := Verify(dst, testBlock, testRanges, nil, 0); err == nil {
		t.Fatal("Verify without sums: no error")
	}
	if err := Verify(dst, testBlock, testRanges[:1], []string{"zz"}, 0); err == nil || !strings.Contains(err.Error(), "sum") {
		t.Fatalf("Verify of a bad sum: %v", err)
	}
}

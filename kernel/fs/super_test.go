package fs

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/binary"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The images in testdata are the first 64 KiB of filesystems made with e2fsprogs 1.47.0 and
// xfsprogs 6.1.0, then gzipped:
//
//	ext4-32bit-1k: truncate -s 40M;  mkfs.ext4 -b 1024 -O ^64bit
//	ext4-64bit-4k: truncate -s 200M; mkfs.ext4 -b 4096 -O 64bit
//	ext2-1k:       truncate -s 24M;  mkfs.ext2
//	xfs-4k:        truncate -s 512M; mkfs.xfs
//
// They are embedded so that a test binary run elsewhere (the VM suite) carries them along.
//
//go:embed testdata/*.img.gz
var testdata embed.FS

func image(t *testing.T, name string) []byte {
	t.Helper()
	f, err := testdata.Open("testdata/" + name + ".img.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readSuperOf writes b to a temporary file and runs ReadSuper on it, as on a device.
func readSuperOf(t *testing.T, b []byte) (Super, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return ReadSuper(p)
}

func TestReadSuperImages(t *testing.T) {
	for _, tc := range []struct {
		name     string
		want     Super
		features string
	}{
		{"ext4-32bit-1k", Super{Type: Ext4, BlockSize: 1024, Blocks: 40960}, "dir_index dir_nlink ext_attr extent extra_isize filetype flex_bg has_journal huge_file large_file metadata_csum resize_inode sparse_super"},
		{"ext4-64bit-4k", Super{Type: Ext4, BlockSize: 4096, Blocks: 51200}, "64bit dir_index dir_nlink ext_attr extent extra_isize filetype flex_bg has_journal huge_file large_file metadata_csum resize_inode sparse_super"},
		{"ext2-1k", Super{Type: Ext4, BlockSize: 1024, Blocks: 24576}, "dir_index ext_attr filetype large_file resize_inode sparse_super"},
		{"xfs-4k", Super{Type: XFS, BlockSize: 4096, Blocks: 131072}, "bigtime finobt ftype inobtcount reflink sparse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readSuperOf(t, image(t, tc.name))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range got.featureList() {
				names = append(names, f.name)
			}
			if got.Features = (Features{}); got != tc.want || strings.Join(names, " ") != tc.features {
				t.Fatalf("ReadSuper = %+v %q, want %+v %q", got, names, tc.want, tc.features)
			}
			if got.Size() != int64(tc.want.BlockSize)*int64(tc.want.Blocks) {
				t.Fatalf("Size = %d", got.Size())
			}
		})
	}
}

// s_blocks_count_hi counts only when the 64bit feature is set. No small image has a non-zero
// high word, so it is patched into real superblocks (checksums are not verified).
func TestReadSuperBlocksHi(t *testing.T) {
	hi := extSuperOffset + extBlocksHiOff
	b := image(t, "ext4-64bit-4k")
	binary.LittleEndian.PutUint32(b[hi:], 3)
	got, err := readSuperOf(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(3)<<32 | 51200; got.Blocks != want {
		t.Fatalf("64bit: Blocks = %d, want %d", got.Blocks, want)
	}
	if want := int64(4096) * (3<<32 | 51200); got.Size() != want {
		t.Fatalf("64bit: Size = %d, want %d", got.Size(), want)
	}

	b = image(t, "ext4-32bit-1k")
	if binary.LittleEndian.Uint32(b[extSuperOffset+extIncompatOff:])&extIncompat64bit != 0 {
		t.Fatal("32-bit image has the 64bit feature")
	}
	binary.LittleEndian.PutUint32(b[hi:], 3)
	if got, err := readSuperOf(t, b); err != nil || got.Blocks != 40960 {
		t.Fatalf("32-bit: ReadSuper = %+v, %v; want the high word ignored", got, err)
	}
}

func TestReadSuperRejects(t *testing.T) {
	garbage := make([]byte, 65536)
	rand.New(rand.NewSource(1)).Read(garbage)
	corruptExt := image(t, "ext4-32bit-1k")
	binary.LittleEndian.PutUint32(corruptExt[extSuperOffset+extLogBlockOff:], 40)
	corruptXFS := image(t, "xfs-4k")
	binary.BigEndian.PutUint32(corruptXFS[xfsBlockSizeOff:], 3000)

	for _, tc := range []struct {
		name, want string
		b          []byte
	}{
		{"garbage", "unknown filesystem on", garbage},
		{"zeros", "unknown filesystem on", make([]byte, 65536)},
		{"empty", "unknown filesystem on", nil},
		{"short ext", "only 1100 bytes", image(t, "ext4-32bit-1k")[:1100]},
		{"short xfs", "only 8 bytes", image(t, "xfs-4k")[:8]},
		{"ext block size", "s_log_block_size 40", corruptExt},
		{"xfs block size", "block size 3000", corruptXFS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readSuperOf(t, tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadSuper = %+v, %v; want an error with %q", got, err, tc.want)
			}
			if !strings.Contains(err.Error(), "img") {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

func TestReadSuperMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nothing")
	if _, err := ReadSuper(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("ReadSuper(missing) = %v", err)
	}
}

func TestParseSuperShortBuffersDoNotPanic(t *testing.T) {
	b := image(t, "ext4-64bit-4k")
	for n := 0; n <= len(b) && n <= superReadLen+8; n++ {
		parseSuper("x", bytes.Clone(b[:n]))
	}
}

// readDirect reads what a buffered read does, from an aligned buffer, where the file allows
// O_DIRECT; where it does not, it says so and the caller keeps its buffered read.
func TestReadDirect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	want := make([]byte, 3*directAlign)
	for i := range want {
		want[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	got, ok := readDirect(path, superReadLen)
	if !ok {
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
		if err == nil {
			f.Close()
			t.Fatal("readDirect failed on a file that opens with O_DIRECT")
		}
		t.Logf("this filesystem refuses O_DIRECT (%v): readDirect said so", err)
		return
	}
	if !bytes.Equal(got, want[:superReadLen]) {
		t.Fatal("readDirect read other bytes than the file has")
	}
	if _, ok := readDirect(filepath.Join(t.TempDir(), "none"), superReadLen); ok {
		t.Fatal("readDirect of a missing file: ok")
	}
}

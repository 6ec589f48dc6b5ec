package thin

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"strings"
	"testing"
)

// testdata/superblock-tid7.bin is the first block of metadata that thin_restore
// (thin-provisioning-tools 0.9.0) wrote from XML with transaction 7, 64 KiB data blocks, in a
// 4 MiB file; thin_check passed on it.
// The fixtures are embedded: the VM runs this package's test binary without its source tree.
//
//go:embed testdata/superblock-tid7.bin
var tid7 []byte

//go:embed testdata/superblock-tid7-held97.bin
var tid7Held97 []byte

func fixture(t *testing.T) []byte {
	t.Helper()
	return bytes.Clone(tid7)
}

func TestReadSuperblock(t *testing.T) {
	sb, err := ReadSuperblock(bytes.NewReader(fixture(t)))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Superblock{Transaction: 7, DataBlock: 128, MetaBlocks: 1024, Version: 2}); sb != want || sb.NeedsCheck() {
		t.Fatalf("ReadSuperblock = %+v, want %+v", sb, want)
	}
}

// testdata/superblock-tid7-held97.bin is the same with a held root at block 97, its checksum
// made again (what the kernel writes while a metadata snapshot is held).
func TestReadSuperblockHeldRootFixture(t *testing.T) {
	if sb, err := ReadSuperblock(bytes.NewReader(tid7Held97)); err != nil || sb.HeldRoot != 97 || sb.Transaction != 7 {
		t.Fatalf("ReadSuperblock = %+v, %v", sb, err)
	}
}

// A held root and needs_check, as the kernel writes them (with the checksum made again).
func TestReadSuperblockHeldRootAndNeedsCheck(t *testing.T) {
	b := fixture(t)
	binary.LittleEndian.PutUint64(b[sbHeldRoot:], 97)
	binary.LittleEndian.PutUint32(b[sbFlags:], 1)
	binary.LittleEndian.PutUint32(b, superblockSum(b))
	sb, err := ReadSuperblock(bytes.NewReader(b))
	if err != nil || sb.HeldRoot != 97 || !sb.NeedsCheck() {
		t.Fatalf("ReadSuperblock = %+v, %v", sb, err)
	}
}

func TestReadSuperblockRefuses(t *testing.T) {
	bad := fixture(t)
	bad[sbTransaction]++ // a changed byte, the checksum not made again
	noMagic := fixture(t)
	noMagic[sbMagicOff]++
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"a changed byte", bad, "checksum"},
		{"no magic", noMagic, "no superblock"},
		{"short", fixture(t)[:100], "unexpected EOF"},
		{"zeros", make([]byte, sbBlock), "no superblock"},
	} {
		if _, err := ReadSuperblock(bytes.NewReader(tc.b)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

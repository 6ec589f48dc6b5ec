package guard

import (
	"errors"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/thin"
)

// poolOf is a pool of data and meta bytes as ReadPool would return it.
func poolOf(data, meta int64) thin.Pool {
	return thin.Pool{Table: dm.PoolTable{DataBlockSectors: 128}, Status: dm.PoolStatus{TotalDataBlocks: uint64(data / 65536), TotalMetaBlocks: uint64(meta / 4096)}}
}

func TestLVMExtender(t *testing.T) {
	var calls []string
	fail := map[string]error{}
	l := &lvmExtender{vg: "docker", lv: "thinpool", run: func(args ...string) (string, error) {
		c := strings.Join(args, " ")
		calls = append(calls, c)
		if args[0] == "vgs" {
			return "  1073741824\n", nil
		}
		return "", fail[args[1]]
	}}
	room, why, err := l.Room()
	if err != nil || room != gib || !strings.Contains(why, "volume group docker has 1.00GiB free") {
		t.Fatalf("Room = %d %q %v", room, why, err)
	}
	calls = nil
	if _, err := l.Extend(poolOf(3*gib, 16*mib), 4*gib, 16*mib); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0] != "lvextend -L 4294967296b docker/thinpool" {
		t.Fatalf("data only: %q", calls)
	}
	calls = nil
	if _, err := l.Extend(poolOf(3*gib, 16*mib), 3*gib, 32*mib); err != nil || len(calls) != 1 || calls[0] != "lvextend --poolmetadatasize 33554432b docker/thinpool" {
		t.Fatalf("metadata only: %q %v", calls, err)
	}
	// A repeat after a crash: lvm says the size is already there.
	fail["-L"] = errors.New(`lvm lvextend: exit status 5:   New size (1024 extents) matches existing size (1024 extents).`)
	if _, err := l.Extend(poolOf(3*gib, 16*mib), 4*gib, 16*mib); err != nil {
		t.Fatalf("repeat: %v", err)
	}
	fail["-L"] = errors.New(`lvm lvextend: exit status 5:   Insufficient free space: 256 extents needed, but only 3 available`)
	if _, err := l.Extend(poolOf(3*gib, 16*mib), 4*gib, 16*mib); err == nil || !strings.Contains(err.Error(), "Insufficient free space") {
		t.Fatalf("VG full: %v", err)
	}
}

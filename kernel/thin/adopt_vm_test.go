//go:build vmtest

package thin

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/internal/vmfixture"
)

// How `dmsize pool migrate` has LVM adopt a copied pool (docs/research/pool-migration.md §3),
// run on this VM's lvm2 and thin-provisioning-tools: the data copied to a plain LV at its
// block numbers, the metadata as written to a second plain LV; lvconvert makes a pool of the
// data LV with a placeholder metadata LV, then the real metadata is swapped in. What it proves:
// the conversion does not write the data LV; the swap puts exactly the real metadata LV in the
// pool; the pool activates with the kernel's transaction id while LVM's stays 0; the thin
// devices read their blocks; LVM refuses to make thin LVs of its own there.
func TestVMLVMAdoptsACopiedPool(t *testing.T) {
	const (
		vg    = "dmsizemig"
		block = 64 << 10
	)
	dir := t.TempDir()
	img := filepath.Join(dir, "pv")
	vmfixture.Sparse(t, img, 1*GiB)
	pv := vmfixture.Losetup(t, img)
	vmfixture.Sh(t, "pvcreate", "-y", pv)
	vmfixture.Sh(t, "vgcreate", "-y", vg, pv)
	t.Cleanup(func() {
		exec.Command("dmsetup", "remove", "dmsizemig-t4").Run()
		exec.Command("vgremove", "-y", "-f", vg).Run()
		exec.Command("pvremove", "-y", pv).Run()
	})
	lv := func(name string) string { return "/dev/" + vg + "/" + name }

	// The source pool's metadata: transaction 7, 4096 blocks of
	// 64 KiB; device 1 maps blocks 0-3 to data 0-3, device 4 (its snapshot) shares 0-2 and maps
	// its block 3 to data 4.
	xml := `<superblock uuid="" time="1" transaction="7" flags="0" version="2" data_block_size="128" nr_data_blocks="4096">
  <device dev_id="1" mapped_blocks="4" transaction="0" creation_time="0" snap_time="1">
    <range_mapping origin_begin="0" data_begin="0" length="4" time="0"/>
  </device>
  <device dev_id="4" mapped_blocks="4" transaction="5" creation_time="1" snap_time="1">
    <range_mapping origin_begin="0" data_begin="0" length="3" time="0"/>
    <single_mapping origin_block="3" data_block="4" time="1"/>
  </device>
</superblock>
`
	if err := os.WriteFile(filepath.Join(dir, "dump.xml"), []byte(xml), 0o600); err != nil {
		t.Fatal(err)
	}
	// The plain LVs migrate makes, and the copies.
	vmfixture.Sh(t, "lvcreate", "-y", "-W", "y", "-L", "256M", "-n", "thinpool", "--addtag", "dmsize-migrate", vg)
	vmfixture.Sh(t, "lvcreate", "-y", "-W", "y", "-L", "16M", "-n", "dmsize-meta", "--addtag", "dmsize-migrate", vg)
	vmfixture.Sh(t, "lvcreate", "-y", "-W", "y", "-L", "16M", "-n", "dmsize-placeholder", "--addtag", "dmsize-migrate", vg)
	pattern := func(b int) []byte { return bytes.Repeat([]byte{byte('A' + b)}, block) }
	data, err := os.OpenFile(lv("thinpool"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []int{0, 1, 2, 3, 4, 100} {
		if _, err := data.WriteAt(pattern(b), int64(b)*block); err != nil {
			t.Fatal(err)
		}
	}
	if err := data.Close(); err != nil {
		t.Fatal(err)
	}
	// The metadata as the kernel would have written it (thin_restore opens its output with
	// O_DIRECT, which the VM's tmpfs refuses: it writes the LV itself).
	vmfixture.Sh(t, "thin_restore", "-i", filepath.Join(dir, "dump.xml"), "-o", lv("dmsize-meta"))
	sum := func(dev string) [32]byte {
		f, err := os.Open(dev)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			t.Fatal(err)
		}
		var s [32]byte
		copy(s[:], h.Sum(nil))
		return s
	}
	before := sum(lv("thinpool"))
	metaUUID := vmfixture.Sh(t, "lvs", "--noheadings", "-o", "lv_uuid", vg+"/dmsize-meta")
	vmfixture.Settle()
	vmfixture.Sh(t, "lvchange", "-an", vg+"/thinpool", vg+"/dmsize-meta", vg+"/dmsize-placeholder")

	// lvconvert makes the pool with the placeholder: the data LV is not written.
	out := vmfixture.Sh(t, "lvconvert", "-y", "--type", "thin-pool", "-c", "64k", "--zero", "n", "--poolmetadata", vg+"/dmsize-placeholder", vg+"/thinpool")
	t.Logf("lvconvert --type thin-pool: %s", out)
	if attr := vmfixture.Sh(t, "lvs", "--noheadings", "-o", "lv_attr", vg+"/thinpool"); !strings.HasPrefix(attr, "t") {
		t.Fatalf("after lvconvert, thinpool's attr is %q, not a pool's", attr)
	}
	// lvconvert leaves the new pool active (on the wiped placeholder): migrate deactivates it
	// before anything else.
	t.Logf("after lvconvert the pool is %q", vmfixture.Sh(t, "lvs", "--noheadings", "-o", "lv_active", vg+"/thinpool"))
	vmfixture.Settle()
	vmfixture.Sh(t, "lvchange", "-an", vg+"/thinpool")
	vmfixture.Sh(t, "lvchange", "-ay", "-y", vg+"/thinpool_tdata")
	if after := sum(lv("thinpool_tdata")); after != before {
		t.Fatal("lvconvert --type thin-pool wrote the data LV")
	}
	vmfixture.Settle()
	vmfixture.Sh(t, "lvchange", "-an", vg+"/thinpool_tdata")

	// The swap puts the real metadata LV in the pool, unwritten.
	t.Logf("swap: %s", vmfixture.Sh(t, "lvconvert", "-y", "--thinpool", vg+"/thinpool", "--poolmetadata", vg+"/dmsize-meta"))
	if got := vmfixture.Sh(t, "lvs", "-a", "--noheadings", "-o", "lv_uuid", vg+"/thinpool_tmeta"); got != metaUUID {
		t.Fatalf("the pool's metadata LV is %s, want the copied one %s", got, metaUUID)
	}

	// Active: the kernel's transaction id is the copied one, LVM's stays 0. With no thin LV of
	// LVM's, the pool is VG-LV itself (what dm.thinpooldev names, as in Docker's direct-lvm).
	vmfixture.Sh(t, "lvchange", "-ay", vg+"/thinpool")
	status := strings.Fields(vmfixture.Sh(t, "dmsetup", "status", vg+"-thinpool"))
	if len(status) < 4 || status[2] != "thin-pool" || status[3] != "7" {
		t.Fatalf("the adopted pool's status: %q, want transaction 7", status)
	}
	if tid := vmfixture.Sh(t, "lvs", "--noheadings", "-o", "transaction_id", vg+"/thinpool"); tid != "0" {
		t.Fatalf("LVM's transaction id for the pool: %q, want 0", tid)
	}

	// Thin device 4 reads the shared blocks and its own, at their numbers.
	vmfixture.Sh(t, "dmsetup", "create", "dmsizemig-t4", "--table", "0 8192 thin /dev/mapper/"+vg+"-thinpool 4")
	f, err := os.Open("/dev/mapper/dmsizemig-t4")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4*block)
	_, err = f.ReadAt(got, 0)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for b, want := range []int{0, 1, 2, 4} {
		if !bytes.Equal(got[b*block:(b+1)*block], pattern(want)) {
			t.Fatalf("thin device 4, block %d: not data block %d", b, want)
		}
	}
	vmfixture.Settle()
	vmfixture.Sh(t, "dmsetup", "remove", "dmsizemig-t4")

	// LVM makes no thin LV of its own in a pool whose ids something else keeps.
	out2, err := exec.Command("lvcreate", "-y", "--thin", "-V", "64M", "-n", "mine", vg+"/thinpool").CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "transaction") {
		t.Fatalf("lvcreate --thin in the adopted pool: %v\n%s", err, out2)
	}
	t.Logf("lvcreate --thin refused: %s", strings.TrimSpace(string(out2)))
	vmfixture.Settle()
	vmfixture.Sh(t, "lvchange", "-an", vg+"/thinpool")
}

package snapshotter

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// The records of a state directory kept while containerd's state was reset (or written
// before dmsize recorded snapshots): containerd gives new devices the names and thin ids of
// old ones, so only the snapshot, whose key ends in the container's ID, tells them apart.
//
//	pool-snap-6  cid-init's, proven: its size is dmsize's to restore
//	pool-snap-7  recorded for snapshot moby/3/old (a container of the reset state); cid's now
//	pool-snap-8  recorded without a snapshot, by an older dmsize: cannot be proven
//	pool-snap-9  a device containerd no longer has
func staleRecords(t *testing.T, h *host) {
	h.record(t, "pool-snap-6", 3, 24<<30, "moby/11/cid-init")
	h.record(t, "pool-snap-7", 4, 24<<30, "moby/3/old")
	h.record(t, "pool-snap-8", 5, 24<<30, "")
	h.record(t, "pool-snap-9", 9, 24<<30, "moby/2/gone")
}

// Repair, at the plugin's start before it serves, first drops the records containerd's
// records do not prove, each logged once, then restores only the proven ones.
func TestRepairProvesEachRecord(t *testing.T) {
	h := newHost(t)
	h.start(t) // an earlier run: it told Repair where containerd's records are
	staleRecords(t, h)
	if n := Repair(nil, h.state, h.log); n != 1 {
		t.Errorf("Repair grew %d devices, want 1 (pool-snap-6)", n)
	}
	for dev, want := range map[string]int64{"pool-snap-6": 24 << 30, "pool-snap-7": 10 << 30, "pool-snap-8": 10 << 30} {
		if got := h.dm.size(dev); got != want {
			t.Errorf("%s: %d GiB after Repair, want %d", dev, got>>30, want>>30)
		}
	}
	if got := h.recorded(t); !slices.Equal(got, []string{"pool-snap-6"}) {
		t.Errorf("records after Repair: %v, want pool-snap-6's only", got)
	}
	for _, words := range [][]string{{"pool-snap-7", "moby/3/old", "moby/12/cid"}, {"pool-snap-8", "older dmsize"}, {"pool-snap-9", "no record"}} {
		if n := h.lines(logrus.InfoLevel, words...); n != 1 {
			t.Errorf("%d log lines with %q, want 1", n, words)
		}
	}
	h.logs.Reset()
	if n := Repair(nil, h.state, h.log); n != 0 || len(h.logs.AllEntries()) != 0 {
		t.Errorf("a second Repair: %d grown, logged %d lines", n, len(h.logs.AllEntries()))
	}
}

// With no way to read containerd's records (an older dmsize never said where they are),
// Repair restores nothing, and drops the records no record of containerd could prove.
func TestRepairWithoutContainerdsRecords(t *testing.T) {
	h := newHost(t)
	staleRecords(t, h)
	if n := Repair(nil, h.state, h.log); n != 0 {
		t.Errorf("Repair grew %d devices without reading containerd's records", n)
	}
	for _, dev := range []string{"pool-snap-6", "pool-snap-7", "pool-snap-8"} {
		if got := h.dm.size(dev); got != 10<<30 {
			t.Errorf("%s: %d GiB", dev, got>>30)
		}
	}
	if got := h.recorded(t); !slices.Equal(got, []string{"pool-snap-6", "pool-snap-7", "pool-snap-9"}) {
		t.Errorf("records: %v, want all but the one without a snapshot", got)
	}
}

// New drops the same records (the plugin's start when Repair did not run).
func TestNewDropsUnprovenRecords(t *testing.T) {
	h := newHost(t)
	staleRecords(t, h)
	h.start(t)
	if got := h.recorded(t); !slices.Equal(got, []string{"pool-snap-6"}) {
		t.Errorf("records after New: %v, want pool-snap-6's only", got)
	}
	if n := h.lines(logrus.InfoLevel, "pool-snap-7", "moby/3/old"); n != 1 {
		t.Errorf("%d log lines for pool-snap-7", n)
	}
}

// Persisted counts a record only when it is the device's snapshot's; Persist records the
// snapshot, and replaces a record of another snapshot, whatever its size.
func TestPersistProvesTheSnapshot(t *testing.T) {
	h := newHost(t)
	b := h.start(t)
	h.record(t, "pool-snap-7", 4, 48<<30, "moby/3/old")
	h.record(t, "pool-snap-8", 5, 48<<30, "")
	for _, dev := range []string{"pool-snap-7", "pool-snap-8"} {
		if got, err := b.Persisted(dev); err != nil || got != 10<<30 {
			t.Errorf("Persisted(%s) with another snapshot's record: %d GiB, %v; want containerd's 10", dev, got>>30, err)
		}
	}
	if err := b.Persist("pool-snap-7", 20<<30); err != nil {
		t.Fatal(err)
	}
	r, _, _ := b.sizes.get("pool-snap-7")
	if r.Size != 20<<30 || r.Snapshot != "moby/12/cid" || r.ThinID != 4 {
		t.Errorf("record after Persist: %+v, want 20 GiB for moby/12/cid", r)
	}
	if got, err := b.Persisted("pool-snap-7"); err != nil || got != 20<<30 {
		t.Errorf("Persisted after Persist: %d GiB, %v", got>>30, err)
	}
	if err := b.Persist("pool-snap-7", 15<<30); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := b.sizes.get("pool-snap-7"); r.Size != 20<<30 {
		t.Errorf("Persist lowered its own snapshot's size: %+v", r)
	}
}

// containerd-sync raises containerd's size only for the records of the device's snapshot.
func TestSyncProvesTheSnapshot(t *testing.T) {
	h := newHost(t)
	staleRecords(t, h)
	h.stop()
	_, out, err := Sync(h.Root, h.state, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Synced{}
	for _, s := range out {
		got[s.Device] = s
	}
	if s := got["pool-snap-6"]; s.Skipped != "" || s.To != 24<<30 {
		t.Errorf("pool-snap-6: %+v, want raised to 24 GiB", s)
	}
	if s := got["pool-snap-7"]; !strings.Contains(s.Skipped, "moby/3/old") || s.To != 10<<30 {
		t.Errorf("pool-snap-7: %+v, want left: another snapshot's", s)
	}
	if s := got["pool-snap-8"]; !strings.Contains(s.Skipped, "older dmsize") || s.To != 10<<30 {
		t.Errorf("pool-snap-8: %+v, want left: no snapshot recorded", s)
	}
	devs, err := h.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if devs["pool-snap-7"].Size != 10<<30 || devs["pool-snap-8"].Size != 10<<30 || devs["pool-snap-6"].Size != 24<<30 {
		t.Errorf("containerd's records after Sync: %+v", devs)
	}
}

// Where containerd's records are is kept beside the sizes, not among them: the sizes' directory
// is empty once every sized device is gone (the VM test waits for that after docker rm).
func TestRecordsLocationOutsideSizes(t *testing.T) {
	state := t.TempDir()
	if err := saveRecords(state, Records{Root: "/r", Pool: "p"}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(SizesDir(state)); len(ents) != 0 {
		t.Fatalf("%s holds %d entries, want none", SizesDir(state), len(ents))
	}
	r, err := loadRecords(state)
	if err != nil || r.Root != "/r" || r.Pool != "p" {
		t.Fatalf("loadRecords: %+v %v", r, err)
	}
}

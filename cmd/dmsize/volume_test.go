package main

import (
	"testing"

	"github.com/dmsize/dmsize/controlapi"
)

var dataVolume = controlapi.Volume{Name: "data", SizeBytes: 4 * G, FS: "ext4", State: "ready", Device: "dmsize-vol-1", Mounts: 1,
	FSSizeBytes: 3*G + 900<<20, FSUsedBytes: 33 << 20, Created: "2026-12-02T15:00:00Z"}

func TestVolumeStatus(t *testing.T) {
	ctl := controlAt(t)
	ctl.set("GET "+controlapi.PathVolumes, answer{body: []controlapi.Volume{dataVolume}})
	r := dmsize(t, nil, "", "--socket", ctl.sock, "volume", "status", "data")
	r.check(t, exitOK)
	want := "NAME  SIZE  FS    STATE  MOUNTS  FS SIZE   FS USED  DEVICE\n" +
		"data  4GiB  ext4  ready  1       3.879GiB  33MiB    dmsize-vol-1\n"
	if r.stdout != want {
		t.Errorf("stdout\n%q\nwant\n%q", r.stdout, want)
	}
	if got := ctl.asked(); got[len(got)-1] != "GET /v1/volumes?name=data" {
		t.Errorf("asked %q", got)
	}
}

func TestVolumeGrow(t *testing.T) {
	ctl := controlAt(t)
	ctl.set("POST "+controlapi.PathVolumeGrow, answer{body: controlapi.VolumeGrowResult{Volume: dataVolume, Action: controlapi.ActionGrown, BeforeBytes: 2 * G, DurationMs: 640}})
	r := dmsize(t, nil, "", "--socket", ctl.sock, "volume", "grow", "data", "4G")
	r.check(t, exitOK)
	if want := "volume data: 2GiB -> 4GiB (grown in 640ms)\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if got := ctl.asked(); !equal(got, []string{`POST /v1/volumes/grow {"name":"data","size":"4G"}`}) {
		t.Errorf("asked %q", got)
	}
	ctl.set("POST "+controlapi.PathVolumeGrow, answer{status: 409, body: controlapi.Error{Kind: controlapi.KindRefused, Message: "volume data is 4GiB; dmsize never shrinks a volume (asked 3GiB)"}})
	r = dmsize(t, nil, "", "--socket", ctl.sock, "volume", "grow", "data", "3G")
	r.check(t, exitRefused)
	if want := "dmsize: grow volume data to 3GiB: volume data is 4GiB; dmsize never shrinks a volume (asked 3GiB)\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	r = dmsize(t, nil, "", "--socket", ctl.sock, "volume", "grow", "data", "+1G")
	r.check(t, exitUsage)
	r = dmsize(t, nil, "", "--socket", ctl.sock, "volume", "frob")
	r.check(t, exitUsage)
}

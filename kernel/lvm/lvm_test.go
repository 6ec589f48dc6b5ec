package lvm

import (
	"errors"
	"testing"
)

func TestSplit(t *testing.T) {
	for in, want := range map[string][2]string{
		"docker-thinpool":          {"docker", "thinpool"},
		"docker-thinpool-tpool":    {"docker", "thinpool"},
		"my--vg-thin--pool":        {"my-vg", "thin-pool"},
		"vg-lv--x-tpool":           {"vg", "lv-x"},
		"a--b--c-d":                {"a-b-c", "d"},
		"docker-254:0-131101-pool": {"docker", "254:0-131101-pool"},
	} {
		vg, lv, ok := Split(in)
		if !ok || vg != want[0] || lv != want[1] {
			t.Errorf("Split(%q) = %q %q %v; want %q %q", in, vg, lv, ok, want[0], want[1])
		}
	}
	for _, bad := range []string{"nodash", "-lv", "vg-", "vg--only"} {
		if _, _, ok := Split(bad); ok {
			t.Errorf("Split(%q) split", bad)
		}
	}
	for want, in := range map[string][2]string{
		"docker-dmsize--vol--3": {"docker", "dmsize-vol-3"},
		"my--vg-thin--pool":     {"my-vg", "thin-pool"},
		"docker-thinpool":       {"docker", "thinpool"},
	} {
		if got := DMName(in[0], in[1]); got != want {
			t.Errorf("DMName(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}
}

func TestUnchanged(t *testing.T) {
	if !Unchanged(errors.New("lvm lvextend: exit status 5:   New size (1024 extents) matches existing size (1024 extents).")) {
		t.Error("a repeat is not unchanged")
	}
	if Unchanged(errors.New("Insufficient free space: 256 extents needed")) {
		t.Error("a full VG is unchanged")
	}
}

package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/kernel/errs"
)

type fakeTools struct {
	dump     string
	checkErr error
	calls    []string
}

func (f *fakeTools) Dump(p string) ([]byte, error) {
	f.calls = append(f.calls, "dump "+p)
	return []byte(f.dump), nil
}
func (f *fakeTools) Check(p string) error { f.calls = append(f.calls, "check "+p); return f.checkErr }

// engineHome lays out a stopped loop-lvm engine's driver home: the loop files (the metadata
// file from thin_restore, transaction 7), its records, and daemon.json.
func engineHome(t *testing.T) (home, daemonJSON string, tools *fakeTools) {
	t.Helper()
	home = filepath.Join(t.TempDir(), "devicemapper")
	write := func(name, s string) {
		p := filepath.Join(home, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sb, err := os.ReadFile("../kernel/thin/testdata/superblock-tid7.bin")
	if err != nil {
		t.Fatal(err)
	}
	write("devicemapper/metadata", string(sb)+strings.Repeat("\x00", 3*4096))
	write("devicemapper/data", "")
	write("metadata/transaction-metadata", `{"open_transaction_id":7,"device_hash":"4f3c","device_id":4}`)
	write("metadata/deviceset-metadata", `{"next_device_id":5,"BaseDeviceUUID":"u","BaseDeviceFilesystem":"xfs"}`)
	write("metadata/base", `{"device_id":1,"size":10737418240,"transaction_id":1,"initialized":true,"deleted":false}`)
	write("metadata/4f3c", `{"device_id":4,"size":21474836480,"transaction_id":5,"initialized":true,"deleted":false}`)
	write("metadata/.tmp123", `not json`)
	daemonJSON = filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(daemonJSON, []byte(`{"storage-driver":"devicemapper","storage-opts":["dm.basesize=10G","dm.loopdatasize=100G"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	dump, err := os.ReadFile("testdata/two-devices.xml")
	if err != nil {
		t.Fatal(err)
	}
	return home, daemonJSON, &fakeTools{dump: string(dump)}
}

func TestReadSource(t *testing.T) {
	home, dj, tools := engineHome(t)
	src, err := ReadSource(home, dj, tools)
	if err != nil {
		t.Fatal(err)
	}
	if src.MetaFile != filepath.Join(home, "devicemapper/metadata") || src.MetaFileBytes != 4*4096 || src.HeldRoot || src.CheckErr != nil ||
		src.EngineTransaction != 7 || src.Meta.Transaction != 7 || len(src.Meta.Devices) != 2 || len(src.StorageOpts) != 2 {
		t.Fatalf("source %+v", src)
	}
	if len(src.EngineDevices) != 2 || src.EngineDevices["base"].DeviceID != 1 || src.EngineDevices["4f3c"].Size != 20<<30 {
		t.Fatalf("engine devices %+v", src.EngineDevices)
	}
	// It plans: the engine's devices are the dump's.
	src2, host, tgt := goodSource()
	src.MetaFileBytes = src2.MetaFileBytes
	if _, err := MakePlan(src, host, tgt); err != nil {
		t.Fatal(err)
	}
}

func TestReadSourceRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spoil   func(home, dj string, tools *fakeTools)
		want    string
		refusal bool
	}{
		{"already on a thin pool", func(home, dj string, tools *fakeTools) {
			os.WriteFile(dj, []byte(`{"storage-opts":["dm.thinpooldev=/dev/mapper/docker-thinpool"]}`), 0o644)
		}, "already runs on the thin pool /dev/mapper/docker-thinpool", true},
		{"another driver", func(home, dj string, tools *fakeTools) {
			os.WriteFile(dj, []byte(`{"storage-driver":"overlay2"}`), 0o644)
		}, `is "overlay2", not devicemapper`, true},
		{"no loop files", func(home, dj string, tools *fakeTools) { os.Remove(filepath.Join(home, "devicemapper/data")) }, "no loop-lvm pool", true},
		{"a bad daemon.json", func(home, dj string, tools *fakeTools) { os.WriteFile(dj, []byte(`{`), 0o644) }, "daemon.json", false},
		{"no superblock", func(home, dj string, tools *fakeTools) {
			os.WriteFile(filepath.Join(home, "devicemapper/metadata"), make([]byte, 8192), 0o600)
		}, "no superblock", false},
		{"thin_dump disagrees", func(home, dj string, tools *fakeTools) {
			tools.dump = strings.Replace(tools.dump, `transaction="7"`, `transaction="8"`, 1)
		}, "thin_dump says transaction 8, the superblock 7", false},
		{"no transaction record", func(home, dj string, tools *fakeTools) {
			os.Remove(filepath.Join(home, "metadata/transaction-metadata"))
		}, "transaction record", false},
		{"a bad device record", func(home, dj string, tools *fakeTools) {
			os.WriteFile(filepath.Join(home, "metadata/9a"), []byte("{"), 0o600)
		}, "devmeta", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home, dj, tools := engineHome(t)
			tc.spoil(home, dj, tools)
			_, err := ReadSource(home, dj, tools)
			if err == nil || !strings.Contains(err.Error(), tc.want) || errs.IsRefusal(err) != tc.refusal {
				t.Fatalf("got %v (refusal %v), want %q (refusal %v)", err, errs.IsRefusal(err), tc.want, tc.refusal)
			}
		})
	}
}

// A failing thin_check is the plan's to refuse: no dump is read, the superblock still speaks.
// A held root in the superblock is read too. No daemon.json is no options.
func TestReadSourceFacts(t *testing.T) {
	home, dj, tools := engineHome(t)
	tools.checkErr = errors.New("bad checksum in space map")
	held, err := os.ReadFile("../kernel/thin/testdata/superblock-tid7-held97.bin")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(home, "devicemapper/metadata"), append(held, make([]byte, 3*4096)...), 0o600)
	os.Remove(dj)
	src, err := ReadSource(home, dj, tools)
	if err != nil {
		t.Fatal(err)
	}
	if src.CheckErr == nil || !src.HeldRoot || src.Meta.Transaction != 7 || src.StorageOpts != nil || len(tools.calls) != 1 {
		t.Fatalf("source %+v, calls %v", src, tools.calls)
	}
	_, host, tgt := goodSource()
	_, err = MakePlan(src, host, tgt)
	if err == nil || !strings.Contains(err.Error(), "thin_check fails") || !strings.Contains(err.Error(), "held root") {
		t.Fatalf("plan: %v", err)
	}
}

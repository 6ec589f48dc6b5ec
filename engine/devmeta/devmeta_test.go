package devmeta

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const hash = "dc1e4d0f702ed8086819a08fe1c722942f8b20aa937eba66088d077dc3fed5cb"

// As the daemon writes it (deviceset.go saveMetadata), plus a field a future daemon might add.
const file = `{"device_id":4,"size":10737418240,"transaction_id":5,"initialized":false,"deleted":false,"future":{"x":1}}`

func TestHashFromDeviceName(t *testing.T) {
	for in, want := range map[string]string{
		"docker-254:0-131101-" + hash:           hash,
		"docker-254:0-131101-" + hash + "-init": hash + "-init",
		"docker-8:1-4-base":                     "base",
	} {
		if got, err := HashFromDeviceName(in); err != nil || got != want {
			t.Errorf("HashFromDeviceName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "docker-thinpool", "docker-254:0-131101-pool", hash[:63]} {
		if got, err := HashFromDeviceName(bad); err == nil {
			t.Errorf("HashFromDeviceName(%q) = %q, want an error", bad, got)
		}
	}
}

func TestPathRefusesForeignNames(t *testing.T) {
	for _, bad := range []string{"deviceset-metadata", "transaction-metadata", "../" + hash, hash + "/x", ""} {
		if _, err := Path("/var/lib/docker/devicemapper", bad); err == nil {
			t.Errorf("Path accepted %q", bad)
		}
	}
	if p, err := Path("/var/lib/docker/devicemapper", hash); err != nil || p != "/var/lib/docker/devicemapper/metadata/"+hash {
		t.Fatalf("Path = %q, %v", p, err)
	}
}

func TestSetSize(t *testing.T) {
	dir, p := metaFile(t, file)
	old, err := SetSize(p, 42<<30)
	if err != nil || old != 10<<30 {
		t.Fatalf("SetSize: %d, %v", old, err)
	}
	var got map[string]any
	b, _ := os.ReadFile(p)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["size"].(float64) != 42<<30 || got["device_id"].(float64) != 4 || got["transaction_id"].(float64) != 5 {
		t.Fatalf("rewritten file %s", b)
	}
	if f, ok := got["future"].(map[string]any); !ok || f["x"].(float64) != 1 {
		t.Fatalf("unknown field lost: %s", b)
	}
	d, err := Read(p)
	if err != nil || d.Size != 42<<30 || d.DeviceID != 4 {
		t.Fatalf("Read: %+v, %v", d, err)
	}
	// Repeating is a no-op; lowering is refused and changes nothing.
	if _, err := SetSize(p, 42<<30); err != nil {
		t.Fatal(err)
	}
	if _, err := SetSize(p, 20<<30); err == nil || !strings.Contains(err.Error(), "refusing to lower") {
		t.Fatalf("lowering: %v", err)
	}
	if d, _ := Read(p); d.Size != 42<<30 {
		t.Fatalf("size after refused lowering: %d", d.Size)
	}
	// No temp files left behind; the daemon would skip dot files anyway.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory has %d entries", len(ents))
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
}

// engine simulates the daemon between SetSize's read and its swap: act runs with the count of
// calls so far.
func engine(t *testing.T, act func(call int)) *int {
	t.Helper()
	calls := 0
	beforeExchange = func() {
		calls++
		act(calls)
	}
	t.Cleanup(func() { beforeExchange = nil })
	return &calls
}

// metaFile writes a device's metadata file into a new directory.
func metaFile(t *testing.T, content string) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, hash)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

// onlyFile fails unless dir holds nothing but the device's file: no temp files left.
func onlyFile(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	if len(ents) > 1 || len(ents) == 1 && ents[0].Name() != hash {
		names := []string{}
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v", names)
	}
}

func TestSetSizeConcurrentDelete(t *testing.T) {
	dir, p := metaFile(t, file)
	engine(t, func(int) { os.Remove(p) })
	_, err := SetSize(p, 42<<30)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("SetSize on a file deleted meanwhile: %v, want os.ErrNotExist", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("the deleted file came back: %v", err)
	}
	onlyFile(t, dir)
}

// The engine's rewrite meanwhile wins the first round; the retry sizes what it wrote.
func TestSetSizeConcurrentRewrite(t *testing.T) {
	dir, p := metaFile(t, file)
	rewritten := strings.Replace(file, `"initialized":false`, `"initialized":true`, 1)
	calls := engine(t, func(n int) {
		if n > 1 {
			return
		}
		if err := os.WriteFile(p+".tmp", []byte(rewritten), 0o600); err != nil {
			t.Error(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Error(err)
		}
	})
	if _, err := SetSize(p, 42<<30); err != nil {
		t.Fatal(err)
	}
	if *calls != 2 {
		t.Fatalf("%d attempts, want 2", *calls)
	}
	d, err := Read(p)
	if err != nil || d.Size != 42<<30 || !d.Initialized {
		t.Fatalf("after a rewrite meanwhile: %+v, %v; want the new size and the engine's initialized", d, err)
	}
	onlyFile(t, dir)
}

func TestSetSizeGivesUpOnConstantRewrites(t *testing.T) {
	dir, p := metaFile(t, file)
	var last string
	engine(t, func(n int) {
		last = strings.Replace(file, `"transaction_id":5`, fmt.Sprintf(`"transaction_id":%d`, 5+n), 1)
		if err := os.WriteFile(p, []byte(last), 0o600); err != nil {
			t.Error(err)
		}
	})
	if _, err := SetSize(p, 42<<30); err == nil {
		t.Fatal("SetSize succeeded while the engine rewrote the file every time")
	}
	if b, _ := os.ReadFile(p); string(b) != last {
		t.Fatalf("file %s, want the engine's last write %s", b, last)
	}
	onlyFile(t, dir)
}

func TestSetSizeRefusesDeleted(t *testing.T) {
	deleted := strings.Replace(file, `"deleted":false`, `"deleted":true`, 1)
	dir, p := metaFile(t, deleted)
	if _, err := SetSize(p, 42<<30); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("SetSize on a deleted device: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != deleted {
		t.Fatalf("file changed: %s", b)
	}
	onlyFile(t, dir)
}

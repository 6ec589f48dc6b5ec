package devmeta

import (
	"encoding/json"
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
	dir := t.TempDir()
	p := filepath.Join(dir, hash)
	if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
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

package graphdriver

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/engine"
)

// withMetadata makes a backend whose engine's metadata directory holds files (name -> content).
func withMetadata(t *testing.T, files map[string]string) (*Backend, string) {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "devicemapper", "metadata")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &Backend{storage: engine.Storage{Driver: "devicemapper", DataRoot: root + "/"}}, dir
}

func TestPersisted(t *testing.T) {
	b, _ := withMetadata(t, map[string]string{
		hash:           `{"device_id":42,"size":10737418240,"transaction_id":7,"initialized":false,"deleted":false}`,
		hash + "-init": `{"device_id":41,"size":"big"}`,
	})
	for _, c := range []struct {
		name, device string
		want         int64
		wantErr      error // errors.Is, when set
		errText      string
	}{
		{name: "size", device: device, want: 10737418240},
		{name: "init layer, malformed", device: device + "-init", errText: "cannot unmarshal"},
		{name: "no file", device: "docker-254:0-131101-" + strings.Repeat("f", 64), wantErr: os.ErrNotExist},
		{name: "not a thin device name", device: "docker-254:0-131101-pool", errText: "not a devicemapper thin device name"},
		{name: "a path, not a name", device: "../../etc/passwd", errText: "not a devicemapper thin device name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := b.Persisted(c.device)
			if c.wantErr == nil && c.errText == "" {
				if err != nil || got != c.want {
					t.Errorf("got %d, %v; want %d", got, err, c.want)
				}
				return
			}
			if err == nil || (c.wantErr != nil && !errors.Is(err, c.wantErr)) || !strings.Contains(err.Error(), c.errText) {
				t.Errorf("error %v, want %v %q", err, c.wantErr, c.errText)
			}
			if got != 0 {
				t.Errorf("size %d along with an error", got)
			}
		})
	}
}

func TestPersist(t *testing.T) {
	const before = `{"device_id":42,"size":10737418240,"transaction_id":7,"initialized":false,"deleted":false,"unknown":{"kept":[1,2]}}`
	for _, c := range []struct {
		name, device string
		content      string // of the device's metadata file; none when empty
		size         int64
		want         map[string]any // the file's fields after; the file is unchanged when nil
		wantErr      error
		errText      string
	}{
		{name: "grow", device: device, content: before, size: 21474836480, want: map[string]any{
			"device_id": 42.0, "size": 21474836480.0, "transaction_id": 7.0, "initialized": false, "deleted": false, "unknown": map[string]any{"kept": []any{1.0, 2.0}}}},
		{name: "same size", device: device, content: before, size: 10737418240},
		{name: "lower", device: device, content: before, size: 1 << 30, errText: "refusing to lower"},
		{name: "deleted device", device: device, content: `{"size":1024,"deleted":true}`, size: 2048, errText: "marked deleted"},
		{name: "malformed", device: device, content: `{"size":`, size: 2048, errText: "unexpected EOF"},
		{name: "no file", device: device, size: 2048, wantErr: os.ErrNotExist},
		{name: "not a thin device name", device: "docker-thinpool", content: before, size: 2048, errText: "not a devicemapper thin device name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{}
			if c.content != "" {
				files[hash] = c.content
			}
			b, dir := withMetadata(t, files)
			err := b.Persist(c.device, c.size)
			if c.wantErr != nil || c.errText != "" {
				if err == nil || (c.wantErr != nil && !errors.Is(err, c.wantErr)) || !strings.Contains(err.Error(), c.errText) {
					t.Errorf("error %v, want %v %q", err, c.wantErr, c.errText)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, hash))
			if c.content == "" {
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("Persist made a metadata file (%v)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.want == nil {
				if string(got) != c.content {
					t.Errorf("file changed to %s", got)
				}
				return
			}
			var fields map[string]any
			if err := json.Unmarshal(got, &fields); err != nil {
				t.Fatalf("%s: %v", got, err)
			}
			gotJSON, _ := json.Marshal(fields)
			wantJSON, _ := json.Marshal(c.want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("file after:\n got %s\nwant %s", gotJSON, wantJSON)
			}
			if n, err := b.Persisted(c.device); err != nil || n != c.size {
				t.Errorf("Persisted after Persist: %d, %v; want %d", n, err, c.size)
			}
		})
	}
}

func TestBaseSize(t *testing.T) {
	b, _ := withMetadata(t, map[string]string{"base": `{"device_id":1,"size":10737418240,"initialized":true}`})
	if got, err := b.BaseSize(); err != nil || got != 10737418240 {
		t.Errorf("BaseSize: %d, %v; want 10737418240", got, err)
	}
	b, _ = withMetadata(t, nil)
	if got, err := b.BaseSize(); !errors.Is(err, os.ErrNotExist) || got != 0 {
		t.Errorf("BaseSize without a base: %d, %v; want 0 and not exist", got, err)
	}
	b, _ = withMetadata(t, map[string]string{"base": `not json`})
	if got, err := b.BaseSize(); err == nil || got != 0 {
		t.Errorf("BaseSize of a malformed file: %d, %v; want 0 and an error", got, err)
	}
}

func TestProvisioned(t *testing.T) {
	other := strings.Repeat("e", 64)
	b, dir := withMetadata(t, map[string]string{
		"base":                  `{"device_id":1,"size":10000}`,
		hash:                    `{"device_id":42,"size":20000,"deleted":false}`,
		hash + "-init":          `{"device_id":41,"size":300}`,
		other:                   `{"device_id":43,"size":500000,"deleted":true}`,
		strings.Repeat("d", 64): `{"size":`,
		"deviceset-metadata":    `{"next_device_id":44,"BaseDeviceUUID":"x","size":900000}`,
		"transaction-metadata":  `{"open_transaction_id":8,"size":900000}`,
		".tmp" + hash:           `{"size":900000}`,
		"ABCDEF" + hash[6:]:     `{"size":900000}`,
	})
	if err := os.Mkdir(filepath.Join(dir, strings.Repeat("c", 64)), 0o700); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Provisioned(); err != nil || got != 30300 {
		t.Errorf("Provisioned: %d, %v; want 30300 (base, the layer and its init; not the deleted, the malformed, the pool's files)", got, err)
	}

	b, _ = withMetadata(t, nil)
	if got, err := b.Provisioned(); err != nil || got != 0 {
		t.Errorf("Provisioned of no device: %d, %v", got, err)
	}

	b = &Backend{storage: engine.Storage{DataRoot: filepath.Join(t.TempDir(), "none")}}
	if got, err := b.Provisioned(); !errors.Is(err, os.ErrNotExist) || got != 0 {
		t.Errorf("Provisioned without a metadata directory: %d, %v; want 0 and not exist", got, err)
	}
}

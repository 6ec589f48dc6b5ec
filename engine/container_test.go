package engine

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/size"
)

const (
	webID   = "4f8c2a7d9e1b3c5a6f0d8e2b4a6c8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d"
	dbID    = "4f8c9b1a2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3"
	plainID = "9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
)

// sizedEngine is a fake engine with two containers asking for a size, one stopped, and one
// that does not.
func sizedEngine(t *testing.T, apiVersion string) *fakeEngine {
	f := newFakeEngine(t, apiVersion)
	f.add(fakeContainer{
		ID: webID, Name: "/web", Labels: map[string]string{size.Label: "20G", "app": "web"},
		Running: true, Readonly: true, Driver: "devicemapper",
		Data: map[string]string{"DeviceId": "7", "DeviceName": "docker-254:0-131101-0a1b2c", "DeviceSize": "10737418240"},
	})
	f.add(fakeContainer{ID: dbID, Name: "/db", Labels: map[string]string{size.Label: "50G"}, Driver: "devicemapper"})
	f.add(fakeContainer{ID: plainID, Name: "/plain", Driver: "overlay2", Data: map[string]string{"MergedDir": "/x"}})
	return f
}

func TestContainer(t *testing.T) {
	f := sizedEngine(t, "1.41")
	c := f.client()
	want := Container{
		ID: webID, Name: "web", Labels: map[string]string{size.Label: "20G", "app": "web"},
		Running: true, ReadonlyRootfs: true, Driver: "devicemapper",
		DeviceName: "docker-254:0-131101-0a1b2c", DeviceID: 7, DeviceSize: 10 << 30,
	}
	// By full ID, name and unique short ID: always the full ID back.
	for _, ref := range []string{webID, "web", webID[:12], "4f8c2"} {
		got, err := c.Container(ctxFor(t), ref)
		if err != nil {
			t.Fatalf("Container(%q): %v", ref, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Container(%q)\n got %+v\nwant %+v", ref, got, want)
		}
	}
	got, err := c.Container(ctxFor(t), "plain")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Container{ID: plainID, Name: "plain", Driver: "overlay2"}); !reflect.DeepEqual(got, want) {
		t.Errorf("Container(plain)\n got %+v\nwant %+v", got, want)
	}
}

func TestContainerErrors(t *testing.T) {
	c := sizedEngine(t, "1.41").client()
	_, err := c.Container(ctxFor(t), "gone")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("missing container: %v, want ErrNotFound", err)
	}
	// "4f8c" is a prefix of two IDs: the engine refuses it, and that is not "not found".
	_, err = c.Container(ctxFor(t), "4f8c")
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "multiple IDs") {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if _, err = c.Container(ctxFor(t), ""); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("empty reference: %v", err)
	}
}

func TestSizedContainers(t *testing.T) {
	f := sizedEngine(t, "1.41")
	ids, err := f.client().SizedContainers(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ids)
	if want := []string{webID, dbID}; !reflect.DeepEqual(ids, want) {
		t.Errorf("SizedContainers %q, want %q", ids, want)
	}
	f.locked(func() { f.fail["list"] = 500 })
	if _, err := f.client().SizedContainers(ctxFor(t)); err == nil || !strings.Contains(err.Error(), "listing containers") {
		t.Errorf("SizedContainers on a failing engine: %v", err)
	}
}

// TestOldEngine: an engine that speaks API 1.30 (Docker 17.06) is spoken to in 1.30.
func TestOldEngine(t *testing.T) {
	f := sizedEngine(t, "1.30")
	c := f.client()
	ct, err := c.Container(ctxFor(t), "web")
	if err != nil {
		t.Fatal(err)
	}
	if ct.ID != webID || ct.DeviceID != 7 {
		t.Errorf("Container on API 1.30: %+v", ct)
	}
	ids, err := c.SizedContainers(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 {
		t.Errorf("SizedContainers on API 1.30: %q", ids)
	}
	for _, p := range f.requested() {
		if p != "/_ping" && !strings.HasPrefix(p, "/v1.30/") {
			t.Errorf("request %s on an API 1.30 engine", p)
		}
	}
}

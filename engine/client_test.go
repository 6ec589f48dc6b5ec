package engine

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/system"
)

func TestNew(t *testing.T) {
	c, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.api.DaemonHost(); got != "unix:///var/run/docker.sock" {
		t.Errorf("default host %q", got)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	if _, err := New("no-scheme"); err == nil || !strings.HasPrefix(err.Error(), "engine: ") {
		t.Errorf("New with a bad host: %v", err)
	}
}

func TestStorage(t *testing.T) {
	f := newFakeEngine(t, "1.41")
	f.locked(func() {
		f.info = system.Info{
			Driver: "devicemapper", DockerRootDir: "/var/lib/docker/", ServerVersion: "20.10.24",
			DriverStatus: [][2]string{
				{"Pool Name", "docker-254:0-131101-pool"},
				{"Pool Blocksize", "65.54kB"},
				{"Data loop file", "/var/lib/docker/devicemapper/devicemapper/data"},
				{"Metadata loop file", "/var/lib/docker/devicemapper/devicemapper/metadata"},
				{"Deferred Removal Enabled", "true"},
				{"Deferred Deletion Enabled", "true"},
			},
		}
	})
	s, err := f.client().Storage(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	want := Storage{
		Driver: "devicemapper", PoolName: "docker-254:0-131101-pool", DataRoot: "/var/lib/docker/",
		DeferredRemoval: true, DeferredDeletion: true, ServerVersion: "20.10.24",
		DataLoopFile: "/var/lib/docker/devicemapper/devicemapper/data",
		MetaLoopFile: "/var/lib/docker/devicemapper/devicemapper/metadata",
	}
	if s != want {
		t.Errorf("Storage\n got %+v\nwant %+v", s, want)
	}
	if h := s.Home(); h != "/var/lib/docker/devicemapper" {
		t.Errorf("Home %q", h)
	}
	if p := f.requested(); p[len(p)-1] != "/v1.41/info" {
		t.Errorf("requests %q, want /v1.41/info last", p)
	}
}

func TestStorageSnapshotter(t *testing.T) {
	f := newFakeEngine(t, "1.45")
	f.locked(func() {
		f.info = system.Info{Driver: "devmapper", DockerRootDir: "/var/lib/docker", ServerVersion: "26.1.5",
			DriverStatus: [][2]string{{"driver-type", "io.containerd.snapshotter.v1"}}}
	})
	s, err := f.client().Storage(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.Snapshotter != "devmapper" || s.Driver != "devmapper" || s.PoolName != "" {
		t.Errorf("Storage %+v, want the devmapper snapshotter and no graph-driver pool", s)
	}
}

func TestStorageError(t *testing.T) {
	f := newFakeEngine(t, "1.41")
	f.locked(func() { f.fail["info"] = http.StatusInternalServerError })
	if _, err := f.client().Storage(ctxFor(t)); err == nil || !strings.Contains(err.Error(), "docker info") {
		t.Errorf("Storage on a failing engine: %v", err)
	}
}

// TestWaitReady: the engine's socket appears only after the plugin started, as at daemon boot.
func TestWaitReady(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	c, err := New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	started := make(chan struct{})
	go func() {
		defer close(started)
		time.Sleep(150 * time.Millisecond)
		startFakeEngine(t, sock, "1.41")
	}()
	start := time.Now()
	err = c.WaitReady(ctxFor(t))
	<-started
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("ready after %v, before the engine listened", d)
	}
}

func TestWaitReadyGivesUp(t *testing.T) {
	c, err := New("unix://" + filepath.Join(t.TempDir(), "none.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitReady without an engine: %v", err)
	}
}

func TestStorageWithin(t *testing.T) {
	st := Storage{DataRoot: "/srv/docker/", DataLoopFile: "/srv/docker/devicemapper/devicemapper/data", MetaLoopFile: "/elsewhere/meta"}
	in := st.Within("/var/lib/docker")
	if in.DataRoot != "/var/lib/docker" || in.DataLoopFile != "/var/lib/docker/devicemapper/devicemapper/data" || in.MetaLoopFile != "/elsewhere/meta" || in.Home() != "/var/lib/docker/devicemapper" {
		t.Fatalf("%+v", in)
	}
	if same := (Storage{DataRoot: "/var/lib/docker", DataLoopFile: "/var/lib/docker-other/x"}).Within("/var/lib/docker"); same.DataLoopFile != "/var/lib/docker-other/x" {
		t.Fatalf("a sibling path moved: %+v", same)
	}
}

package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/metrics"
	"github.com/dmsize/dmsize/sizer"
)

// overlayEngine knows one container, "web", which is not on a thin pool; nothing else.
type overlayEngine struct{ sizer.Devices }

func (overlayEngine) Container(_ context.Context, ref string) (sizer.Container, error) {
	if ref == "web" {
		return sizer.Container{ID: strings.Repeat("a", 64), Name: "web", State: "running"}, nil
	}
	return sizer.Container{}, fmt.Errorf("container %s: %w", ref, sizer.ErrNotFound)
}
func (overlayEngine) SizedContainers(context.Context) ([]string, error) { return nil, nil }
func (overlayEngine) MountRootfs(context.Context, string) sizer.Mount   { return nil }
func (overlayEngine) Persisted(string) (int64, error)                   { return 0, nil }
func (overlayEngine) Persist(string, int64) error                       { return nil }
func (overlayEngine) Provisioned() (int64, error)                       { return 0, nil }

// The control API over its socket: each error kind a CLI maps to an exit code, and the answer
// before the sizer exists.
func TestControlAPI(t *testing.T) {
	dir := t.TempDir()
	l, _ := test.NewNullLogger()
	a := &app{cfg: config{}, log: l}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.serveControl(ctx, dir)
	c := controlapi.NewClient(filepath.Join(dir, controlapi.SocketName))
	var v controlapi.Version
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if v, err = c.Version(ctx); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if v.API != controlapi.APIVersion {
		t.Fatalf("version %+v", v)
	}
	kind := func(err error) string {
		var e *controlapi.Error
		if errors.As(err, &e) {
			return e.Kind
		}
		return fmt.Sprint(err)
	}
	if _, err := c.Containers(ctx); kind(err) != controlapi.KindUnavailable {
		t.Fatalf("before the sizer: %v", err)
	}
	a.giveUp(l, nil, "the engine's storage driver is \"overlay2\"")
	if _, err := c.Grow(ctx, controlapi.GrowRequest{Ref: "web", Size: "60G"}); kind(err) != controlapi.KindUnavailable || !strings.Contains(err.Error(), "overlay2") {
		t.Fatalf("after giving up: %v", err)
	}
	store, _ := sizer.OpenStore(t.TempDir(), l)
	e := overlayEngine{}
	a.setup.Store(&setUp{sizer: sizer.New(sizer.Config{Engine: e, Devices: e, Sizes: e, Store: store, Log: l})})
	for _, tc := range []struct {
		req  controlapi.GrowRequest
		kind string
		says string
	}{
		{controlapi.GrowRequest{Ref: "web", Size: "60X"}, controlapi.KindInvalid, "container web: size \"60X\""},
		{controlapi.GrowRequest{Size: "60G"}, controlapi.KindInvalid, "needs a container"},
		{controlapi.GrowRequest{Ref: "nosuch", Size: "60G"}, controlapi.KindNotFound, "container nosuch: grow to 60GiB: no such container"},
		{controlapi.GrowRequest{Ref: "web", Size: "60G"}, controlapi.KindRefused, "container web: grow to 60GiB: size 60GiB rejected: the container is not on the engine's devicemapper thin pool"},
	} {
		_, err := c.Grow(ctx, tc.req)
		if kind(err) != tc.kind || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%+v: %v (kind %s)", tc.req, err, kind(err))
		}
	}
	if list, err := c.Containers(ctx); err != nil || len(list) != 0 {
		t.Fatalf("containers: %v %v", list, err)
	}
	if list, err := c.Containers(ctx, "web"); err != nil || len(list) != 1 || list[0].State != "running" || list[0].Name != "web" {
		t.Fatalf("containers web: %+v %v", list, err)
	}
	if _, err := c.Containers(ctx, "nosuch"); kind(err) != controlapi.KindNotFound {
		t.Fatalf("containers nosuch: %v", err)
	}
	if _, err := controlapi.NewClient(filepath.Join(dir, "none.sock")).Version(ctx); !errors.Is(err, controlapi.ErrUnreachable) {
		t.Fatalf("no socket: %v", err)
	}
}

// GET /metrics on the control socket: 503 with the reason until the registry exists, then the
// text exposition.
func TestControlMetrics(t *testing.T) {
	l, _ := test.NewNullLogger()
	a := &app{cfg: config{}, log: l}
	srv := httptest.NewServer(a.controlMux())
	defer srv.Close()
	get := func() (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+controlapi.PathMetrics, nil)
		req.Header.Set("Accept", controlapi.MetricsAccept)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	a.giveUp(l, nil, "the engine's storage driver is \"overlay2\"")
	resp, body := get()
	var e controlapi.Error
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &e) != nil || e.Kind != controlapi.KindUnavailable || !strings.Contains(e.Message, "overlay2") {
		t.Fatalf("before the registry: %s %q", resp.Status, body)
	}
	m := metrics.New("docker-254:0-131101-pool")
	m.Sized("grown", nil)
	a.setup.Store(&setUp{metrics: m})
	resp, body = get()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("%s, Content-Type %q", resp.Status, ct)
	}
	for _, want := range []string{
		"# TYPE dmsize_pool_extensions_total counter\n",
		`dmsize_pool_extensions_total{part="data",pool="docker-254:0-131101-pool",result="ok"} 0` + "\n",
		"dmsize_containers_sized_total 1\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q:\n%s", want, body)
		}
	}
	// Over the socket, through the client the CLI uses.
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.serveControl(ctx, dir)
	c := controlapi.NewClient(filepath.Join(dir, controlapi.SocketName))
	var text []byte
	var ct string
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if text, ct, err = c.Metrics(ctx); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !strings.HasPrefix(ct, "text/plain") || !strings.Contains(string(text), "dmsize_containers_sized_total 1\n") {
		t.Fatalf("client: %v, %q\n%s", err, ct, text)
	}
}

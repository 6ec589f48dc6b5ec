package controlapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serve runs h on a unix socket in a fresh temporary directory and returns a client of it.
func serve(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return NewClient(sock)
}

// request is what the server saw of one request.
type request struct {
	method, uri, contentType, accept string
	body                             []byte
}

// recorder answers every request with status, contentType and body, and keeps what it saw.
func recorder(t *testing.T, status int, contentType, body string) (*Client, *request) {
	seen := &request{}
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*seen = request{method: r.Method, uri: r.URL.RequestURI(), contentType: r.Header.Get("Content-Type"), accept: r.Header.Get("Accept"), body: b}
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	return c, seen
}

// Every call: the method, path, query and request body it sends (the API's field names, as
// the plugin reads them), and the answer it decodes.
func TestClientCalls(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		call       func(c *Client) (any, error)
		method     string
		uri        string
		reqBody    string // JSON the plugin must receive; "" for none
		answer     string
		want       any
		wantAccept string
	}{
		{
			name: "version", method: "GET", uri: "/v1/version",
			call:   func(c *Client) (any, error) { return c.Version(ctx) },
			answer: `{"plugin":"1.2.3","api":"v1"}`,
			want:   Version{Plugin: "1.2.3", API: "v1"},
		},
		{
			name: "containers, all", method: "GET", uri: "/v1/containers",
			call:   func(c *Client) (any, error) { return c.Containers(ctx) },
			answer: `[{"id":"abc","name":"web","state":"running","size_bytes":10,"cached_bytes":10,"persisted_bytes":10,"held":false}]`,
			want:   []Container{{ID: "abc", Name: "web", State: "running", SizeBytes: 10, CachedBytes: 10, PersistedBytes: 10}},
		},
		{
			name: "containers, by ref", method: "GET", uri: "/v1/containers?ref=web&ref=a+b%26c",
			call: func(c *Client) (any, error) { return c.Containers(ctx, "web", "a b&c") },
			answer: `[{"id":"abc","name":"web","state":"exited","label":"20G","grown_bytes":30,"device":"docker-1","size_bytes":0,` +
				`"cached_bytes":20,"persisted_bytes":30,"fs_size_bytes":29,"fs_used_bytes":3,"held":true,` +
				`"last_action":"grown","last_error":"e","updated":"2024-01-02T03:04:05Z"}]`,
			want: []Container{{ID: "abc", Name: "web", State: "exited", Label: "20G", GrownBytes: 30, Device: "docker-1",
				CachedBytes: 20, PersistedBytes: 30, FSSizeBytes: 29, FSUsedBytes: 3, Held: true,
				LastAction: "grown", LastError: "e", Updated: "2024-01-02T03:04:05Z"}},
		},
		{
			name: "grow", method: "POST", uri: "/v1/containers/grow",
			call:    func(c *Client) (any, error) { return c.Grow(ctx, GrowRequest{Ref: "web", Size: "30G", DryRun: true}) },
			reqBody: `{"ref":"web","size":"30G","dry_run":true}`,
			answer: `{"container":{"id":"abc","name":"web","state":"running","size_bytes":30,"cached_bytes":20,"persisted_bytes":30,"held":false},` +
				`"action":"would-grow","before_bytes":20,"after_bytes":30,"strategy":"online","duration_ms":7,"message":"m"}`,
			want: GrowResult{Container: Container{ID: "abc", Name: "web", State: "running", SizeBytes: 30, CachedBytes: 20, PersistedBytes: 30},
				Action: ActionWouldGrow, BeforeBytes: 20, AfterBytes: 30, Strategy: "online", DurationMS: 7, Message: "m"},
		},
		{
			name: "grow, no dry run", method: "POST", uri: "/v1/containers/grow",
			call:    func(c *Client) (any, error) { return c.Grow(ctx, GrowRequest{Ref: "web", Size: "30G"}) },
			reqBody: `{"ref":"web","size":"30G"}`,
			answer:  `{"action":"grown","before_bytes":1,"after_bytes":2,"duration_ms":3,"message":""}`,
			want:    GrowResult{Action: ActionGrown, BeforeBytes: 1, AfterBytes: 2, DurationMS: 3},
		},
		{
			name: "pool", method: "GET", uri: "/v1/pool",
			call: func(c *Client) (any, error) { return c.Pool(ctx) },
			answer: `{"name":"docker-pool","kind":"direct-lvm","data_used_bytes":1,"data_size_bytes":2,"metadata_used_bytes":3,` +
				`"metadata_size_bytes":4,"mode":"rw","room_bytes":5,"room_why":"vg","guard":"on","threshold":0.8,"blocked":"b",` +
				`"provisioned_bytes":6,"overcommit_ratio":1.5,"containers_held":7,"containers_recorded":8}`,
			want: Pool{Name: "docker-pool", Kind: "direct-lvm", DataUsedBytes: 1, DataSizeBytes: 2, MetaUsedBytes: 3, MetaSizeBytes: 4,
				Mode: "rw", RoomBytes: 5, RoomWhy: "vg", Guard: "on", Threshold: 0.8, Blocked: "b", ProvisionedBytes: 6,
				OvercommitRatio: 1.5, ContainersHeld: 7, ContainersWithRec: 8},
		},
		{
			name: "extend", method: "POST", uri: "/v1/pool/extend",
			call:    func(c *Client) (any, error) { return c.Extend(ctx, ExtendRequest{Metadata: true, Size: "+1G"}) },
			reqBody: `{"metadata":true,"size":"+1G"}`,
			answer:  `{"part":"metadata","before_bytes":1,"after_bytes":2,"duration_ms":3,"message":"m"}`,
			want:    ExtendResult{Part: "metadata", BeforeBytes: 1, AfterBytes: 2, DurationMS: 3, Message: "m"},
		},
		{
			name: "extend data", method: "POST", uri: "/v1/pool/extend",
			call:    func(c *Client) (any, error) { return c.Extend(ctx, ExtendRequest{Size: "60G"}) },
			reqBody: `{"size":"60G"}`,
			answer:  `{"part":"data","before_bytes":1,"after_bytes":2,"duration_ms":3,"message":""}`,
			want:    ExtendResult{Part: "data", BeforeBytes: 1, AfterBytes: 2, DurationMS: 3},
		},
		{
			name: "volumes, all", method: "GET", uri: "/v1/volumes",
			call:   func(c *Client) (any, error) { return c.Volumes(ctx) },
			answer: `[]`,
			want:   []Volume{},
		},
		{
			name: "volumes, by name", method: "GET", uri: "/v1/volumes?name=v1&name=v2",
			call: func(c *Client) (any, error) { return c.Volumes(ctx, "v1", "v2") },
			answer: `[{"name":"v1","size_bytes":1,"fs":"ext4","state":"ready","device":"d","mounts":2,"fs_size_bytes":3,` +
				`"fs_used_bytes":4,"created":"2024-01-02T03:04:05Z"}]`,
			want: []Volume{{Name: "v1", SizeBytes: 1, FS: "ext4", State: "ready", Device: "d", Mounts: 2, FSSizeBytes: 3, FSUsedBytes: 4, Created: "2024-01-02T03:04:05Z"}},
		},
		{
			name: "volume grow", method: "POST", uri: "/v1/volumes/grow",
			call:    func(c *Client) (any, error) { return c.VolumeGrow(ctx, VolumeGrowRequest{Name: "v1", Size: "2G"}) },
			reqBody: `{"name":"v1","size":"2G"}`,
			answer:  `{"volume":{"name":"v1","size_bytes":2,"fs":"xfs","state":"ready","device":"d","mounts":0,"created":"c"},"action":"unchanged","before_bytes":2,"duration_ms":5}`,
			want:    VolumeGrowResult{Volume: Volume{Name: "v1", SizeBytes: 2, FS: "xfs", State: "ready", Device: "d", Created: "c"}, Action: ActionUnchanged, BeforeBytes: 2, DurationMs: 5},
		},
		{
			name: "metrics", method: "GET", uri: "/metrics", wantAccept: "text/plain; version=0.0.4",
			call: func(c *Client) (any, error) {
				text, ct, err := c.Metrics(ctx)
				return []string{string(text), ct}, err
			},
			answer: "dmsize_up 1\n",
			want:   []string{"dmsize_up 1\n", "text/plain; version=0.0.4; charset=utf-8"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := "application/json"
			if tc.wantAccept != "" {
				ct = "text/plain; version=0.0.4; charset=utf-8"
			}
			c, seen := recorder(t, http.StatusOK, ct, tc.answer)
			got, err := tc.call(c)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v\nwant %#v", got, tc.want)
			}
			if seen.method != tc.method || seen.uri != tc.uri {
				t.Errorf("sent %s %s, want %s %s", seen.method, seen.uri, tc.method, tc.uri)
			}
			if seen.contentType != "application/json" || seen.accept != tc.wantAccept {
				t.Errorf("sent Content-Type %q, Accept %q", seen.contentType, seen.accept)
			}
			if string(seen.body) != tc.reqBody {
				t.Errorf("sent body %q, want %q", seen.body, tc.reqBody)
			}
		})
	}
}

// A non-2xx answer is an *Error: the plugin's own when its body is one, else one made of the
// method, path, status and body, of kind failed.
func TestClientErrorAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   Error
	}{
		{"plugin's error", http.StatusConflict, `{"kind":"refused","error":"container web: grow to 1G: a shrink"}`,
			Error{Kind: KindRefused, Message: "container web: grow to 1G: a shrink"}},
		{"plugin's error without kind", http.StatusNotFound, `{"error":"container x: no such container"}`,
			Error{Message: "container x: no such container"}},
		{"text", http.StatusInternalServerError, "boom\n",
			Error{Kind: KindFailed, Message: "GET /v1/pool: 500 Internal Server Error: boom"}},
		{"empty body", http.StatusBadGateway, "",
			Error{Kind: KindFailed, Message: "GET /v1/pool: 502 Bad Gateway: "}},
		{"JSON without a message", http.StatusServiceUnavailable, `{"kind":"unavailable"}`,
			Error{Kind: KindFailed, Message: `GET /v1/pool: 503 Service Unavailable: {"kind":"unavailable"}`}},
		{"malformed JSON", http.StatusBadRequest, `{"kind":"invalid","error":`,
			Error{Kind: KindFailed, Message: `GET /v1/pool: 400 Bad Request: {"kind":"invalid","error":`}},
		{"3xx", http.StatusNotModified, "",
			Error{Kind: KindFailed, Message: "GET /v1/pool: 304 Not Modified: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := recorder(t, tc.status, "", tc.body)
			p, err := c.Pool(context.Background())
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T %v, want *Error", err, err)
			}
			if *e != tc.want || err.Error() != tc.want.Message {
				t.Errorf("got %+v (%q), want %+v", *e, err, tc.want)
			}
			if p != (Pool{}) {
				t.Errorf("pool %+v from an error", p)
			}
			if errors.Is(err, ErrUnreachable) || errors.Is(err, ErrTimeout) {
				t.Errorf("%v reads as unreachable or timed out", err)
			}
		})
	}
}

// Metrics gets errors the same way, and neither text nor type with them.
func TestClientMetricsError(t *testing.T) {
	c, _ := recorder(t, http.StatusNotAcceptable, "text/plain", "no such format")
	text, ct, err := c.Metrics(context.Background())
	var e *Error
	if !errors.As(err, &e) || *e != (Error{Kind: KindFailed, Message: "GET /metrics: 406 Not Acceptable: no such format"}) {
		t.Fatalf("%v", err)
	}
	if text != nil || ct != "" {
		t.Errorf("%q %q with an error", text, ct)
	}
}

func TestClientMalformedAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		call       func(c *Client) error
	}{
		{"syntax", `{"plugin":`, func(c *Client) error { _, err := c.Version(context.Background()); return err }},
		{"empty", ``, func(c *Client) error { _, err := c.Pool(context.Background()); return err }},
		{"wrong type", `{"plugin":"x"}`, func(c *Client) error { _, err := c.Containers(context.Background()); return err }},
		{"wrong field type", `[{"size_bytes":"big"}]`, func(c *Client) error { _, err := c.Volumes(context.Background()); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := recorder(t, http.StatusOK, "application/json", tc.body)
			err := tc.call(c)
			var syn *json.SyntaxError
			var typ *json.UnmarshalTypeError
			if !errors.As(err, &syn) && !errors.As(err, &typ) && (err == nil || err.Error() != "unexpected end of JSON input") {
				t.Fatalf("%T %v, want a JSON error", err, err)
			}
			var e *Error
			if errors.As(err, &e) || errors.Is(err, ErrUnreachable) {
				t.Errorf("%v: a decoding error reads as the plugin's", err)
			}
		})
	}
}

// Any 2xx is a success, and its body is taken as it is.
func TestClientOther2xx(t *testing.T) {
	c, seen := recorder(t, http.StatusCreated, "application/json", `{"part":"data","before_bytes":1,"after_bytes":5,"duration_ms":0,"message":"ok"}`)
	r, err := c.Extend(context.Background(), ExtendRequest{Size: "5"})
	if err != nil || r != (ExtendResult{Part: "data", BeforeBytes: 1, AfterBytes: 5, Message: "ok"}) {
		t.Fatalf("%+v %v", r, err)
	}
	if seen.method != "POST" {
		t.Errorf("method %s", seen.method)
	}
}

// An answer is read up to 16 MiB and no further.
func TestClientAnswerLimit(t *testing.T) {
	big := strings.Repeat("x", 16<<20+10)
	c, _ := recorder(t, http.StatusOK, "text/plain", big)
	text, _, err := c.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(text) != 16<<20 || !bytes.Equal(text, []byte(big[:16<<20])) {
		t.Errorf("read %d bytes, want %d", len(text), 16<<20)
	}
}

func TestClientUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	_, err := NewClient(sock).Version(context.Background())
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, syscall.ENOENT) || errors.Is(err, ErrTimeout) {
		t.Fatalf("%v", err)
	}
	if !strings.HasPrefix(err.Error(), "cannot reach the dmsize plugin at "+sock+": ") {
		t.Errorf("%q does not name the socket", err)
	}
}

// A connection that ends in the middle of an answer is an unreachable plugin too.
func TestClientCutAnswer(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"plugin\"")
		buf.Flush()
		conn.Close()
	})
	_, err := c.Version(context.Background())
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("%v", err)
	}
}

// stalled serves each request with start, then answers nothing more until the test ends.
func stalled(t *testing.T, start func(http.ResponseWriter)) *Client {
	release := make(chan struct{})
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		start(w)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	return c
}

func TestClientTimeout(t *testing.T) {
	c := stalled(t, func(http.ResponseWriter) {})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Grow(ctx, GrowRequest{Ref: "web", Size: "1G"})
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("%v", err)
	}
	if !strings.HasPrefix(err.Error(), "timed out: no answer from the dmsize plugin at ") {
		t.Errorf("%q", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}

	// A context ended before the call: timed out too, not unreachable.
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := c.Version(done); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// The deadline passes while the answer's body is read: timed out, not unreachable.
func TestClientTimeoutInBody(t *testing.T) {
	c := stalled(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"plugin"`)
		http.NewResponseController(w).Flush()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Version(ctx)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("%v", err)
	}
}

// What no public call can send: a body that does not encode, a request that cannot be made.
func TestClientRequestErrors(t *testing.T) {
	c, seen := recorder(t, http.StatusOK, "application/json", `{}`)
	var out Version
	err := c.do(context.Background(), http.MethodPost, PathGrow, make(chan int), &out)
	var ue *json.UnsupportedTypeError
	if !errors.As(err, &ue) {
		t.Errorf("unencodable body: %T %v", err, err)
	}
	if _, _, err := c.roundTrip(context.Background(), "BAD METHOD", PathPool, nil, ""); err == nil || !strings.Contains(err.Error(), "invalid method") {
		t.Errorf("bad method: %v", err)
	}
	if seen.method != "" {
		t.Errorf("a request reached the plugin: %+v", seen)
	}
	// No out: the answer is not read as JSON.
	c2, _ := recorder(t, http.StatusOK, "", "not JSON")
	if err := c2.do(context.Background(), http.MethodGet, PathVersion, nil, nil); err != nil {
		t.Errorf("no out: %v", err)
	}
}

func TestWithQuery(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{nil, "/p"},
		{[]string{}, "/p"},
		{[]string{"a"}, "/p?k=a"},
		{[]string{"a", "b/c", "d=e", "é"}, "/p?k=a&k=b%2Fc&k=d%3De&k=%C3%A9"},
	} {
		if got := withQuery("/p", "k", tc.values); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.values, got, tc.want)
		}
	}
}

// The paths are the API: the CLI of one version talks to the plugin of another.
func TestPaths(t *testing.T) {
	for got, want := range map[string]string{
		PathVersion: "/v1/version", PathContainers: "/v1/containers", PathGrow: "/v1/containers/grow",
		PathPool: "/v1/pool", PathPoolExtend: "/v1/pool/extend", PathVolumes: "/v1/volumes",
		PathVolumeGrow: "/v1/volumes/grow", PathMetrics: "/metrics",
		SocketName: "dmsize-control.sock", PluginSocketDir: "/run/docker/plugins",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
}

// An Error goes over the wire as {"kind":..., "error":...}.
func TestErrorJSON(t *testing.T) {
	b, err := json.Marshal(Error{Kind: KindNotFound, Message: "container x: no such container"})
	if err != nil || string(b) != `{"kind":"not_found","error":"container x: no such container"}` {
		t.Fatalf("%s %v", b, err)
	}
	var e error = &Error{Kind: KindInvalid, Message: "bad size"}
	if e.Error() != "bad size" {
		t.Errorf("%q", e)
	}
}

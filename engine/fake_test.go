package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/storage"
	"github.com/docker/docker/api/types/system"
	timetypes "github.com/docker/docker/api/types/time"
)

// fakeEngine is a Docker Engine API on a unix socket, answering the few endpoints dmsize
// uses the way dockerd does, so that tests run the real client against it.
type fakeEngine struct {
	t          *testing.T
	apiVersion string // what /_ping announces
	host       string // unix://...

	mu         sync.Mutex
	info       system.Info
	containers []fakeContainer
	fail       map[string]int // route ("info", "list") → status it answers with
	paths      []string       // every request's path, in order
	buffer     []events.Message
	streams    []fakeStream // scripts of the next /events connections
	queries    []url.Values // every /events request's query
	subscribed chan int     // the number of each /events connection, once subscribed
	archive    func(w http.ResponseWriter, r *http.Request, c fakeContainer)
}

type fakeContainer struct {
	ID, Name string // Name with its leading slash, as the engine keeps it
	Labels   map[string]string
	Running  bool
	Readonly bool
	Driver   string
	Data     map[string]string
}

// fakeStream scripts one /events connection.
type fakeStream struct {
	gap  []events.Message // happen before the subscription: only in the engine's buffer
	live []events.Message // sent once subscribed; then the stream ends unless open
	open bool
}

// newFakeEngine starts a fake engine announcing apiVersion on a socket in a temporary directory.
func newFakeEngine(t *testing.T, apiVersion string) *fakeEngine {
	return startFakeEngine(t, filepath.Join(t.TempDir(), "d.sock"), apiVersion)
}

func startFakeEngine(t *testing.T, sock, apiVersion string) *fakeEngine {
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeEngine{t: t, apiVersion: apiVersion, host: "unix://" + sock, fail: map[string]int{}, subscribed: make(chan int, 100)}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return f
}

// client is an engine.Client connected to the fake.
func (f *fakeEngine) client() *Client {
	f.t.Helper()
	c, err := New(f.host)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	return c
}

// locked runs fn with the fake's lock held: set its fields through it once it serves.
func (f *fakeEngine) locked(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *fakeEngine) add(c fakeContainer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers = append(f.containers, c)
}

func (f *fakeEngine) script(s ...fakeStream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams = append(f.streams, s...)
}

func (f *fakeEngine) requested() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

func (f *fakeEngine) eventQueries() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.queries...)
}

// waitSubscribed waits for the n-th /events connection (from 1).
func (f *fakeEngine) waitSubscribed(n int) {
	f.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-f.subscribed:
			if got >= n {
				return
			}
		case <-timeout:
			f.t.Fatalf("no event subscription #%d", n)
		}
	}
}

var versioned = regexp.MustCompile(`^/v[0-9]+\.[0-9]+(/.*)$`)

func (f *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.Path)
	f.mu.Unlock()
	if r.URL.Path == "/_ping" {
		w.Header().Set("API-Version", f.apiVersion)
		w.Header().Set("OSType", "linux")
		fmt.Fprint(w, "OK")
		return
	}
	m := versioned.FindStringSubmatch(r.URL.Path)
	if m == nil {
		apiError(w, http.StatusBadRequest, "unversioned path %s", r.URL.Path)
		return
	}
	p := m[1]
	switch {
	case p == "/info":
		f.answer(w, "info", func() any { return f.info })
	case p == "/containers/json":
		f.answer(w, "list", func() any { return f.list(r.URL.Query().Get("filters")) })
	case p == "/events":
		f.events(w, r)
	case strings.HasPrefix(p, "/containers/"):
		ref, what, _ := strings.Cut(strings.TrimPrefix(p, "/containers/"), "/")
		c, status, err := f.lookup(ref)
		if err != nil {
			apiError(w, status, "%v", err)
			return
		}
		switch {
		case what == "json" && r.Method == http.MethodGet:
			writeJSON(w, inspect(c))
		case what == "archive" && r.Method == http.MethodPut:
			f.mu.Lock()
			archive := f.archive
			f.mu.Unlock()
			archive(w, r, c)
		default:
			apiError(w, http.StatusNotFound, "page not found")
		}
	default:
		apiError(w, http.StatusNotFound, "page not found")
	}
}

// answer writes what v returns, or the failure set up for route.
func (f *fakeEngine) answer(w http.ResponseWriter, route string, v func() any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status := f.fail[route]; status != 0 {
		apiError(w, status, "%s failed", route)
		return
	}
	writeJSON(w, v())
}

// lookup resolves a container the way the engine does: full ID, name, or unique ID prefix.
func (f *fakeEngine) lookup(ref string) (fakeContainer, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var found []fakeContainer
	for _, c := range f.containers {
		if c.ID == ref || c.Name == "/"+ref {
			return c, 0, nil
		}
		if strings.HasPrefix(c.ID, ref) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return fakeContainer{}, http.StatusNotFound, fmt.Errorf("No such container: %s", ref)
	case 1:
		return found[0], 0, nil
	}
	return fakeContainer{}, http.StatusBadRequest, fmt.Errorf("multiple IDs found with provided prefix: %s", ref)
}

func inspect(c fakeContainer) container.InspectResponse {
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID: c.ID, Name: c.Name,
			State:       &container.State{Running: c.Running},
			HostConfig:  &container.HostConfig{ReadonlyRootfs: c.Readonly},
			GraphDriver: storage.DriverData{Name: c.Driver, Data: c.Data},
		},
		Config: &container.Config{Labels: c.Labels},
	}
}

func (f *fakeEngine) list(filterJSON string) []container.Summary {
	args, err := filters.FromJSON(filterJSON)
	if err != nil {
		f.t.Errorf("list filters %q: %v", filterJSON, err)
	}
	var list []container.Summary
	for _, c := range f.containers {
		if args.MatchKVList("label", c.Labels) {
			list = append(list, container.Summary{ID: c.ID, Names: []string{c.Name}, Labels: c.Labels})
		}
	}
	return list
}

// events streams the engine's buffered events since the query's since, then the script's
// live ones, as dockerd does: headers first, then one JSON object per event.
func (f *fakeEngine) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ef, err := filters.FromJSON(q.Get("filters"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	var since int64 = -1
	if s := q.Get("since"); s != "" {
		sec, nsec, err := timetypes.ParseTimestamps(s, 0)
		if err != nil {
			apiError(w, http.StatusBadRequest, "%v", err)
			return
		}
		since = time.Unix(sec, nsec).UnixNano()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	enc := json.NewEncoder(w)
	send := func(ev events.Message) {
		if ef.ExactMatch("type", string(ev.Type)) && ef.ExactMatch("event", string(ev.Action)) {
			enc.Encode(ev)
			w.(http.Flusher).Flush()
		}
	}

	f.mu.Lock()
	f.queries = append(f.queries, q)
	n := len(f.queries)
	var s fakeStream
	if len(f.streams) > 0 {
		s, f.streams = f.streams[0], f.streams[1:]
	} else {
		s.open = true
	}
	f.record(s.gap)
	var replay []events.Message
	for _, ev := range f.buffer {
		if since >= 0 && ev.TimeNano >= since {
			replay = append(replay, ev)
		}
	}
	f.record(s.live)
	f.mu.Unlock()
	f.subscribed <- n

	for _, ev := range replay {
		send(ev)
	}
	for _, ev := range s.live {
		send(ev)
	}
	if s.open {
		<-r.Context().Done()
	}
}

// record puts events in the engine's buffer, timing those without a time. f.mu is held.
func (f *fakeEngine) record(evs []events.Message) {
	for i := range evs {
		if evs[i].TimeNano == 0 {
			evs[i].TimeNano = time.Now().UnixNano()
		}
		evs[i].Time = evs[i].TimeNano / 1e9
		f.buffer = append(f.buffer, evs[i])
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, format string, a ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": fmt.Sprintf(format, a...)})
}

// ctxFor is a context for one test, ended at its cleanup.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

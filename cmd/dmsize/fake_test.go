package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
)

// shortDir is a temporary directory short enough for unix socket paths (108 bytes), which
// t.TempDir's, named after the test, can pass.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "dms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// serveUnix serves h on a unix socket at path until the test ends, or until it is closed.
func serveUnix(t *testing.T, path string, h http.Handler) *http.Server {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return srv
}

// answer is a canned control answer: body is sent as JSON, or as is when a string.
type answer struct {
	status int
	body   any
	delay  time.Duration
	ctype  string // Content-Type; application/json when empty
}

// fakeControl answers control's paths with canned bodies and errors, and keeps what it was
// asked.
type fakeControl struct {
	sock     string
	srv      *http.Server
	mu       sync.Mutex
	answers  map[string]answer // "POST /v1/containers/grow" → its answer
	requests []string          // "METHOD PATH?QUERY BODY"
}

func newFakeControl(t *testing.T, sock string) *fakeControl {
	f := &fakeControl{sock: sock, answers: map[string]answer{}}
	f.srv = serveUnix(t, sock, f)
	return f
}

// stop stops serving, as a stopped plugin does; its socket goes.
func (f *fakeControl) stop() { f.srv.Close() }

// controlAt is a fake control socket of its own, for --socket.
func controlAt(t *testing.T) *fakeControl {
	return newFakeControl(t, filepath.Join(shortDir(t), "c.sock"))
}

func (f *fakeControl) set(route string, a answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.status == 0 {
		a.status = http.StatusOK
	}
	f.answers[route] = a
}

func (f *fakeControl) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeControl) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	route := r.Method + " " + r.URL.Path
	req := route
	if r.URL.RawQuery != "" {
		req += "?" + r.URL.RawQuery
	}
	if len(b) > 0 {
		req += " " + string(b)
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	a, ok := f.answers[route]
	f.mu.Unlock()
	if !ok {
		a = answer{status: http.StatusNotFound, body: "404 page not found\n"}
	}
	time.Sleep(a.delay)
	if a.ctype == "" {
		a.ctype = "application/json"
	}
	w.Header().Set("Content-Type", a.ctype)
	w.WriteHeader(a.status)
	if s, ok := a.body.(string); ok {
		io.WriteString(w, s)
		return
	}
	json.NewEncoder(w).Encode(a.body)
}

// fakeDocker is the Docker API's plugin endpoints, as dockerd answers them.
type fakeDocker struct {
	host    string
	mu      sync.Mutex
	paths   []string
	plugins []*types.Plugin
}

func newFakeDocker(t *testing.T, apiVersion string, plugins ...*types.Plugin) *fakeDocker {
	sock := filepath.Join(shortDir(t), "d.sock")
	f := &fakeDocker{host: "unix://" + sock, plugins: plugins}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("API-Version", apiVersion)
		io.WriteString(w, "OK")
	})
	mux.HandleFunc("GET /{version}/plugins", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(f.installed())
	})
	// A name may hold slashes (a registry's); the engine takes it, its name without
	// ":latest", or an ID prefix.
	mux.HandleFunc("GET /{version}/plugins/{name...}", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimSuffix(r.PathValue("name"), "/json")
		for _, p := range f.installed() {
			if p.Name == name || p.Name == name+":latest" || strings.HasPrefix(p.ID, name) {
				json.NewEncoder(w).Encode(p)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"message":"plugin %q not found"}`, name)
	})
	serveUnix(t, sock, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.paths = append(f.paths, r.URL.Path)
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	return f
}

func (f *fakeDocker) installed() []*types.Plugin {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.plugins
}

// install replaces the plugins the engine has: disabled, reinstalled, ...
func (f *fakeDocker) install(plugins ...*types.Plugin) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plugins = plugins
}

func (f *fakeDocker) requested() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

func plugin(id, name string, enabled bool, entrypoint ...string) *types.Plugin {
	return &types.Plugin{ID: id, Name: name, Enabled: enabled, Config: types.PluginConfig{Entrypoint: entrypoint}}
}

type result struct {
	code           int
	stdout, stderr string
}

// dmsize runs the CLI with env as its whole environment and root as the engine's plugins
// directory.
func dmsize(t *testing.T, env map[string]string, root string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(&out, &errb, func(k string) string { return env[k] })
	a.pluginsRoot = root
	code := a.run(args)
	return result{code, out.String(), errb.String()}
}

// check fails unless r exited with code and, on failure, said one line on stderr starting
// with "dmsize: " (and nothing but that).
func (r result) check(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %q\nstderr: %q", r.code, code, r.stdout, r.stderr)
	}
	if code == exitOK {
		if r.stderr != "" {
			t.Errorf("stderr %q on success", r.stderr)
		}
		return
	}
	if !strings.HasPrefix(r.stderr, "dmsize: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr %q: want one line starting with \"dmsize: \"", r.stderr)
	}
}

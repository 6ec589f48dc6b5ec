package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsize/dmsize/controlapi"
)

const (
	exposition = "# HELP dmsize_pool_extension_blocked 1 while the pool needs an extension.\n" +
		"# TYPE dmsize_pool_extension_blocked gauge\n" +
		"dmsize_pool_extension_blocked{pool=\"docker-254:0-131101-pool\"} 0\n"
	expositionType = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
)

var metricsAnswer = answer{body: exposition, ctype: expositionType}

func TestMetrics(t *testing.T) {
	ctl := controlAt(t)
	ctl.set("GET "+controlapi.PathMetrics, metricsAnswer)
	r := dmsize(t, nil, "", "--socket", ctl.sock, "metrics")
	r.check(t, exitOK)
	if r.stdout != exposition {
		t.Errorf("stdout %q, want %q", r.stdout, exposition)
	}
	if got := ctl.asked(); !equal(got, []string{"GET /metrics"}) {
		t.Errorf("asked %q", got)
	}
	// Not set up yet: exit 3, nothing on stdout (a textfile collector keeps the last file).
	ctl.set("GET "+controlapi.PathMetrics, answer{status: 503, body: controlapi.Error{Kind: controlapi.KindUnavailable, Message: "the engine's storage driver is \"overlay2\""}})
	r = dmsize(t, nil, "", "--socket", ctl.sock, "metrics")
	r.check(t, exitUnreachable)
	if want := "dmsize: metrics: the engine's storage driver is \"overlay2\"\n"; r.stderr != want || r.stdout != "" {
		t.Errorf("stdout %q stderr %q, want %q", r.stdout, r.stderr, want)
	}
	r = dmsize(t, nil, "", "--socket", filepath.Join(shortDir(t), "none.sock"), "metrics")
	r.check(t, exitUnreachable)
	if !strings.HasPrefix(r.stderr, "dmsize: metrics: cannot reach the dmsize plugin at ") {
		t.Errorf("stderr %q", r.stderr)
	}
	// Found through the engine; disabled.
	var found *fakeControl
	f, root := installed(t, "1.41", &pluginAt{spec: plugin("d1", "dmsize:latest", true, dmsizeEntry), ctl: &found})
	found.set("GET "+controlapi.PathMetrics, metricsAnswer)
	r = dmsize(t, map[string]string{"DOCKER_HOST": f.host}, root, "metrics")
	r.check(t, exitOK)
	if r.stdout != exposition {
		t.Errorf("stdout %q", r.stdout)
	}
	f.install(plugin("d1", "dmsize:latest", false, dmsizeEntry))
	r = dmsize(t, map[string]string{"DOCKER_HOST": f.host}, root, "metrics")
	r.check(t, exitUnreachable)
	if want := "dmsize: metrics: the dmsize plugin dmsize:latest is disabled (docker plugin enable dmsize:latest)\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}

func TestMetricsUsage(t *testing.T) {
	ctl := controlAt(t)
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"metrics", "now"}, "dmsize: metrics: 1 arguments [\"now\"]; usage: dmsize metrics [--listen ADDR]\n"},
		{[]string{"metrics", "--listen"}, "dmsize: metrics: flag needs an argument: -listen (dmsize metrics -h)\n"},
		{[]string{"metrics", "--listen", "9434"}, "dmsize: metrics: --listen \"9434\": address 9434: missing port in address (want host:port, e.g. 127.0.0.1:9434)\n"},
		{[]string{"--plugin", "dmsize", "metrics", "--listen", "127.0.0.1:0"}, "dmsize: metrics: --plugin and --socket: give one\n"},
	} {
		r := dmsize(t, nil, "", append([]string{"--socket", ctl.sock}, tc.args...)...)
		r.check(t, exitUsage)
		if r.stderr != tc.err {
			t.Errorf("%q: stderr\n got %q\nwant %q", tc.args, r.stderr, tc.err)
		}
	}
	if got := ctl.asked(); len(got) != 0 {
		t.Errorf("the plugin was asked %q", got)
	}
	r := dmsize(t, nil, "", "metrics", "-h")
	r.check(t, exitOK)
	if !strings.HasPrefix(r.stdout, "Usage: dmsize metrics [--listen ADDR]") || !strings.Contains(r.stdout, "--listen ADDR") {
		t.Errorf("metrics -h:\n%s", r.stdout)
	}
	if r := dmsize(t, nil, "", "-h"); !strings.Contains(r.stdout, "metrics [--listen ADDR]") {
		t.Errorf("dmsize -h lacks metrics:\n%s", r.stdout)
	}
	// An address that cannot be had: a failure, exit 1.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r = dmsize(t, nil, "", "--socket", ctl.sock, "metrics", "--listen", l.Addr().String())
	r.check(t, exitRefused)
	if !strings.Contains(r.stderr, "address already in use") {
		t.Errorf("stderr %q", r.stderr)
	}
}

// syncBuffer is stderr written by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// listening runs `dmsize ARGS metrics --listen 127.0.0.1:0` until the test ends; scrape GETs
// its /metrics.
type listening struct {
	stderr *syncBuffer
	url    string
	stop   func() int // ends it; its exit code
}

func listen(t *testing.T, env map[string]string, root string, args ...string) *listening {
	t.Helper()
	l := &listening{stderr: &syncBuffer{}}
	a := newApp(io.Discard, l.stderr, func(k string) string { return env[k] })
	a.pluginsRoot = root
	ctx, cancel := context.WithCancel(context.Background())
	a.ctx = ctx
	addr := make(chan net.Addr, 1)
	a.listening = func(at net.Addr) { addr <- at }
	code := make(chan int, 1)
	go func() { code <- a.run(append(args, "metrics", "--listen", "127.0.0.1:0")) }()
	select {
	case at := <-addr:
		l.url = "http://" + at.String() + controlapi.PathMetrics
	case c := <-code:
		t.Fatalf("exit %d before listening: %s", c, l.stderr)
	case <-time.After(10 * time.Second):
		t.Fatal("not listening after 10s")
	}
	var once sync.Once
	exit := -1
	l.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case exit = <-code:
			case <-time.After(10 * time.Second):
				t.Error("still serving 10s after its context ended")
			}
		})
		return exit
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *listening) scrape(t *testing.T) (status int, ctype, body string) {
	t.Helper()
	resp, err := http.Get(l.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// expect fails unless a scrape gets status and body (all of it, or its start for 503's
// reasons that carry a path).
func (l *listening) expect(t *testing.T, status int, body string) {
	t.Helper()
	got, ctype, b := l.scrape(t)
	if got != status || !strings.HasPrefix(b, body) {
		t.Fatalf("scrape: %d %q, want %d %q", got, b, status, body)
	}
	if status == http.StatusOK && (ctype != expositionType || b != body) {
		t.Errorf("scrape: Content-Type %q, body %q", ctype, b)
	}
	if status != http.StatusOK && (!strings.HasPrefix(ctype, "text/plain") || strings.Count(b, "\n") != 1) {
		t.Errorf("503: Content-Type %q, body %q: want one line of text", ctype, b)
	}
}

// Through the engine: the plugin answers, is disabled, reinstalled under a new ID, not set
// up; a scrape always gets an answer, and stderr has one line per change.
func TestMetricsListen(t *testing.T) {
	var first *fakeControl
	f, root := installed(t, "1.41", &pluginAt{spec: plugin("d1", "dmsize:latest", true, dmsizeEntry), ctl: &first})
	first.set("GET "+controlapi.PathMetrics, metricsAnswer)
	l := listen(t, map[string]string{"DOCKER_HOST": f.host}, root)
	l.expect(t, 200, exposition)
	l.expect(t, 200, exposition)

	first.stop()
	f.install(plugin("d1", "dmsize:latest", false, dmsizeEntry))
	disabled := "dmsize: the dmsize plugin dmsize:latest is disabled (docker plugin enable dmsize:latest)\n"
	l.expect(t, 503, disabled)
	l.expect(t, 503, disabled)

	f.install(plugin("d2", "dmsize:latest", true, dmsizeEntry))
	second := newFakeControl(t, filepath.Join(root, "d2", controlapi.SocketName))
	second.set("GET "+controlapi.PathMetrics, metricsAnswer)
	l.expect(t, 200, exposition)

	second.set("GET "+controlapi.PathMetrics, answer{status: 503, body: controlapi.Error{Kind: controlapi.KindUnavailable, Message: "the engine's storage driver is \"overlay2\""}})
	l.expect(t, 503, "dmsize: the engine's storage driver is \"overlay2\"\n")
	l.expect(t, 503, "dmsize: the engine's storage driver is \"overlay2\"\n")
	second.set("GET "+controlapi.PathMetrics, metricsAnswer)
	l.expect(t, 200, exposition)

	if code := l.stop(); code != exitOK {
		t.Errorf("exit %d after SIGTERM", code)
	}
	d1, d2 := filepath.Join(root, "d1", controlapi.SocketName), filepath.Join(root, "d2", controlapi.SocketName)
	want := "dmsize: metrics: serving " + l.url + " from the dmsize plugin's control socket\n" +
		"dmsize: metrics: the plugin answers at " + d1 + "\n" +
		"dmsize: metrics: the dmsize plugin dmsize:latest is disabled (docker plugin enable dmsize:latest) (answering 503 until it does)\n" +
		"dmsize: metrics: the plugin answers at " + d2 + "\n" +
		"dmsize: metrics: the engine's storage driver is \"overlay2\" (answering 503 until it does)\n" +
		"dmsize: metrics: the plugin answers at " + d2 + "\n"
	if got := l.stderr.String(); got != want {
		t.Errorf("stderr\n%s\nwant\n%s", got, want)
	}
}

// --socket: no engine; a plugin not running yet, then started, then stopped.
func TestMetricsListenSocket(t *testing.T) {
	sock := filepath.Join(shortDir(t), "c.sock")
	l := listen(t, nil, "", "--socket", sock)
	l.expect(t, 503, "dmsize: cannot reach the dmsize plugin at "+sock)
	ctl := newFakeControl(t, sock)
	ctl.set("GET "+controlapi.PathMetrics, metricsAnswer)
	l.expect(t, 200, exposition)
	ctl.stop()
	l.expect(t, 503, "dmsize: cannot reach the dmsize plugin at "+sock)
	// Other paths are not served.
	if resp, err := http.Get(strings.TrimSuffix(l.url, controlapi.PathMetrics) + "/"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	l.stop()
	lines := strings.Split(strings.TrimSuffix(l.stderr.String(), "\n"), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], "cannot reach") || lines[2] != "dmsize: metrics: the plugin answers at "+sock || !strings.Contains(lines[3], "cannot reach") {
		t.Errorf("stderr:\n%s", l.stderr)
	}
}

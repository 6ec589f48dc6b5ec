package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/size"
	"github.com/dmsize/dmsize/sizer"
)

func TestURIs(t *testing.T) {
	route := func(uri string) string {
		t.Helper()
		p, err := routePath(uri)
		if err != nil {
			t.Fatalf("%q: %v", uri, err)
		}
		return p
	}
	for uri, want := range map[string]bool{
		"/v1.41/containers/create":          true,
		"/v1.41/containers/create?name=web": true,
		"/containers/create":                true,
		"/v1.41/containers/create/x":        false,
		"/v1.41/containers/create/":         false,
		"/v1.41/containers/json":            false,
		"/v1.41/images/create":              false,
		"/v/containers/create":              false,
	} {
		if got := createURI.MatchString(route(uri)); got != want {
			t.Errorf("create %q: %v", uri, got)
		}
	}
	for uri, want := range map[string]string{
		"/v1.41/containers/web?force=1": "web",
		"/containers/0123abcd":          "0123abcd",
		"/v1.41/containers/web/kill":    "web/kill", // the engine's {name:.*}: no such container
		"/v1.41/containers/":            "",
		"/v1.41/images/web":             "",
	} {
		m := deleteURI.FindStringSubmatch(route(uri))
		got := ""
		if m != nil {
			got = m[2]
		}
		if got != want {
			t.Errorf("delete %q: %q, want %q", uri, got, want)
		}
	}
}

// fakeSizer is strict mode's sizer in the tests: it answers from its fields and records what
// it was asked, one line per call ("check 42G", "ensure web", "release web", "removal-failed <id>").
type fakeSizer struct {
	mu         sync.Mutex
	check      error                      // CheckNew's answer
	ensure     error                      // Ensure's answer
	inspect    error                      // when set, Container's answer
	containers map[string]sizer.Container // by ID and by name; the others are not found
	calls      []string
	handled    []string // RemovalFailed's IDs
}

func (f *fakeSizer) called(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeSizer) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeSizer) CheckNew(label string, _ int64) error {
	f.called("check %s", label)
	return f.check
}

func (f *fakeSizer) Ensure(_ context.Context, ref string) (sizer.Result, error) {
	f.called("ensure %s", ref)
	return sizer.Result{Container: ref}, f.ensure
}

func (f *fakeSizer) ReleaseForRemoval(_ context.Context, ref string) (string, error) {
	f.called("release %s", ref)
	c, ok := f.containers[ref]
	if !ok {
		return "", fmt.Errorf("container %s: %w", ref, sizer.ErrNotFound)
	}
	return c.ID, nil
}

func (f *fakeSizer) Container(_ context.Context, ref string) (sizer.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inspect != nil {
		return sizer.Container{}, f.inspect
	}
	c, ok := f.containers[ref]
	if !ok {
		return c, fmt.Errorf("container %s: %w", ref, sizer.ErrNotFound)
	}
	return c, nil
}

func (f *fakeSizer) RemovalFailed(id string) {
	f.called("removal-failed %s", id)
	f.mu.Lock()
	f.handled = append(f.handled, id)
	f.mu.Unlock()
}

// timers holds what strict mode asked to run later; the tests run it.
type timers struct {
	after []time.Duration
	run   []func()
}

func (tm *timers) add(d time.Duration, f func()) {
	tm.after, tm.run = append(tm.after, d), append(tm.run, f)
}

// fire runs the oldest pending function.
func (tm *timers) fire(t *testing.T) {
	t.Helper()
	if len(tm.run) == 0 {
		t.Fatal("nothing scheduled")
	}
	f := tm.run[0]
	tm.after, tm.run = tm.after[1:], tm.run[1:]
	f()
}

// newStrict is strict mode set up with s (nil: not set up), a known base size and a hook on
// its log.
func newStrict(s strictSizer) (strict, *test.Hook, *timers) {
	l, hook := test.NewNullLogger()
	tm := &timers{}
	st := strict{log: l, base: 10 << 30, after: tm.add, deletes: &inflight{}}
	if s != nil {
		st.sizer = s
	}
	return st, hook, tm
}

// createReq is a create as the engine forwards it: a JSON body with its Content-Length.
func createReq(body string) authorization.Request {
	return authorization.Request{RequestMethod: "POST", RequestURI: "/v1.41/containers/create?name=web", RequestBody: []byte(body),
		RequestHeaders: map[string]string{"Content-Type": "application/json", "Content-Length": strconv.Itoa(len(body))}}
}

// Strict mode's failure rule, each branch: a create is denied, with one line starting
// "dmsize: ", when it carries a dm.size label dmsize rejects (a), carries dm.size while dmsize
// is not ready (b) or cannot check it (c), or when dmsize cannot see its labels (d). Every
// request without dm.size is allowed untouched, whatever dmsize's state.
func TestStrictCreateRule(t *testing.T) {
	const (
		ready    = "ready"
		starting = "starting"
		gaveUp   = "gave up"
		noBase   = "no base size"
	)
	labelled := `{"Image":"busybox","Labels":{"dm.size":"42G"}}`
	chunked := createReq(labelled)
	chunked.RequestBody, chunked.RequestHeaders = nil, map[string]string{"Content-Type": "application/json"}
	large := createReq(labelled)
	large.RequestBody, large.RequestHeaders["Content-Length"] = nil, "2000000"
	empty := createReq("")
	for _, tc := range []struct {
		name  string
		state string
		check error
		req   authorization.Request
		want  string // "" allowed; else the denial's message
		calls []string
	}{
		{name: "no label", state: ready, req: createReq(`{"Image":"busybox"}`)},
		{name: "no label, starting", state: starting, req: createReq(`{"Image":"busybox"}`)},
		{name: "no label, gave up", state: gaveUp, req: createReq(`{"Image":"busybox","Labels":{"app":"web"}}`)},
		{name: "no body at all", state: starting, req: empty},
		{name: "not a create", state: starting, req: authorization.Request{RequestMethod: "GET", RequestURI: "/v1.41/containers/json"}},
		{name: "a start", state: gaveUp, req: authorization.Request{RequestMethod: "POST", RequestURI: "/v1.41/containers/web/start"}},
		{name: "an image create", state: starting, req: authorization.Request{RequestMethod: "POST", RequestURI: "/v1.41/images/create?fromImage=busybox"}},
		{name: "label accepted", state: ready, req: createReq(labelled), calls: []string{"check 42G"}},
		{
			name: "a: label rejected", state: ready, req: createReq(`{"Labels":{"dm.size":"42X"}}`),
			check: &errs.Refusal{What: "label dm.size=42X", Reason: `size "42X": not a size in Docker's grammar (e.g. 42G, 512M, 1.5T)`},
			want:  `dmsize: label dm.size=42X rejected: size "42X": not a size in Docker's grammar (e.g. 42G, 512M, 1.5T)`, calls: []string{"check 42X"},
		},
		{name: "b: starting", state: starting, req: createReq(labelled), want: "dmsize: starting, not ready to check dm.size yet; retry in a few seconds"},
		{
			name: "b: gave up", state: gaveUp, req: createReq(labelled),
			want: `dmsize: not active, so it cannot honour dm.size: the engine's storage driver is "overlay2": dm.size labels are ignored (dmsize needs the devicemapper graph driver)`,
		},
		{
			name: "c: internal", state: ready, req: createReq(labelled), check: errors.New("reading the pool's status: input/output error"),
			want: "dmsize: cannot check label dm.size=42G: reading the pool's status: input/output error; retry", calls: []string{"check 42G"},
		},
		{name: "c: base size unknown", state: noBase, req: createReq(labelled), want: "dmsize: cannot check label dm.size=42G: dmsize could not read the engine's base device size"},
		{name: "d: chunked", state: ready, req: chunked, want: "dmsize: " + errNoBody.Error()},
		{name: "d: chunked, starting", state: starting, req: chunked, want: "dmsize: " + errNoBody.Error()},
		{name: "d: 1 MiB or more", state: ready, req: large, want: "dmsize: " + errNoBody.Error()},
		{name: "d: not JSON", state: ready, req: createReq(`{"Labels":`), want: "dmsize: cannot see whether this create asks for dm.size: its body is not a JSON container config: unexpected end of JSON input"},
		{
			name: "d: labels not strings", state: ready, req: createReq(`{"Labels":{"dm.size":42}}`),
			want: "dmsize: cannot see whether this create asks for dm.size: its body is not a JSON container config: json: cannot unmarshal number into Go struct field .Labels of type string",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeSizer{check: tc.check}
			st, hook, tm := newStrict(f)
			switch tc.state {
			case starting:
				st.sizer = nil
			case gaveUp:
				why := "the engine's storage driver is \"overlay2\": dm.size labels are ignored\n(dmsize needs the devicemapper graph driver)"
				st.sizer, st.notReady = nil, &why
			case noBase:
				st.base = 0
			}
			r := st.request(tc.req)
			if tc.want == "" {
				if !r.Allow || r.Msg != "" || len(hook.AllEntries()) != 0 {
					t.Fatalf("not allowed untouched: %+v, log %d lines", r, len(hook.AllEntries()))
				}
			} else {
				if r.Allow || r.Msg != tc.want {
					t.Fatalf("got %+v\nwant the denial %q", r, tc.want)
				}
				if e := hook.LastEntry(); e == nil || e.Level != logrus.WarnLevel || !strings.Contains(e.Message, "denied a container create") {
					t.Fatalf("the denial is not logged: %v", hook.AllEntries())
				}
			}
			if got := f.Calls(); strings.Join(got, ",") != strings.Join(tc.calls, ",") {
				t.Fatalf("sizer calls %q, want %q", got, tc.calls)
			}
			if len(tm.run) != 0 {
				t.Fatal("a create scheduled a re-check")
			}
		})
	}
}

// The response phase sizes a created container while the response is held; whatever comes of
// it, the create stays allowed. A failed DELETE puts the hold back.
func TestStrictResponse(t *testing.T) {
	const id = "0123456789ab0123456789ab0123456789ab0123456789ab0123456789abcdef"
	created := func(status int) authorization.Request {
		r := createReq(`{"Labels":{"dm.size":"42G"}}`)
		r.ResponseStatusCode, r.ResponseBody = status, []byte(`{"Id":"`+id+`","Warnings":[]}`)
		return r
	}
	deleted := func(status int) authorization.Request {
		return authorization.Request{RequestMethod: "DELETE", RequestURI: "/v1.41/containers/web?force=1", ResponseStatusCode: status}
	}
	for _, tc := range []struct {
		name    string
		ensure  error
		state   string // the container's, after the response
		req     authorization.Request
		calls   []string
		warned  bool
		recheck bool
	}{
		{name: "sized", req: created(201), calls: []string{"ensure " + id}},
		{name: "sizing failed", ensure: errors.New("mounting: timeout"), req: created(201), calls: []string{"ensure " + id}, warned: true},
		{name: "label rejected", ensure: &errs.Refusal{What: "label dm.size=42G", Reason: "above the maximum"}, req: created(201), calls: []string{"ensure " + id}},
		{name: "create failed", req: created(409)},
		{name: "delete failed", req: deleted(500), calls: []string{"removal-failed " + id}},
		// A failed removal: the engine's handler returned an error, which it writes after the
		// response phase; the plugin sees no status.
		{name: "delete failed, no status", state: "dead", req: deleted(0), calls: []string{"removal-failed " + id}},
		// Another DELETE is still removing it (this one was refused as a conflict): looked at
		// again later, not held again now.
		{name: "delete failed, another removal on", state: "removing", req: deleted(0), recheck: true},
		{name: "deleted", req: deleted(204)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeSizer{ensure: tc.ensure, containers: map[string]sizer.Container{"web": {ID: id, Name: "web", State: tc.state}}}
			st, hook, tm := newStrict(f)
			if r := st.response(tc.req); !r.Allow {
				t.Fatalf("denied: %+v", r)
			}
			if got := f.Calls(); strings.Join(got, ",") != strings.Join(tc.calls, ",") {
				t.Fatalf("sizer calls %q, want %q", got, tc.calls)
			}
			warned := false
			for _, e := range hook.AllEntries() {
				warned = warned || e.Level == logrus.WarnLevel && strings.Contains(e.Message, "its events retry it") && e.Data["container"] == id
			}
			if warned != tc.warned {
				t.Fatalf("warned %v, want %v: %v", warned, tc.warned, hook.AllEntries())
			}
			if (len(tm.run) != 0) != tc.recheck {
				t.Fatalf("re-checks scheduled: %v, want %v", tm.after, tc.recheck)
			}
		})
	}
	st, _, _ := newStrict(nil)
	if r := st.response(created(201)); !r.Allow {
		t.Fatalf("denied before dmsize was set up: %+v", r)
	}
}

// A DELETE lets go of the device at once, and a re-check recheckAfter later queues an Ensure
// (the sizer's repair re-holds the device) if the container is still there: a later
// authorization plugin may have denied the DELETE, and then no AuthZRes comes.
func TestStrictDeleteRecheck(t *testing.T) {
	const id = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	web := sizer.Container{ID: id, Name: "web", State: "exited", Labels: map[string]string{size.Label: "42G"}}
	del := authorization.Request{RequestMethod: "DELETE", RequestURI: "/v1.41/containers/web?force=1"}
	setup := func(t *testing.T) (*fakeSizer, strict, *test.Hook, *timers) {
		f := &fakeSizer{containers: map[string]sizer.Container{"web": web, id: web}}
		st, hook, tm := newStrict(f)
		if r := st.request(del); !r.Allow || r.Msg != "" {
			t.Fatalf("DELETE not allowed untouched: %+v", r)
		}
		if got := f.Calls(); len(got) != 1 || got[0] != "release web" {
			t.Fatalf("calls %q, want the release at request time", got)
		}
		if len(tm.after) != 1 || tm.after[0] != recheckAfter {
			t.Fatalf("re-checks scheduled %v, want one in %v", tm.after, recheckAfter)
		}
		return f, st, hook, tm
	}
	handled := func(t *testing.T, f *fakeSizer, want bool) {
		t.Helper()
		f.mu.Lock()
		defer f.mu.Unlock()
		if !want {
			if len(f.handled) != 0 {
				t.Fatalf("queued %v", f.handled)
			}
			return
		}
		if len(f.handled) != 1 || f.handled[0] != id {
			t.Fatalf("queued %+v, want one RemovalFailed of %s", f.handled, id)
		}
	}

	// settled: the look settled it (held again, or not), and there is no further look.
	settled := func(t *testing.T, f *fakeSizer, tm *timers, held bool) {
		t.Helper()
		handled(t, f, held)
		if len(tm.run) != 0 {
			t.Fatal("looked again")
		}
	}

	// The container is gone at the first look (its destroy event may have come first), or still
	// there: its Ensure is queued. Either way, one look.
	for _, gone := range []bool{true, false} {
		t.Run(fmt.Sprintf("gone=%v", gone), func(t *testing.T) {
			f, _, _, tm := setup(t)
			if gone {
				delete(f.containers, id)
			}
			tm.fire(t)
			settled(t, f, tm, !gone)
		})
	}
	// inState is the engine saying the container is in state.
	inState := func(f *fakeSizer, state string) {
		c := web
		c.State, c.Running = state, state == "running"
		f.containers[id], f.containers["web"] = c, c
	}
	removing := func(f *fakeSizer) { inState(f, "removing") }
	// While the engine says it is removing the container, strict mode looks again, less and
	// less often, however long it takes (a device busy at the engine's delete fails `docker
	// rm`), and never holds the device again; once it is gone, nothing is left to do.
	t.Run("still being removed", func(t *testing.T) {
		f, _, _, tm := setup(t)
		removing(f)
		var waits []time.Duration
		for range 3 * recheckTries {
			tm.fire(t)
			handled(t, f, false)
			if len(tm.after) != 1 {
				t.Fatalf("no further look while the engine removes it: %v", tm.after)
			}
			waits = append(waits, tm.after[0])
		}
		wait := recheckAfter
		for i := range waits {
			wait = min(2*wait, recheckMax)
			if waits[i] != wait {
				t.Fatalf("look %d in %v, want %v: %v", i+2, waits[i], wait, waits)
			}
		}
		delete(f.containers, id)
		tm.fire(t)
		settled(t, f, tm, false)
	})
	// The engine is done at last, and the container is still there: its removal failed, and
	// the device is held again.
	t.Run("removal failed after a long time", func(t *testing.T) {
		f, _, _, tm := setup(t)
		removing(f)
		for range 3 * recheckTries {
			tm.fire(t)
		}
		handled(t, f, false)
		inState(f, "dead")
		tm.fire(t)
		settled(t, f, tm, true)
	})
	// A running container may be in the engine's kill, the first step of a forced removal
	// (inspect says "running" until the process is gone): it is looked at again, and held
	// again only once it has run for recheckTries looks, longer than the engine's kill takes.
	t.Run("running", func(t *testing.T) {
		f, _, _, tm := setup(t)
		inState(f, "running")
		for range recheckTries - 1 {
			tm.fire(t)
			handled(t, f, false)
			if len(tm.after) != 1 || tm.after[0] != recheckAfter {
				t.Fatalf("no further look at a running container: %v", tm.after)
			}
		}
		tm.fire(t)
		settled(t, f, tm, true)
	})
	// The response to a DELETE comes once the engine is done with it. `docker rm` of a running
	// container without -f fails: the device is held again at once, as no other DELETE of it
	// is in flight. While another is (two `docker rm -f` at once: the engine refuses the second
	// while it kills the container for the first), the first one's response or re-check
	// settles it.
	t.Run("failed removal of a running container", func(t *testing.T) {
		f, st, _, _ := setup(t)
		inState(f, "running")
		st.response(del) // refused: its handler's error has no status here
		handled(t, f, true)
	})
	t.Run("two DELETEs at once", func(t *testing.T) {
		f, st, _, tm := setup(t)
		if r := st.request(del); !r.Allow {
			t.Fatalf("denied: %+v", r)
		}
		inState(f, "running")
		st.response(del) // the second, refused: its handler's error has no status here
		handled(t, f, false)
		tm.fire(t) // the first's re-check: the engine may be killing it
		handled(t, f, false)
		st.response(del) // the first failed too
		handled(t, f, true)
	})
	t.Run("engine not answering", func(t *testing.T) {
		f, _, hook, tm := setup(t)
		f.inspect = errors.New("connection refused")
		for range recheckTries {
			tm.fire(t)
		}
		handled(t, f, false)
		if len(tm.run) != 0 {
			t.Fatalf("more than %d looks", recheckTries)
		}
		if e := hook.LastEntry(); e == nil || e.Level != logrus.WarnLevel || e.Data["container"] != id {
			t.Fatalf("giving up is not logged: %v", hook.AllEntries())
		}
	})
	t.Run("unknown container", func(t *testing.T) {
		f := &fakeSizer{}
		st, hook, tm := newStrict(f)
		if r := st.request(authorization.Request{RequestMethod: "DELETE", RequestURI: "/v1.41/containers/nosuch"}); !r.Allow {
			t.Fatalf("denied: %+v", r)
		}
		if len(tm.run) != 0 || len(hook.AllEntries()) != 0 {
			t.Fatalf("a re-check or a log line for a container the engine does not know: %v", hook.AllEntries())
		}
	})
	t.Run("not set up", func(t *testing.T) {
		st, _, tm := newStrict(nil)
		if r := st.request(del); !r.Allow || len(tm.run) != 0 {
			t.Fatalf("%+v, %d re-checks", r, len(tm.run))
		}
	})
}

// The app's snapshot: the plugin's sizer as strict mode uses it (inspecting through its
// engine), and why it gave up; in events mode every request is allowed without a look.
func TestStrictSnapshot(t *testing.T) {
	l, _ := test.NewNullLogger()
	a := &app{cfg: config{Mode: "strict"}, log: l}
	why := "cannot reach the engine"
	a.notReady.Store(&why)
	if st := a.strict(); st.sizer != nil || st.notReady != &why {
		t.Fatalf("%+v", st)
	}
	a.base.Store(10 << 30)
	a.setup.Store(&setUp{sizer: sizer.New(sizer.Config{Engine: oneContainer{id: "abc"}, Log: l})})
	st := a.strict()
	if st.base != 10<<30 {
		t.Fatalf("base %d", st.base)
	}
	if c, err := st.sizer.Container(context.Background(), "abc"); err != nil || c.ID != "abc" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := st.sizer.Container(context.Background(), "nosuch"); !errors.Is(err, sizer.ErrNotFound) {
		t.Fatal(err)
	}
	a.cfg.Mode = "events"
	if r := a.AuthZReq(createReq(`{"Labels":`)); !r.Allow {
		t.Fatalf("events mode denied: %+v", r)
	}
	if r := a.AuthZRes(authorization.Request{RequestMethod: "DELETE", RequestURI: "/containers/abc", ResponseStatusCode: 500}); !r.Allow {
		t.Fatalf("events mode denied: %+v", r)
	}
}

// oneContainer is an engine with one container.
type oneContainer struct {
	sizer.Engine
	id string
}

func (e oneContainer) Container(_ context.Context, ref string) (sizer.Container, error) {
	if ref != e.id {
		return sizer.Container{}, sizer.ErrNotFound
	}
	return sizer.Container{ID: e.id}, nil
}

// The handshake names the authz interface, and through the plugin socket, before dmsize is set
// up: a create with dm.size is denied (dmsize is starting), one without is allowed, and the
// response phase allows.
func TestHandshakeAndNotReady(t *testing.T) {
	defer func(d time.Duration) { readyWait = d }(readyWait)
	readyWait = 50 * time.Millisecond // the labelled create waits that long, then is denied
	sock := filepath.Join(t.TempDir(), "dmsize.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{cfg: config{Mode: "strict"}, log: logrus.New()}
	h := authorization.NewHandler(a)
	go func() { _ = h.Serve(l) }()
	t.Cleanup(func() { l.Close() })

	c := &http.Client{Transport: &http.Transport{
		Dial: func(string, string) (net.Conn, error) { return net.Dial("unix", sock) },
	}}
	post := func(path string, body any, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := c.Post("http://plugin"+path, "application/vnd.docker.plugins.v1.2+json", bytes.NewReader(b))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("POST %s: decoding: %v", path, err)
		}
	}
	var manifest struct{ Implements []string }
	post("/Plugin.Activate", struct{}{}, &manifest)
	if len(manifest.Implements) != 1 || manifest.Implements[0] != "authz" {
		t.Fatalf("handshake implements %v, want [authz]", manifest.Implements)
	}
	for body, allowed := range map[string]bool{
		`{"Image":"busybox","Labels":{"dm.size":"20G"}}`: false,
		`{"Image":"busybox","Labels":{"app":"web"}}`:     true,
	} {
		req := createReq(body)
		req.ResponseStatusCode = 201
		var r authorization.Response
		post("/AuthZPlugin.AuthZReq", req, &r)
		if r.Allow != allowed || !allowed && !strings.HasPrefix(r.Msg, "dmsize: starting") {
			t.Fatalf("request %s before dmsize was set up: %+v", body, r)
		}
		post("/AuthZPlugin.AuthZRes", req, &r)
		if !r.Allow {
			t.Fatalf("response %s denied before dmsize was set up: %+v", body, r)
		}
	}
}

// The engine routes on the decoded, cleaned path of the request target (net/http's
// url.ParseRequestURI, then gorilla/mux on URL.Path), while strict mode is handed the raw
// target: every spelling the engine routes to its create handler is a create to strict mode
// (a label it rejects is denied), every spelling it routes to its delete handler lets go of the
// device it names, and a spelling it routes elsewhere is allowed untouched. A POST whose
// target cannot be decoded is denied (the engine itself refuses it with a 400).
func TestStrictEncodedRoutes(t *testing.T) {
	const id = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	rejected := &errs.Refusal{What: "label dm.size=42X", Reason: "not a size"}
	const denied, undecodable = "dmsize: label dm.size=42X rejected", "dmsize: cannot see whether this POST is a container create: its path cannot be decoded"
	checked := []string{"check 42X"}
	for _, tc := range []struct {
		method, uri string
		want        string // "" allowed untouched; else the start of the denial
		calls       []string
	}{
		{"POST", "/v1.47/containers/%63reate", denied, checked},
		{"POST", "/v1.47%2Fcontainers/create", denied, checked},
		{"POST", "/v1.41/containers%2Fcreate", denied, checked},
		{"POST", "/containers/%63reate", denied, checked},
		{"POST", "/containers%2Fcreate?name=web", denied, checked},
		{"POST", "/%761.41/%63ontainers/%63%72%65%61%74%65?name=web", denied, checked},
		{"POST", "/v1.41/containers/./create", denied, checked},
		{"POST", "/v1.41/images/../containers/create", denied, checked},
		{"POST", "/v1.41/containers/%2E/create", denied, checked},
		{"POST", "http://docker/v1.41/containers/create", denied, checked},
		{"POST", "http://docker/containers/%63reate?name=web", denied, checked},
		{"POST", "/v1.41/containers/%zzcreate", undecodable + `: parse "/v1.41/containers/%zzcreate": invalid URL escape "%zz"`, nil},
		{"POST", "%2Fcontainers/create", undecodable, nil},
		// Routed elsewhere by the engine: allowed untouched.
		{"POST", "/v1.41/containers/create%3Fname=web", "", nil},
		{"POST", "/v1.41/containers/create%2F", "", nil},
		{"POST", "/v1.41/containers/%63reate/start", "", nil},
		{"POST", "/v1.41/containers/web/%72estart", "", nil},
		{"POST", "/v1.41/containers/web/update", "", nil},
		{"POST", "/v1.41/images/%63reate", "", nil},
		{"GET", "/v1.41/containers/%zz", "", nil},
		{"DELETE", "/v1.41/containers/%zz", "", nil},
		// Deletes: the device of the container the engine removes is let go of.
		{"DELETE", "/v1.41/containers/%77eb?force=1", "", []string{"release web"}},
		{"DELETE", "/v1.41%2Fcontainers/web", "", []string{"release web"}},
		{"DELETE", "/containers%2Fweb", "", []string{"release web"}},
		{"DELETE", "/containers/%77eb", "", []string{"release web"}},
		{"DELETE", "http://docker/v1.41/containers/web?v=1", "", []string{"release web"}},
		{"DELETE", "/v1.41/images/../containers/web", "", []string{"release web"}},
		// The engine's route is /containers/{name:.*}: a legacy link's name has a slash.
		{"DELETE", "/v1.41/containers/db/web", "", []string{"release db/web"}},
		{"DELETE", "/v1.41/containers/", "", nil},
	} {
		t.Run(tc.method+" "+tc.uri, func(t *testing.T) {
			web := sizer.Container{ID: id, Name: "web", Labels: map[string]string{size.Label: "42G"}}
			f := &fakeSizer{check: rejected, containers: map[string]sizer.Container{"web": web, "db/web": web}}
			st, hook, _ := newStrict(f)
			req := createReq(`{"Image":"busybox","Labels":{"dm.size":"42X"}}`)
			req.RequestMethod, req.RequestURI = tc.method, tc.uri
			r := st.request(req)
			if tc.want == "" {
				if !r.Allow || r.Msg != "" {
					t.Fatalf("not allowed untouched: %+v", r)
				}
			} else if r.Allow || !strings.HasPrefix(r.Msg, tc.want) || len(hook.AllEntries()) != 1 {
				t.Fatalf("got %+v (log %v)\nwant a denial starting %q", r, hook.AllEntries(), tc.want)
			}
			if got := f.Calls(); strings.Join(got, ",") != strings.Join(tc.calls, ",") {
				t.Fatalf("sizer calls %q, want %q", got, tc.calls)
			}
		})
	}

	// The response phase sees the same route: a create through an encoded path is sized
	// while its response is held, and a failed delete through one puts the hold back.
	f := &fakeSizer{containers: map[string]sizer.Container{"web": {ID: id, Name: "web"}}}
	st, _, _ := newStrict(f)
	created := createReq(`{"Labels":{"dm.size":"42G"}}`)
	created.RequestURI, created.ResponseStatusCode, created.ResponseBody = "/v1.41%2Fcontainers/%63reate", 201, []byte(`{"Id":"`+id+`"}`)
	deleted := authorization.Request{RequestMethod: "DELETE", RequestURI: "/v1.41/containers/%77eb", ResponseStatusCode: 409}
	for _, req := range []authorization.Request{created, deleted} {
		if r := st.response(req); !r.Allow {
			t.Fatalf("denied: %+v", r)
		}
	}
	if got, want := strings.Join(f.Calls(), ","), "ensure "+id+",removal-failed "+id; got != want {
		t.Fatalf("sizer calls %q, want %q", got, want)
	}
}

// A labelled create that waits for a starting plugin is answered as the plugin then is: here,
// one that gave up says why, not "starting".
func TestStrictWaitsForAStartingPlugin(t *testing.T) {
	a := &app{cfg: config{Mode: "strict"}, log: logrus.New()}
	go func() {
		time.Sleep(50 * time.Millisecond)
		a.giveUp(a.log, nil, "the engine's storage driver is \"overlay2\"")
	}()
	start := time.Now()
	r := a.AuthZReq(createReq(`{"Labels":{"dm.size":"20G"}}`))
	if r.Allow || r.Msg != `dmsize: not active, so it cannot honour dm.size: the engine's storage driver is "overlay2"` {
		t.Fatalf("after waiting %v: %+v", time.Since(start), r)
	}
	if r := a.AuthZReq(createReq(`{"Labels":{"app":"web"}}`)); !r.Allow {
		t.Fatalf("a create without dm.size: %+v", r)
	}
}

package plugin

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/internal/badinput"
	"github.com/dmsize/dmsize/sizer"
)

// The bad-input tests of the plugin's two entry points that take outside input: strict mode's
// authorization requests and the control socket. Each tries its cases (counted in
// docs/testing.md, "Bad input") and checks that none panics, hangs or changes state it should not.

// answerBound is how long one answer may take with fakes behind it: far above what any takes,
// far below a hang.
const answerBound = time.Second

// TestBadInputAuthZ: 6,000 authorization requests and responses, their targets, bodies,
// methods, headers and response codes malformed. A denial is one line starting "dmsize: ";
// the request phase releases a device only for a DELETE the engine routes to a container and
// checks a label only for a create; the response phase sizes only what the engine answered
// 201 to a create for.
func TestBadInputAuthZ(t *testing.T) {
	const n = 6000
	uris := badinput.Strings([]string{
		"/v1.41/containers/create", "/v1.41/containers/create?name=web", "/containers/create",
		"/v1.41/containers/%63reate", "/v1.41%2Fcontainers/create", "/v1.41/containers/web",
		"/v1.41/containers/web?force=1", "/containers/parent/alias", "http://docker/v1.41/containers/create",
		"/v1.41/containers/web/start", "/v1.41/images/create", "*", "",
	}, 1500)
	bodies := badinput.Strings([]string{
		`{"Image":"busybox","Labels":{"dm.size":"42G"}}`, `{"Labels":{"dm.size":"42X"}}`,
		`{"Labels":{"dm.size":"5G","other":"x"}}`, `{"Labels":null}`, `{"Labels":{"dm.size":42}}`,
		`{"HostConfig":{"NetworkMode":"none"}}`, `[]`, ``, `null`,
	}, 1500)
	created := badinput.Strings([]string{`{"Id":"` + webID + `"}`, `{"Id":""}`, `{"Id":"web","Warnings":[]}`, ``}, 500)
	methods := []string{"POST", "DELETE", "GET", "PUT", "post", ""}
	codes := []int{201, 200, 204, 404, 409, 500, 0}

	f := &fakeSizer{containers: map[string]sizer.Container{"web": {ID: webID, Name: "web"}, webID: {ID: webID, Name: "web"}}}
	st, _, _ := newStrict(f)
	create := regexp.MustCompile(`^(/v[0-9.]+)?/containers/create$`)
	var slowest time.Duration
	denied := 0
	for i := 0; i < n; i++ {
		req := authorization.Request{
			RequestMethod: methods[i%len(methods)], RequestURI: uris[i%len(uris)],
			RequestBody: []byte(bodies[(i*7)%len(bodies)]), RequestHeaders: map[string]string{},
		}
		if i%3 != 0 {
			req.RequestHeaders["Content-Length"] = strconv.Itoa(len(req.RequestBody))
		}
		before := len(f.Calls())
		start := time.Now()
		r := st.request(req)
		slowest = max(slowest, time.Since(start))
		p, perr := routePath(req.RequestURI)
		for _, c := range f.Calls()[before:] {
			switch {
			case strings.HasPrefix(c, "release ") && (req.RequestMethod != "DELETE" || perr != nil || !deleteURI.MatchString(p)):
				t.Fatalf("%s %q: released a device: %q", req.RequestMethod, req.RequestURI, c)
			case strings.HasPrefix(c, "check ") && (req.RequestMethod != "POST" || perr != nil || !create.MatchString(p)):
				t.Fatalf("%s %q: checked a label of what is no create: %q", req.RequestMethod, req.RequestURI, c)
			case strings.HasPrefix(c, "ensure "):
				t.Fatalf("%s %q: sized a container in the request phase", req.RequestMethod, req.RequestURI)
			}
		}
		if !r.Allow {
			denied++
			if !strings.HasPrefix(r.Msg, "dmsize: ") || strings.ContainsAny(r.Msg, "\r\n") {
				t.Fatalf("%s %q: denial not one line starting \"dmsize: \": %q", req.RequestMethod, req.RequestURI, r.Msg)
			}
		}

		req.ResponseStatusCode = codes[i%len(codes)]
		req.ResponseBody = []byte(created[i%len(created)])
		before = len(f.Calls())
		start = time.Now()
		if r := st.response(req); !r.Allow {
			t.Fatalf("%s %q: a response denied: %q", req.RequestMethod, req.RequestURI, r.Msg)
		}
		slowest = max(slowest, time.Since(start))
		for _, c := range f.Calls()[before:] {
			var id struct{ Id string }
			if strings.HasPrefix(c, "ensure ") && (req.RequestMethod != "POST" || req.ResponseStatusCode != 201 || perr != nil ||
				!create.MatchString(p) || json.Unmarshal(req.ResponseBody, &id) != nil || "ensure "+id.Id != c) {
				t.Fatalf("%s %q answered %d %q: %q", req.RequestMethod, req.RequestURI, req.ResponseStatusCode, req.ResponseBody, c)
			}
			if strings.HasPrefix(c, "release ") || strings.HasPrefix(c, "check ") {
				t.Fatalf("%s %q: %q in the response phase", req.RequestMethod, req.RequestURI, c)
			}
		}
	}
	if slowest > answerBound {
		t.Fatalf("the slowest answer took %v", slowest)
	}
	t.Logf("%d authorization requests and responses: %d denied, slowest answer %v", n, denied, slowest)
}

// TestBadInputControl: 4,000 requests to the control socket, their targets, methods and JSON
// bodies malformed, on the real sizer over the fake backend. Every answer is 200, or an error
// status with one JSON error of a known kind; the only changes are grows the answer reports,
// and a container never gets smaller.
func TestBadInputControl(t *testing.T) {
	const n = 4000
	l, _ := test.NewNullLogger()
	a := &app{log: l, vols: &volumeDriver{}} // as run has it: a volume driver, here still starting
	b := newFakeBackend()
	withSizer(t, a, b, sizer.Policy{Max: 1 << 40})
	// Half the cases go to a route with its method, their bodies malformed; the other half
	// have their targets malformed too.
	routes := []string{
		controlapi.PathGrow, controlapi.PathContainers, controlapi.PathContainers + "?ref=web&ref=" + webID, controlapi.PathPool,
		controlapi.PathPoolExtend, controlapi.PathVolumes + "?name=x", controlapi.PathVolumeGrow, controlapi.PathVersion, controlapi.PathMetrics,
	}
	routeMethods := []string{"POST", "GET", "GET", "GET", "POST", "GET", "POST", "GET", "GET"}
	paths := badinput.Strings(routes, 800)
	bodies := badinput.Strings([]string{
		`{"ref":"web","size":"30G","dry_run":true}`, `{"ref":"web","size":"31G"}`, `{"ref":"db","size":"12G"}`,
		`{"ref":"web","size":"40G"}`, `{"ref":"` + webID + `","size":"500G"}`, `{"ref":"db","size":"50G"}`,
		`{"ref":"web","size":"5G"}`, `{"size":"+1G"}`, `{"name":"v","size":"2G"}`, `{}`, ``,
	}, 2000)
	methods := []string{"POST", "GET", "PUT", "DELETE"}
	kinds := map[string]bool{controlapi.KindInvalid: true, controlapi.KindRefused: true, controlapi.KindNotFound: true,
		controlapi.KindFailed: true, controlapi.KindUnavailable: true}
	var slowest time.Duration
	answered, grown := 0, 0
	size := b.devices["thin-web"].Size
	for i := 0; i < n; i++ {
		method, path, body := methods[i%len(methods)], paths[i%len(paths)], bodies[(i*13)%len(bodies)]
		if i%2 == 0 {
			method, path, body = routeMethods[i/2%len(routes)], routes[i/2%len(routes)], bodies[i/2/len(routes)]
		}
		// What net/http would not parse never reaches the handlers.
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + path + " HTTP/1.1\r\nHost: dmsize\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body)))
		if err != nil {
			continue
		}
		answered++
		before := len(b.Calls())
		w := httptest.NewRecorder()
		start := time.Now()
		a.controlMux().ServeHTTP(w, req)
		slowest = max(slowest, time.Since(start))
		if w.Code >= 400 && w.Code != http.StatusNotFound && w.Code != http.StatusMethodNotAllowed {
			var e controlapi.Error
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !kinds[e.Kind] || e.Message == "" || strings.ContainsAny(e.Message, "\r\n") {
				t.Fatalf("%s %q %q: %d %s: not one JSON error of a known kind", method, path, body, w.Code, w.Body.Bytes())
			}
		}
		changed := false
		for _, c := range b.Calls()[before:] {
			if strings.HasPrefix(c, "grow ") || strings.HasPrefix(c, "growfs ") {
				changed = true
			}
		}
		if changed {
			var res controlapi.GrowResult
			if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &res) != nil || res.Action != controlapi.ActionGrown {
				t.Fatalf("%s %q %q: the backend grew a device, the answer was %d %s", method, path, body, w.Code, w.Body.Bytes())
			}
			grown++
		}
		if now := b.devices["thin-web"].Size; now < size {
			t.Fatalf("%s %q %q: web's device went from %d to %d bytes", method, path, body, size, now)
		} else {
			size = now
		}
	}
	if slowest > answerBound {
		t.Fatalf("the slowest answer took %v", slowest)
	}
	if grown == 0 {
		t.Fatal("no case grew a device: the check that only reported grows change anything never ran")
	}
	t.Logf("%d control requests (%d that net/http parses): %d grows, slowest answer %v", n, answered, grown, slowest)
}

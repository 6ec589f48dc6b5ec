package graphdriver

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/kernel/dm"
)

// set replaces one of the package's seams until the test ends.
func set[T any](t *testing.T, seam *T, v T) {
	t.Helper()
	old := *seam
	*seam = v
	t.Cleanup(func() { *seam = old })
}

// fakeDM is the kernel's device-mapper as the backend sees it: named devices, the tables
// loaded into them, and every call made, in order ("create NAME", "remove --deferred NAME"...).
// A call listed in fail fails with that error and changes nothing.
type fakeDM struct {
	devs   map[string]dm.Info
	tables map[string]string // name -> loaded table, as "start length type params"
	fail   map[string]error  // call -> error
	calls  []string
	minor  uint32 // the last minor number given out
	// after, if set, sees each call once its answer is chosen (a test changes the kernel
	// between calls with it: another opener closes, a busy device becomes free).
	after func(call string)
}

var _ deviceControl = (*fakeDM)(nil)

func newFakeDM(names ...string) *fakeDM {
	f := &fakeDM{devs: map[string]dm.Info{}, tables: map[string]string{}, fail: map[string]error{}, minor: 100}
	for _, n := range names {
		f.add(n)
	}
	return f
}

// add makes an active device name, as someone else (the engine) would.
func (f *fakeDM) add(name string) {
	f.minor++
	f.devs[name] = dm.Info{Name: name, Dev: dm.Dev{Major: 253, Minor: f.minor}, LiveTable: true}
}

func (f *fakeDM) call(c string) error {
	f.calls = append(f.calls, c)
	err := f.fail[c]
	if f.after != nil {
		f.after(c)
	}
	return err
}

func (f *fakeDM) notFound(op, name string) error {
	return &dm.Error{Op: op, Name: name, Err: dm.ErrNotFound}
}

func (f *fakeDM) List() ([]dm.NameDev, error) {
	if err := f.call("list"); err != nil {
		return nil, err
	}
	var l []dm.NameDev
	for n, i := range f.devs {
		l = append(l, dm.NameDev{Name: n, Dev: i.Dev})
	}
	slices.SortFunc(l, func(a, b dm.NameDev) int { return strings.Compare(a.Name, b.Name) })
	return l, nil
}

func (f *fakeDM) Info(name string) (dm.Info, error) {
	if err := f.call("info " + name); err != nil {
		return dm.Info{}, err
	}
	i, ok := f.devs[name]
	if !ok {
		return dm.Info{}, f.notFound("info", name)
	}
	return i, nil
}

func (f *fakeDM) Create(name, uuid string) (dm.Dev, error) {
	if err := f.call(strings.TrimSpace("create " + name + " " + uuid)); err != nil {
		return dm.Dev{}, err
	}
	if _, ok := f.devs[name]; ok {
		return dm.Dev{}, fmt.Errorf("dm: create %s: device or resource busy", name)
	}
	f.minor++
	f.devs[name] = dm.Info{Name: name, Dev: dm.Dev{Major: 253, Minor: f.minor}}
	return f.devs[name].Dev, nil
}

func (f *fakeDM) Load(name string, table []dm.Target) error {
	var lines []string
	for _, t := range table {
		lines = append(lines, fmt.Sprintf("%d %d %s %s", t.Start, t.Length, t.Type, t.Params))
	}
	tab := strings.Join(lines, "\n")
	if err := f.call("load " + name + " " + tab); err != nil {
		return err
	}
	if _, ok := f.devs[name]; !ok {
		return f.notFound("load", name)
	}
	f.tables[name] = tab
	return nil
}

// change makes call op on device name, which sets what it changes.
func (f *fakeDM) change(op, name string, sets func(*dm.Info)) error {
	if err := f.call(op + " " + name); err != nil {
		return err
	}
	i, ok := f.devs[name]
	if !ok {
		return f.notFound(op, name)
	}
	sets(&i)
	f.devs[name] = i
	return nil
}

func (f *fakeDM) Resume(name string) error {
	return f.change("resume", name, func(i *dm.Info) { i.LiveTable = true })
}

func (f *fakeDM) Rename(old, new string) error {
	if err := f.call("rename " + old + " " + new); err != nil {
		return err
	}
	i, ok := f.devs[old]
	if !ok {
		return f.notFound("rename", old)
	}
	if _, ok := f.devs[new]; ok {
		return fmt.Errorf("dm: rename %s: device or resource busy", old)
	}
	delete(f.devs, old)
	i.Name = new
	f.devs[new] = i
	if t, ok := f.tables[old]; ok {
		delete(f.tables, old)
		f.tables[new] = t
	}
	return nil
}

func (f *fakeDM) Remove(name string, deferred bool) error {
	c := "remove " + name
	if deferred {
		c = "remove --deferred " + name
	}
	if err := f.call(c); err != nil {
		return err
	}
	i, ok := f.devs[name]
	if !ok {
		return f.notFound("remove", name)
	}
	if deferred {
		i.DeferredRemove = true
		f.devs[name] = i
		return nil
	}
	delete(f.devs, name)
	delete(f.tables, name)
	return nil
}

func (f *fakeDM) CancelDeferredRemove(name string) error {
	return f.change("cancel-deferred", name, func(i *dm.Info) { i.DeferredRemove = false })
}

// fakeAPI is the few routes of the Docker Engine API the backend reaches, on a local TCP
// listener, so that the real engine.Client talks to it.
type fakeAPI struct {
	mu       sync.Mutex
	inspect  map[string]string // ref -> body of GET /containers/REF/json
	list     string            // body of GET /containers/json
	status   map[string]int    // "METHOD /path" -> status answered instead
	requests []string          // "METHOD /path?query", without the version prefix
	uploads  map[string]int    // container -> bytes of the archive PUT to it
}

var versionRE = regexp.MustCompile(`^/v[0-9.]+/`)

// newFakeAPI serves a fake engine until the test ends and returns a client of it.
func newFakeAPI(t *testing.T) (*fakeAPI, *engine.Client) {
	t.Helper()
	f := &fakeAPI{inspect: map[string]string{}, status: map[string]int{}, uploads: map[string]int{}, list: "[]"}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	c, err := engine.New("tcp://" + strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return f, c
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	path := versionRE.ReplaceAllString(r.URL.Path, "/")
	if path == "/_ping" {
		w.Header().Set("API-Version", "1.41")
		w.Write([]byte("OK"))
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	route := r.Method + " " + path
	f.requests = append(f.requests, route+"?"+r.URL.RawQuery)
	w.Header().Set("Content-Type", "application/json")
	if code, ok := f.status[route]; ok {
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"message":"refused by the fake engine (%d)"}`, code)
		return
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && path == "/containers/json":
		w.Write([]byte(f.list))
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "containers" && parts[2] == "json":
		b, ok := f.inspect[parts[1]]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"message":"No such container: %s"}`, parts[1])
			return
		}
		w.Write([]byte(b))
	case r.Method == http.MethodPut && len(parts) == 3 && parts[0] == "containers" && parts[2] == "archive":
		f.uploads[parts[1]] = len(body)
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"message":"the fake engine has no route %s"}`, route)
	}
}

func (f *fakeAPI) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/system"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/kernel/dm"
	"github.com/dmsize/dmsize/kernel/thin"
	"github.com/dmsize/dmsize/size"
	"github.com/dmsize/dmsize/sizer"
	vol "github.com/dmsize/dmsize/volume"
)

// errNoDM is device-mapper in the unit tests: never there.
var errNoDM = errors.New("dm: open /dev/mapper/control: no device-mapper in the unit tests")

// TestMain keeps every test off the host's device-mapper: the tests run as root on machines
// that have it, where the plugin's own opening would make pools and loop devices.
func TestMain(m *testing.M) {
	openDM = func() (*dm.Control, error) { return nil, errNoDM }
	os.Exit(m.Run())
}

// stubDM makes openDM answer (nil, nil) for its first n calls, errNoDM after, for the test;
// it returns how many calls were made.
func stubDM(t *testing.T, n int) func() int {
	t.Helper()
	var mu sync.Mutex
	calls := 0
	old, oldReport := openDM, reportKernel
	reportKernel = func(logrus.FieldLogger, *dm.Control) {}
	openDM = func() (*dm.Control, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= n {
			return nil, nil
		}
		return nil, errNoDM
	}
	t.Cleanup(func() { openDM, reportKernel = old, oldReport })
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return calls
	}
}

// logged reports whether hook has an entry at lvl whose message contains part.
func logged(hook *test.Hook, lvl logrus.Level, part string) *logrus.Entry {
	for _, e := range hook.AllEntries() {
		if e.Level == lvl && strings.Contains(e.Message, part) {
			return e
		}
	}
	return nil
}

// --- the engine's API

// fakeDocker is the few endpoints of the engine's API that the plugin calls, on a unix
// socket: the ping, docker info, the container lists by volume, and one event stream.
type fakeDocker struct {
	host string // unix://...

	mu         sync.Mutex
	info       system.Info
	infoStatus int            // non-zero: /info answers it
	users      map[string]int // volume -> containers that refer to it
	events     []events.Message
	lists      []string // "volume=NAME all=BOOL" of each container list
	done       chan struct{}
}

var versionedPath = regexp.MustCompile(`^/v[0-9.]+(/.*)$`)

func newFakeDocker(t *testing.T) *fakeDocker {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDocker{host: "unix://" + sock, users: map[string]int{}, done: make(chan struct{})}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(f.done) }) // before srv.Close: ends the event streams
	return f
}

func (f *fakeDocker) listed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lists...)
}

func (f *fakeDocker) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_ping" {
		w.Header().Set("API-Version", "1.43")
		w.Header().Set("OSType", "linux")
		fmt.Fprint(w, "OK")
		return
	}
	m := versionedPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.Error(w, `{"message":"unversioned path"}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch m[1] {
	case "/info":
		if f.infoStatus != 0 {
			w.WriteHeader(f.infoStatus)
			fmt.Fprint(w, `{"message":"info failed"}`)
			return
		}
		json.NewEncoder(w).Encode(f.info)
	case "/containers/json":
		args, _ := filters.FromJSON(r.URL.Query().Get("filters"))
		name := strings.Join(args.Get("volume"), ",")
		all := r.URL.Query().Get("all") == "1"
		f.lists = append(f.lists, fmt.Sprintf("volume=%s all=%v", name, all))
		list := []container.Summary{}
		for i := range f.users[name] {
			list = append(list, container.Summary{ID: fmt.Sprintf("%064x", i+1)})
		}
		json.NewEncoder(w).Encode(list)
	case "/events":
		evs := f.events
		f.events = nil
		f.mu.Unlock()
		defer f.mu.Lock()
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		for _, e := range evs {
			enc.Encode(e)
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-f.done:
		}
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"page not found"}`)
	}
}

// --- device-mapper: a thin pool

// fakeThinPool is one thin pool as device-mapper shows it (guard.Control, thin.Mapper): 64 KiB
// data blocks, 4 KiB metadata blocks.
type fakeThinPool struct {
	name                 string // the only device it knows
	mu                   sync.Mutex
	blocks, used         uint64
	metaBlocks, metaUsed uint64
	tid                  uint64 // its transaction id
}

func (p *fakeThinPool) Info(name string) (dm.Info, error) {
	if name != p.name {
		return dm.Info{}, fmt.Errorf("dm: info %s: %w", name, dm.ErrNotFound)
	}
	return dm.Info{Name: name, LiveTable: true}, nil
}

func (p *fakeThinPool) Table(name string) ([]dm.Target, error) {
	if _, err := p.Info(name); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return []dm.Target{{Length: p.blocks * 128, Type: "thin-pool", Params: "7:1 7:0 128 32768 1 skip_block_zeroing"}}, nil
}

func (p *fakeThinPool) Status(name string) ([]dm.Target, error) {
	if _, err := p.Info(name); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return []dm.Target{{Length: p.blocks * 128, Type: "thin-pool",
		Params: fmt.Sprintf("%d %d/%d %d/%d - rw discard_passdown queue_if_no_space - 1024", p.tid, p.metaUsed, p.metaBlocks, p.used, p.blocks)}}, nil
}

func (p *fakeThinPool) StatusNoFlush(name string) ([]dm.Target, error) { return p.Status(name) }
func (p *fakeThinPool) Load(string, []dm.Target) error                 { return errors.New("unused") }
func (p *fakeThinPool) ClearInactive(string) error                     { return nil }
func (p *fakeThinPool) Resume(string) error                            { return nil }
func (p *fakeThinPool) WaitEvent(string, uint32, time.Duration) (dm.Info, error) {
	return dm.Info{}, nil
}

// fakeExtender grows a fakeThinPool (a loop-lvm pool's files) with room bytes to spare.
type fakeExtender struct {
	pool    *fakeThinPool
	room    int64
	roomErr error
}

func (e *fakeExtender) Kind() string { return "loop-lvm" }
func (e *fakeExtender) Room() (int64, string, error) {
	return e.room, fmt.Sprintf("the host keeps %d bytes free", e.room), e.roomErr
}
func (e *fakeExtender) Extend(_ thin.Pool, data, meta int64) (time.Duration, error) {
	e.pool.mu.Lock()
	defer e.pool.mu.Unlock()
	e.pool.blocks, e.pool.metaBlocks = uint64(data/65536), uint64(meta/4096)
	return time.Millisecond, nil
}

// --- the storage backend

// fakeBackend is a storage backend (storageBackend): containers, their thin devices and the
// sizes the engine reads at its start. It records the calls that change something.
type fakeBackend struct {
	mu         sync.Mutex
	containers []sizer.Container
	devices    map[string]sizer.DeviceState
	persisted  map[string]int64
	held       map[string]bool
	sized      []string // SizedContainers' answer
	listErr    error
	stateErr   error
	provErr    error
	baseErr    error
	base       int64
	baseReads  int // BaseSize's calls
	provision  int64
	poolData   int64
	calls      []string
}

const (
	webID = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"
	dbID  = "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0"
)

// newFakeBackend knows "web", running with dm.size=20G on an active 10 GiB device, and "db",
// stopped, whose device is not active.
func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		containers: []sizer.Container{
			{ID: webID, Name: "web", State: "running", Running: true, Labels: map[string]string{size.Label: "20G"}, Device: "thin-web", DeviceID: 1, Cached: 10 << 30},
			{ID: dbID, Name: "db", State: "exited", Device: "thin-db", DeviceID: 2, Cached: 10 << 30},
		},
		devices:   map[string]sizer.DeviceState{"thin-web": {Exists: true, Active: true, Size: 10 << 30, Opens: 1}},
		persisted: map[string]int64{"thin-web": 10 << 30, "thin-db": 10 << 30},
		held:      map[string]bool{},
		base:      10 << 30,
		provision: 20 << 30,
		poolData:  100 << 30,
	}
}

func (f *fakeBackend) called(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeBackend) Container(_ context.Context, ref string) (sizer.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.ID == ref || c.Name == ref {
			return c, nil
		}
	}
	return sizer.Container{}, fmt.Errorf("container %s: %w", ref, sizer.ErrNotFound)
}

func (f *fakeBackend) SizedContainers(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sized...), f.listErr
}

func (f *fakeBackend) MountRootfs(context.Context, string) sizer.Mount { return refusedMount{} }

func (f *fakeBackend) State(name string) (sizer.DeviceState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.devices[name], f.stateErr
}

func (f *fakeBackend) Grow(name string, sz int64) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.called("grow %s %d", name, sz)
	d := f.devices[name]
	d.Size = sz
	f.devices[name] = d
	return time.Millisecond, nil
}

func (f *fakeBackend) Activate(name string, _ int, sz int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.called("activate %s %d", name, sz)
	return errors.New("activate: not in these tests")
}

func (f *fakeBackend) GrowFS(name string, sz int64) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.called("growfs %s %d", name, sz)
	return time.Millisecond, nil
}

func (f *fakeBackend) Hold(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.called("hold %s", name)
	f.held[name] = true
	return nil
}

func (f *fakeBackend) Release(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.held[name]
	delete(f.held, name)
	return was
}

func (f *fakeBackend) Holds() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held)
}

func (f *fakeBackend) Held(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held[name]
}

// FS: the filesystem fills its device, with 1 GiB used.
func (f *fakeBackend) FS(name string) (int64, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.devices[name].Size, 1 << 30, nil
}

func (f *fakeBackend) PoolData() (int64, error) { return f.poolData, nil }

func (f *fakeBackend) Persisted(name string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.persisted[name], nil
}

func (f *fakeBackend) Persist(name string, sz int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.called("persist %s %d", name, sz)
	f.persisted[name] = max(f.persisted[name], sz)
	return nil
}

func (f *fakeBackend) Provisioned() (int64, error) { return f.provision, f.provErr }

func (f *fakeBackend) BaseSize() (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.baseReads++
	return f.base, f.baseErr
}

// refusedMount is the engine refusing to mount a root filesystem.
type refusedMount struct{}

func (refusedMount) Done() <-chan struct{} { c := make(chan struct{}); close(c); return c }
func (refusedMount) Err() error            { return errors.New("refused") }
func (refusedMount) Release() error        { return nil }

// withSizer sets a's sizer up on b with a store in a temporary directory, as run does.
func withSizer(t *testing.T, a *app, b *fakeBackend, policy sizer.Policy) *sizer.Sizer {
	t.Helper()
	store, err := sizer.OpenStore(t.TempDir(), a.log)
	if err != nil {
		t.Fatal(err)
	}
	s := sizer.New(sizer.Config{Engine: b, Devices: b, Sizes: b, Store: store, Policy: policy, Log: a.log})
	a.setup.Store(&setUp{sizer: s, backend: b})
	return s
}

// --- the volumes' kernel

// fakeVolKernel is the volume pool and the filesystems (vol.Pool, vol.Filesystems): thin
// devices by id, active devices, filesystems and mounts. It is not a Transactional pool (as
// an LVM pool is not).
type fakeVolKernel struct {
	mu      sync.Mutex
	thins   map[uint32]int64  // thin id -> size
	active  map[string]int64  // node -> table size
	fs      map[string]int64  // node -> filesystem size
	mounted map[string]string // dir -> node
	fail    map[string]error  // op -> its error
}

func newFakeVolKernel() *fakeVolKernel {
	return &fakeVolKernel{thins: map[uint32]int64{}, active: map[string]int64{}, fs: map[string]int64{}, mounted: map[string]string{}, fail: map[string]error{}}
}

func (k *fakeVolKernel) Node(r vol.Record) string { return "/dev/mapper/" + r.Device() }

func (k *fakeVolKernel) CreateThin(r vol.Record) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail["create"]; err != nil {
		return err
	}
	if _, ok := k.thins[r.ThinID]; ok {
		return vol.ErrExists
	}
	k.thins[r.ThinID] = r.Size
	return nil
}

func (k *fakeVolKernel) DeleteThin(r vol.Record) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.thins, r.ThinID)
	return nil
}

func (k *fakeVolKernel) Activate(r vol.Record) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail["activate"]; err != nil {
		return "", err
	}
	n := k.Node(r)
	k.active[n] = max(k.active[n], r.Size)
	return n, nil
}

func (k *fakeVolKernel) Deactivate(r vol.Record) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.active, k.Node(r))
	return nil
}

func (k *fakeVolKernel) Make(dev, _ string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fs[dev] = k.active[dev]
	return nil
}

func (k *fakeVolKernel) Mount(dev, dir, _ string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.mounted[dir] = dev
	return nil
}

func (k *fakeVolKernel) Unmount(dir string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.mounted, dir)
	return nil
}

func (k *fakeVolKernel) Mounted(dir string) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.mounted[dir]
	return ok, nil
}

func (k *fakeVolKernel) MountPoints(dev string, _ bool) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for dir, d := range k.mounted {
		if d == dev {
			out = append(out, dir)
		}
	}
	return out, nil
}

func (k *fakeVolKernel) Grow(dev string, sz int64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail["grow"]; err != nil {
		return err
	}
	k.fs[dev] = max(k.fs[dev], sz)
	return nil
}

func (k *fakeVolKernel) isMounted(dir string) bool { m, _ := k.Mounted(dir); return m }

// newVolumes is a volume driver over a fakeVolKernel, its volumes in pool ("" dmsize's own,
// else an LVM VG/LV), mounted under a temporary directory. eng, if set, is its engine.
func newVolumes(t *testing.T, pool string, log logrus.FieldLogger) (*volumeDriver, *fakeVolKernel) {
	t.Helper()
	k := newFakeVolKernel()
	dir := t.TempDir()
	cfg := vol.Config{Dir: filepath.Join(dir, "volumes"), Pool: pool, PoolSize: 100 << 30, DefaultSize: 1 << 30, DefaultFS: "ext4",
		MaxSize: 50 << 30, MountRoot: filepath.Join(dir, "mnt")}
	v, err := vol.Open(cfg, k, k, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &volumeDriver{log: log, timeout: 5 * time.Second}
	d.v.Store(v)
	return d, k
}

// --- the control API

// call sends one request to a's control API and returns the answer's status and body.
func call(a *app, method, path, body string) (int, []byte) {
	w := httptest.NewRecorder()
	a.controlMux().ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
	return w.Code, w.Body.Bytes()
}

// callOK sends a request that must succeed and decodes its answer into out.
func callOK(t *testing.T, a *app, method, path, body string, out any) {
	t.Helper()
	status, b := call(a, method, path, body)
	if status != http.StatusOK {
		t.Fatalf("%s %s %s: %d %s", method, path, body, status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, b)
	}
}

// callFails sends a request that must fail with status and kind, and a message containing
// each of says; it returns the message.
func callFails(t *testing.T, a *app, method, path, body string, status int, kind string, says ...string) string {
	t.Helper()
	got, b := call(a, method, path, body)
	var e controlapi.Error
	if err := json.Unmarshal(b, &e); err != nil || got != status || e.Kind != kind {
		t.Fatalf("%s %s %s: %d %s; want %d and kind %s", method, path, body, got, b, status, kind)
	}
	for _, s := range says {
		if !strings.Contains(e.Message, s) {
			t.Errorf("%s %s %s: %q does not say %q", method, path, body, e.Message, s)
		}
	}
	return e.Message
}

// refusal is a request the control API must refuse: its body, and the answer's status, kind
// and what its message says.
type refusal struct {
	body   string
	status int
	kind   string
	says   string
}

// callRefused sends each request to method path and checks it is refused as it says.
func callRefused(t *testing.T, a *app, method, path string, cases []refusal) {
	t.Helper()
	for _, tc := range cases {
		callFails(t, a, method, path, tc.body, tc.status, tc.kind, tc.says)
	}
}

package sizer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/size"
)

const G = int64(1) << 30

// world is a fake engine, kernel and filesystem with the semantics the sizer depends on: the
// engine activates an absent device at its cached size and uses an existing one as it finds
// it; a mount fails when the filesystem is larger than its device; deactivation is a deferred
// removal that completes at the last close; a crash of the plugin drops its holds.
type world struct {
	mu         sync.Mutex
	devs       map[string]*fdev
	fs         map[int]int64 // thin id -> filesystem size
	meta       map[string]int64
	deleted    map[string]bool
	ctrs       map[string]*fctr
	held       map[string]bool
	pool       int64
	fail       map[string]error // injected: "state", "grow", "growfs", "activate", "hold", "pool", "persist", "persisted", "inspect", "list"
	activating map[string]bool  // devices the engine is creating right now (no table yet)
	mountErr   error            // the engine refuses the upload after mounting (read-only rootfs)
	mounts     int
}

type fdev struct {
	id       int
	size     int64
	active   bool
	opens    int32
	deferred bool
}

type fctr struct {
	c       Container
	running bool
}

func newWorld() *world {
	return &world{devs: map[string]*fdev{}, fs: map[int]int64{}, meta: map[string]int64{}, deleted: map[string]bool{},
		ctrs: map[string]*fctr{}, held: map[string]bool{}, pool: 100 * G, fail: map[string]error{}, activating: map[string]bool{}}
}

// id64 is a full container ID whose short form (the first 12 digits) is unique too.
func id64(n int) string { return fmt.Sprintf("%012x%052x", n, n) }

// create makes a stopped container with a 10G device, as `docker create` leaves it.
func (w *world) create(n int, labels map[string]string) Container {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := Container{ID: id64(n), Name: fmt.Sprintf("c%d", n), Labels: labels, Device: fmt.Sprintf("docker-254:0-1-%s", id64(n)), DeviceID: n, Cached: 10 * G}
	w.ctrs[c.ID] = &fctr{c: c}
	w.fs[n] = 10 * G
	w.meta[c.Device] = 10 * G
	return c
}

func (w *world) injected(op string) error {
	if err := w.fail[op]; err != nil {
		return fmt.Errorf("injected %s failure: %w", op, err)
	}
	return nil
}

// activate is the engine's activation: it cancels a pending deferred removal, and uses an
// existing device as it is.
func (w *world) activate(c Container) *fdev {
	d := w.devs[c.Device]
	if d != nil {
		d.deferred = false
	}
	if d == nil {
		d = &fdev{id: c.DeviceID, size: c.Cached, active: true}
		w.devs[c.Device] = d
	}
	return d
}

// mount is the engine's mount: it fails when the filesystem is larger than the device.
func (w *world) mount(c Container) error {
	d := w.activate(c)
	if !d.active {
		return fmt.Errorf("mount %s: device has no table", c.Device)
	}
	if w.fs[c.DeviceID] > d.size {
		w.deactivate(c.Device)
		return fmt.Errorf("mount %s: filesystem of %d bytes on a device of %d: last sector read failed", c.Device, w.fs[c.DeviceID], d.size)
	}
	d.opens++
	w.mounts++
	return nil
}

func (w *world) unmount(c Container) {
	if d := w.devs[c.Device]; d != nil {
		d.opens--
		w.mounts--
	}
	w.deactivate(c.Device)
}

// deactivate is the engine's deferred removal.
func (w *world) deactivate(name string) {
	d := w.devs[name]
	if d == nil {
		return
	}
	if d.opens > 0 {
		d.deferred = true
		return
	}
	delete(w.devs, name)
}

func (w *world) close(name string) {
	d := w.devs[name]
	d.opens--
	if d.deferred && d.opens == 0 {
		delete(w.devs, name)
	}
}

// start starts a container and returns the size of its root filesystem.
func (w *world) start(t *testing.T, id string) (int64, error) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.ctrs[id]
	if err := w.mount(f.c); err != nil {
		return 0, err
	}
	f.running = true
	return w.fs[f.c.DeviceID], nil
}

func (w *world) stop(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.ctrs[id]
	if f.running {
		f.running = false
		w.unmount(f.c)
	}
}

// crash is the plugin's death: its holds go with it.
func (w *world) crash() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name := range w.held {
		w.close(name)
	}
	w.held = map[string]bool{}
}

// restartEngine is a dockerd restart: containers stop, the plugin dies, and the engine reads
// every device's size from its metadata.
func (w *world) restartEngine() {
	for id := range w.ctrs {
		w.stop(id)
	}
	w.crash()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.ctrs {
		f.c.Cached = w.meta[f.c.Device]
	}
}

func (w *world) remove(id string) {
	w.stop(id)
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.ctrs[id]
	delete(w.ctrs, id)
	if d := w.devs[f.c.Device]; d == nil || d.opens == 0 {
		delete(w.devs, f.c.Device)
	}
	delete(w.meta, f.c.Device)
	w.deleted[f.c.Device] = true
}

// fsOf is the size of thin device n's filesystem.
func (w *world) fsOf(n int) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fs[n]
}

// --- Engine

func (w *world) Container(_ context.Context, ref string) (Container, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("inspect"); err != nil {
		return Container{}, err
	}
	for id, f := range w.ctrs {
		if id == ref || f.c.Name == ref || (len(ref) >= 4 && strings.HasPrefix(id, ref)) {
			c := f.c
			c.Running = f.running
			return c, nil
		}
	}
	return Container{}, fmt.Errorf("container %s: %w", ref, ErrNotFound)
}

func (w *world) SizedContainers(context.Context) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("list"); err != nil {
		return nil, err
	}
	var ids []string
	for id, f := range w.ctrs {
		if _, ok := f.c.Labels[size.Label]; ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

type fmount struct {
	w    *world
	c    Container
	done chan struct{}
	err  error
	once sync.Once
}

func (w *world) MountRootfs(_ context.Context, id string) Mount {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := &fmount{w: w, c: w.ctrs[id].c, done: make(chan struct{})}
	if m.err = w.mount(m.c); m.err != nil {
		close(m.done)
		return m
	}
	if w.mountErr != nil {
		m.err = w.mountErr
		w.unmount(m.c)
		close(m.done)
	}
	return m
}

func (m *fmount) Done() <-chan struct{} { return m.done }
func (m *fmount) Err() error            { return m.err }
func (m *fmount) Release() error {
	m.once.Do(func() {
		select {
		case <-m.done:
			return
		default:
		}
		m.w.mu.Lock()
		m.w.unmount(m.c)
		m.w.mu.Unlock()
		close(m.done)
	})
	return m.err
}

// --- Devices

func (w *world) State(name string) (DeviceState, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("state"); err != nil {
		return DeviceState{}, err
	}
	if w.activating[name] {
		return DeviceState{Exists: true}, nil
	}
	d := w.devs[name]
	if d == nil {
		return DeviceState{}, nil
	}
	st := DeviceState{Exists: true, Active: d.active, Opens: d.opens, Deferred: d.deferred}
	if d.active {
		st.Size = d.size
	}
	return st, nil
}

func (w *world) Grow(name string, sz int64) (time.Duration, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("grow"); err != nil {
		return 0, err
	}
	d := w.devs[name]
	if d == nil || !d.active {
		return 0, fmt.Errorf("grow %s: not active", name)
	}
	if sz < d.size {
		return 0, fmt.Errorf("grow %s: refusing to shrink", name)
	}
	d.size = sz
	return time.Millisecond, nil
}

func (w *world) Activate(name string, id int, sz int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("activate"); err != nil {
		return err
	}
	if w.devs[name] != nil {
		return fmt.Errorf("activate %s: exists", name)
	}
	w.devs[name] = &fdev{id: id, size: sz, active: true}
	return nil
}

func (w *world) GrowFS(name string, sz int64) (time.Duration, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("growfs"); err != nil {
		return 0, err
	}
	d := w.devs[name]
	if d == nil || !d.active || sz > d.size {
		return 0, fmt.Errorf("growfs %s to %d: device %+v", name, sz, d)
	}
	if sz < w.fs[d.id] {
		return 0, fmt.Errorf("growfs %s: refusing to shrink", name)
	}
	w.fs[d.id] = sz
	return time.Millisecond, nil
}

func (w *world) Hold(name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("hold"); err != nil {
		return err
	}
	if w.held[name] {
		return nil
	}
	d := w.devs[name]
	if d == nil {
		return fmt.Errorf("hold %s: %w", name, os.ErrNotExist)
	}
	d.opens++
	w.held[name] = true
	return nil
}

func (w *world) Release(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.held[name] {
		return false
	}
	delete(w.held, name)
	w.close(name)
	return true
}

func (w *world) Holds() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.held)
}

func (w *world) Held(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held[name]
}

func (w *world) FS(name string) (int64, int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.devs[name]
	if d == nil || !d.active {
		return 0, 0, fmt.Errorf("fs %s: not active", name)
	}
	return w.fs[d.id], w.fs[d.id] / 100, nil
}

func (w *world) PoolData() (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pool, w.injected("pool")
}

// --- Sizes

func (w *world) Persisted(device string) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("persisted"); err != nil {
		return 0, err
	}
	if w.deleted[device] {
		return 0, os.ErrNotExist
	}
	return w.meta[device], nil
}

func (w *world) Persist(device string, sz int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("persist"); err != nil {
		return err
	}
	if w.deleted[device] {
		return fmt.Errorf("persist %s: %w", device, os.ErrNotExist)
	}
	if sz < w.meta[device] {
		return fmt.Errorf("persist %s: refusing to lower", device)
	}
	w.meta[device] = sz
	return nil
}

func (w *world) Provisioned() (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, s := range w.meta {
		n += s
	}
	return n, nil
}

// --- the sizer under test

type obs struct {
	mu      sync.Mutex
	actions map[string]int
	ratio   float64
}

func (o *obs) Sized(action string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.actions == nil {
		o.actions = map[string]int{}
	}
	o.actions[action]++
}

func (o *obs) Overcommit(r float64) { o.mu.Lock(); o.ratio = r; o.mu.Unlock() }

type rig struct {
	t     *testing.T
	w     *world
	dir   string
	s     *Sizer
	logs  *test.Hook
	obs   *obs
	crash string // step at which the next sizer "crashes"
}

var errCrash = errors.New("simulated crash")

func newRig(t *testing.T) *rig {
	r := &rig{t: t, w: newWorld(), dir: t.TempDir()}
	r.restartPlugin(Policy{Max: 1 << 40})
	return r
}

// restartPlugin is a new plugin process on the same store and the same kernel.
func (r *rig) restartPlugin(p Policy) {
	r.t.Helper()
	l, hook := test.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	store, err := OpenStore(r.dir, l)
	if err != nil {
		r.t.Fatal(err)
	}
	r.logs, r.obs = hook, &obs{}
	r.s = New(Config{Engine: r.w, Devices: r.w, Sizes: r.w, Store: store, Policy: p, Log: l, Obs: r.obs, MountTimeout: time.Second})
	r.s.step = func(name string) error {
		if name == r.crash {
			r.crash = ""
			return fmt.Errorf("at %s: %w", name, errCrash)
		}
		return nil
	}
}

func (r *rig) ensure(ref string) (Result, error) {
	r.t.Helper()
	return r.s.Ensure(context.Background(), ref)
}

func (r *rig) mustEnsure(ref string, want Action) Result {
	r.t.Helper()
	res, err := r.ensure(ref)
	if err != nil || res.Action != want {
		r.t.Fatalf("Ensure(%s): %+v, %v; want %s", short(ref), res, err, want)
	}
	return res
}

// lines returns the log lines at level or above that contain every one of words.
func (r *rig) lines(level logrus.Level, words ...string) []string {
	var out []string
next:
	for _, e := range r.logs.AllEntries() {
		if e.Level > level {
			continue
		}
		for _, w := range words {
			if !strings.Contains(e.Message, w) {
				continue next
			}
		}
		out = append(out, e.Message)
	}
	return out
}

func label(s string) map[string]string { return map[string]string{size.Label: s} }

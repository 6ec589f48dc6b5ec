package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/size"
	"github.com/dmsize/dmsize/sizer"
)

// Strict mode (the plugin is also the engine's authorization plugin) fails closed for dm.size:
// a container create is allowed only if dmsize can see it carries no dm.size label, or if it
// is set up and its check of the label passes. Every request without dm.size, and every other
// request, is allowed untouched, at once, whatever dmsize's state (but a POST whose path cannot
// be decoded, which the engine refuses itself). A create is what the engine routes to its
// create handler, however its path is spelled (routePath). Once a create is allowed, nothing
// dmsize does afterwards denies it. In events mode the plugin is never asked.

// createURI and deleteURI are the engine's two routes strict mode looks at, as its router
// (gorilla/mux) matches them: on a request's path as routePath gives it, with or without the
// version prefix /v{version:[0-9.]+}; a container's name is {name:.*}, as the engine has it
// (a legacy link's name, parent/alias, has a slash). Strict mode never looks at the other
// container routes (start, restart, update, ...): they are allowed untouched.
var (
	createURI = regexp.MustCompile(`^(/v[0-9.]+)?/containers/create$`)
	deleteURI = regexp.MustCompile(`^(/v[0-9.]+)?/containers/(.+)$`)
)

// routePath is the path the engine routes a request on, from the raw request target the
// engine hands an authorization plugin (RequestUri): net/http parses the target with
// url.ParseRequestURI (an absolute-form http://host/path is accepted), and gorilla/mux matches
// its decoded URL.Path, so /v1.41/containers/%63reate, /v1.41%2Fcontainers/create and
// http://docker/containers/create all reach the create handler. mux redirects a path that is
// not clean instead of routing it; it is cleaned here all the same, as mux cleans it.
func routePath(requestURI string) (string, error) {
	u, err := url.ParseRequestURI(requestURI)
	if err != nil {
		return "", err
	}
	// mux's cleanPath: rooted, path.Clean, and a trailing slash kept (a route without one
	// does not match it).
	p := "/" + strings.TrimPrefix(u.Path, "/")
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean, nil
}

const (
	// recheckAfter is how long after a DELETE that let go of a device strict mode looks
	// whether the container is gone, and how long between looks at a running container.
	recheckAfter = 10 * time.Second
	// recheckTries bounds the looks at a container that runs (the engine may be killing it)
	// and the looks while the engine does not answer.
	recheckTries = 6
	// recheckMax is the longest wait between looks while the engine removes a container.
	recheckMax = 5 * time.Minute
)

// looks is what a re-check after a DELETE may still do: when to look next, and how many more
// looks are left at a running container, and while the engine does not answer.
type looks struct {
	wait          time.Duration
	running, errs int
}

// firstLooks are a DELETE's: every recheckAfter, recheckTries of each.
var firstLooks = looks{wait: recheckAfter, running: recheckTries, errs: recheckTries}

// inflight counts, by container ID, the DELETEs that let go of the container's device and
// whose response has not come: while one is counted, the engine may be killing the container
// for it. A DELETE that a later authorization plugin denies is never answered: its re-check
// drops the count.
type inflight struct {
	mu sync.Mutex
	n  map[string]int
}

// add adds d to container id's count and returns the count (never below 0).
func (f *inflight) add(id string, d int) int {
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := max(f.n[id]+d, 0)
	if n == 0 {
		delete(f.n, id)
		return 0
	}
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.n[id] = n
	return n
}

// clear drops container id's count.
func (f *inflight) clear(id string) {
	if f != nil {
		f.mu.Lock()
		delete(f.n, id)
		f.mu.Unlock()
	}
}

// errNoBody: the engine forwarded no body, so dmsize cannot see the labels.
var errNoBody = errors.New("cannot see whether this create asks for dm.size: the engine forwarded no body; " +
	"it forwards only JSON bodies under 1 MiB (older engines: only those sent with a Content-Length)")

// strictSizer is what strict mode needs of the sizer.
type strictSizer interface {
	CheckNew(label string, base int64) error
	Ensure(ctx context.Context, ref string) (sizer.Result, error)
	ReleaseForRemoval(ctx context.Context, ref string) (string, error)
	Container(ctx context.Context, ref string) (sizer.Container, error)
	RemovalFailed(id string)
}

// liveSizer is the plugin's sizer as strict mode uses it.
type liveSizer struct{ *sizer.Sizer }

func (l liveSizer) Container(ctx context.Context, ref string) (sizer.Container, error) {
	return l.Engine.Container(ctx, ref)
}

// strict answers one authorization call from a snapshot of the plugin's state.
type strict struct {
	sizer    strictSizer           // nil until dmsize is set up
	notReady *string               // why it gave up, once it did
	base     int64                 // the engine's base device size; 0 when unknown
	readBase func() (int64, error) // reads it again while it is unknown (nil: it cannot)
	deletes  *inflight             // the DELETEs that let go of a device, awaiting their response
	log      logrus.FieldLogger
	after    func(time.Duration, func()) // runs a function later (a timer, not a goroutine)
	// settled waits (bounded) for a starting plugin and says what it then is; nil: no waiting.
	settled func() strict
}

func (a *app) strict() strict {
	st := strict{log: a.log, after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
	// The set-up is published after the base size is read: loaded first, it makes the base visible.
	if su := a.setup.Load(); su != nil {
		st.sizer = liveSizer{su.sizer}
	}
	st.notReady, st.base, st.readBase, st.deletes = a.notReady.Load(), a.base.Load(), a.baseSize, &a.deletes
	if st.sizer == nil && st.notReady == nil {
		st.settled = func() strict {
			a.awaitSettled(readyWait)
			now := a.strict()
			now.settled = nil
			return now
		}
	}
	return st
}

// AuthZReq is strict mode's request phase: the failure rule for creates, and a DELETE lets go
// of the container's device first so that the engine deletes it at once.
func (a *app) AuthZReq(req authorization.Request) authorization.Response {
	if a.cfg.Mode != "strict" {
		return allow
	}
	return a.strict().request(req)
}

// AuthZRes is strict mode's response phase: once the engine created a container, dmsize sizes
// its device while the create response is held, so the first start sees the size.
func (a *app) AuthZRes(req authorization.Request) authorization.Response {
	if a.cfg.Mode != "strict" {
		return allow
	}
	return a.strict().response(req)
}

func (st strict) request(req authorization.Request) authorization.Response {
	if req.RequestMethod != http.MethodPost && req.RequestMethod != http.MethodDelete {
		return allow
	}
	p, err := routePath(req.RequestURI)
	switch {
	case err != nil && req.RequestMethod == http.MethodPost:
		// The engine refuses such a request itself (400) before routing it; were one to reach
		// its handlers, it might be a create.
		return st.deny(errors.New("cannot see whether this POST is a container create: its path cannot be decoded: "+err.Error()), "")
	case err != nil:
		return allow
	case req.RequestMethod == http.MethodDelete:
		if m := deleteURI.FindStringSubmatch(p); m != nil && st.sizer != nil {
			st.releaseForRemoval(m[2])
		}
		return allow
	case !createURI.MatchString(p):
		return allow
	}
	label, labelled, err := sizeLabel(req)
	switch {
	case err != nil:
		return st.deny(err, "")
	case !labelled:
		return allow
	case st.sizer == nil && st.notReady != nil:
		return st.deny(errors.New("not active, so it cannot honour dm.size: "+*st.notReady), label)
	case st.sizer == nil && st.settled != nil:
		// Starting (dockerd restarts its plugins with itself): wait for it, bounded.
		return st.settled().request(req)
	case st.sizer == nil:
		return st.deny(errors.New("starting, not ready to check dm.size yet; retry in a few seconds"), label)
	}
	base, err := st.baseSize()
	if base <= 0 {
		why := "dmsize could not read the engine's base device size"
		if err != nil {
			why += ": " + err.Error()
		}
		return st.deny(errors.New("cannot check label dm.size="+label+": "+why), label)
	}
	err = st.sizer.CheckNew(label, base)
	if err != nil && !errs.IsRefusal(err) {
		err = errors.New("cannot check label dm.size=" + label + ": " + err.Error() + "; retry")
	}
	if err != nil {
		return st.deny(err, label)
	}
	return allow
}

// baseSize is the engine's base device size, read again if it is not known.
func (st strict) baseSize() (int64, error) {
	if st.base > 0 || st.readBase == nil {
		return st.base, nil
	}
	return st.readBase()
}

// sizeLabel reads a create's dm.size label, or says why it cannot be seen.
func sizeLabel(req authorization.Request) (label string, ok bool, err error) {
	if len(req.RequestBody) == 0 {
		if header(req.RequestHeaders, "Content-Length") == "0" {
			// No body at all: no labels (and the engine refuses a create without a config,
			// "invalid JSON: got EOF"). The engine's net/http drops the Content-Length of a
			// chunked request, so "0" is a body that is truly empty.
			return "", false, nil
		}
		return "", false, errNoBody
	}
	var body struct{ Labels map[string]string }
	if err := json.Unmarshal(req.RequestBody, &body); err != nil {
		return "", false, errors.New("cannot see whether this create asks for dm.size: its body is not a JSON container config: " + err.Error())
	}
	label, ok = body.Labels[size.Label]
	return label, ok, nil
}

func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// deny logs a denied create and answers it with one line.
func (st strict) deny(err error, label string) authorization.Response {
	log := st.log
	if label != "" {
		log = log.WithField("label", label)
	}
	log.Warnf("denied a container create: %v", err)
	msg := strings.Join(strings.Fields("dmsize: "+err.Error()), " ")
	return authorization.Response{Allow: false, Msg: msg}
}

func (st strict) response(req authorization.Request) authorization.Response {
	if st.sizer == nil {
		return allow
	}
	p, err := routePath(req.RequestURI)
	if err != nil {
		return allow
	}
	if req.RequestMethod == http.MethodDelete {
		if m := deleteURI.FindStringSubmatch(p); m != nil {
			st.removed(m[2], req.ResponseStatusCode >= 200 && req.ResponseStatusCode < 300)
		}
		return allow
	}
	if req.RequestMethod != http.MethodPost || req.ResponseStatusCode != http.StatusCreated || !createURI.MatchString(p) {
		return allow
	}
	var created struct {
		ID string `json:"Id"`
	}
	if json.Unmarshal(req.ResponseBody, &created) != nil || created.ID == "" {
		return allow
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	r, err := st.sizer.Ensure(ctx, created.ID)
	switch {
	case err == nil && r.Action == sizer.Grown:
		st.log.WithFields(logrus.Fields{"container": r.Container, "ms": time.Since(start).Milliseconds()}).Debug("sized before the create response")
	case err != nil && !errs.IsRefusal(err): // a rejection was logged by the sizer
		// Allowed all the same: the container exists whatever dmsize answers (a denial would
		// only keep its ID from the client), and its create and start events retry the sizing.
		st.log.WithError(err).WithField("container", created.ID).Warn("sizing a created container failed; its events retry it")
	}
	return allow
}

// releaseForRemoval lets go of the device of the container a DELETE names, before the engine
// removes it. The engine may then not remove it (a later authorization plugin denies the
// DELETE, and AuthZRes never comes; or the removal fails): a re-check puts the hold back.
func (st strict) releaseForRemoval(ref string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := st.sizer.ReleaseForRemoval(ctx, ref)
	if err != nil && !errors.Is(err, sizer.ErrNotFound) {
		st.log.WithError(err).WithField("container", ref).Warn("letting go of a device before its container's removal; the engine deletes it later")
	}
	if id != "" {
		st.deletes.add(id, 1)
		st.recheck(id, firstLooks)
	}
}

// removed is the response to a DELETE of container ref: the engine is done with it. If the
// removal failed (a handler's error has no status here: the engine writes it after this
// phase) and no other DELETE of the container is in flight, the container stays, and so must
// its hold. A container that is gone (removed) leaves its count to its re-check.
func (st strict) removed(ref string, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := st.sizer.Container(ctx, ref)
	if err != nil {
		return // gone; or the engine does not answer, and the re-check settles it
	}
	if st.deletes.add(c.ID, -1) == 0 && !ok {
		st.settle(c, firstLooks)
	}
}

// recheck looks at container id again after l.wait. Nothing waits in between: a pending look
// is a timer, and the Ensure that RemovalFailed queues runs on the sizer's workers, which stop
// with the plugin and which main waits for. A look that a stop cuts off is done by the
// reconcile at the next start.
func (st strict) recheck(id string, l looks) {
	st.after(l.wait, func() { st.look(id, l) })
}

// look decides whether container ref, whose device a DELETE let go of, is still there once the
// engine is done with it, and then has RemovalFailed hold the device again (the DELETE was
// denied by a later authorization plugin, and no AuthZRes comes; the removal failed; or it
// removed only a link). If it is gone (its destroy event may come first), there is nothing
// left to do.
func (st strict) look(ref string, l looks) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := st.sizer.Container(ctx, ref)
	switch {
	case errors.Is(err, sizer.ErrNotFound):
		st.deletes.clear(ref)
	case err != nil && l.errs > 1:
		l.errs--
		st.recheck(ref, l)
	case err != nil:
		st.log.WithError(err).WithField("container", ref).Warn("re-checking a container after a DELETE; the reconcile at the next connection to the engine repairs it")
	default:
		st.settle(c, l)
	}
}

// settle holds container c's device again, unless the engine may still be deleting it: a
// device dmsize holds open is busy at the engine's delete, and `docker rm` fails (EBUSY).
// While the engine says "removing", it looks again, less and less often, for as long as that
// lasts. While the container runs and a DELETE of it is unanswered, the engine may be killing
// it, the first step of `docker rm -f` (inspect says "running" until the process is gone; the
// engine gives up a kill within about 30 s, and answers the DELETE): it looks again, and holds
// it again only after recheckTries looks, a minute, when that DELETE was denied by a later
// authorization plugin. The sizer, too, skips a container the engine says it is removing,
// whatever queued its Ensure.
func (st strict) settle(c sizer.Container, l looks) {
	switch {
	case c.State == "removing":
		l.wait = min(2*l.wait, recheckMax)
		st.recheck(c.ID, l)
	case c.Running && l.running > 1 && st.deletes.add(c.ID, 0) > 0:
		l.running--
		st.recheck(c.ID, l)
	default:
		st.deletes.clear(c.ID)
		st.sizer.RemovalFailed(c.ID)
	}
}

var allow = authorization.Response{Allow: true}

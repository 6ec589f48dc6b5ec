package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/sizer"
)

// Strict mode (the plugin is also the engine's authorization plugin) fails closed for dm.size:
// a container create is allowed only if dmsize can see it carries no dm.size label, or if it
// is set up and its check of the label passes. Every request without dm.size, and every other
// request, is allowed untouched, at once, whatever dmsize's state. Once a create is allowed,
// nothing dmsize does afterwards denies it. In events mode the plugin is never asked.

var (
	createURI = regexp.MustCompile(`^(/v[0-9.]+)?/containers/create(\?|$)`)
	deleteURI = regexp.MustCompile(`^(/v[0-9.]+)?/containers/([^/?]+)(\?|$)`)
)

const (
	// recheckAfter is how long after a DELETE that let go of a device strict mode looks
	// whether the container is gone.
	recheckAfter = 10 * time.Second
	// recheckTries bounds the looks while the engine is still removing the container.
	recheckTries = 6
)

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
	sizer    strictSizer // nil until dmsize is set up
	notReady *string     // why it gave up, once it did
	base     int64       // the engine's base device size; 0 when unknown
	log      logrus.FieldLogger
	after    func(time.Duration, func()) // runs a function later (a timer, not a goroutine)
}

func (a *app) strict() strict {
	st := strict{log: a.log, after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
	// The sizer is stored after the base size: loaded first, it makes the base visible.
	if s := a.sizer.Load(); s != nil {
		st.sizer = liveSizer{s}
	}
	st.notReady, st.base = a.notReady.Load(), a.base.Load()
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
	if req.RequestMethod == http.MethodDelete {
		if m := deleteURI.FindStringSubmatch(req.RequestURI); m != nil && st.sizer != nil {
			st.releaseForRemoval(m[2])
		}
		return allow
	}
	if req.RequestMethod != http.MethodPost || !createURI.MatchString(req.RequestURI) {
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
	case st.sizer == nil:
		return st.deny(errors.New("starting, not ready to check dm.size yet; retry in a few seconds"), label)
	case st.base <= 0:
		return st.deny(errors.New("cannot check label dm.size="+label+": dmsize could not read the engine's base device size"), label)
	}
	err = st.sizer.CheckNew(label, st.base)
	if err != nil && !sizer.IsRejection(err) {
		err = errors.New("cannot check label dm.size=" + label + ": " + err.Error() + "; retry")
	}
	if err != nil {
		return st.deny(err, label)
	}
	return allow
}

// sizeLabel reads a create's dm.size label, or says why it cannot be seen.
func sizeLabel(req authorization.Request) (label string, ok bool, err error) {
	if len(req.RequestBody) == 0 {
		if header(req.RequestHeaders, "Content-Length") == "0" {
			// No body at all: no labels (and the engine refuses a create without a config).
			return "", false, nil
		}
		return "", false, errNoBody
	}
	var body struct{ Labels map[string]string }
	if err := json.Unmarshal(req.RequestBody, &body); err != nil {
		return "", false, errors.New("cannot see whether this create asks for dm.size: its body is not a JSON container config: " + err.Error())
	}
	label, ok = body.Labels[sizer.SizeLabel]
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
	if req.RequestMethod == http.MethodDelete {
		if m := deleteURI.FindStringSubmatch(req.RequestURI); m != nil && req.ResponseStatusCode >= 300 {
			// The removal failed: the container stays, and so must its hold.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if c, err := st.sizer.Container(ctx, m[2]); err == nil {
				st.sizer.RemovalFailed(c.ID)
			}
		}
		return allow
	}
	if req.RequestMethod != http.MethodPost || req.ResponseStatusCode != http.StatusCreated || !createURI.MatchString(req.RequestURI) {
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
	case err != nil && !sizer.IsRejection(err): // a rejection was logged by the sizer
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
		st.recheck(id, recheckTries)
	}
}

// recheck looks, recheckAfter from now, whether container id is gone (its destroy event may
// come first: then there is nothing left to do). If it is still there, it queues an Ensure on
// the sizer's workers, as a start event would, and the sizer's repair puts the hold back.
// While the engine is still removing it, it looks again, up to tries times in all. Nothing
// waits in between: a pending look is a timer, and the Ensure runs on the sizer's workers,
// which stop with the plugin and which main waits for. A look that a stop cuts off is done by
// the reconcile at the next start.
func (st strict) recheck(id string, tries int) {
	st.after(recheckAfter, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := st.sizer.Container(ctx, id)
		switch {
		case errors.Is(err, sizer.ErrNotFound):
		case (err != nil || c.State == "removing") && tries > 1:
			st.recheck(id, tries-1)
		case err != nil:
			st.log.WithError(err).WithField("container", id).Warn("re-checking a container after a DELETE; the reconcile at the next connection to the engine repairs it")
		default:
			st.sizer.RemovalFailed(c.ID)
		}
	})
}

var allow = authorization.Response{Allow: true}

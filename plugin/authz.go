package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/sizer"
)

var (
	createURI = regexp.MustCompile(`^(/v[0-9.]+)?/containers/create(\?|$)`)
	deleteURI = regexp.MustCompile(`^(/v[0-9.]+)?/containers/([^/?]+)(\?|$)`)
)

// AuthZReq is strict mode's first half: a container create whose dm.size label dmsize would
// reject is denied with the reason. Every other request is allowed untouched, at once. In
// events mode (the plugin is not in the engine's authorization-plugins) it is never called.
func (a *app) AuthZReq(req authorization.Request) authorization.Response {
	s := a.sizer.Load()
	if a.cfg.Mode != "strict" || s == nil {
		return allow
	}
	if req.RequestMethod == http.MethodDelete {
		if m := deleteURI.FindStringSubmatch(req.RequestURI); m != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// The engine deletes the device right away only if nothing holds it.
			s.ReleaseForRemoval(ctx, m[2])
		}
		return allow
	}
	if req.RequestMethod != http.MethodPost || !createURI.MatchString(req.RequestURI) {
		return allow
	}
	var body struct{ Labels map[string]string }
	if json.Unmarshal(req.RequestBody, &body) != nil {
		return allow // the engine will say what is wrong with it
	}
	label, ok := body.Labels[sizer.SizeLabel]
	if !ok {
		return allow
	}
	if err := s.CheckNew(label, a.base.Load()); err != nil {
		a.log.WithField("label", label).Warnf("denied a container create: %v", err)
		return authorization.Response{Allow: false, Msg: "dmsize: " + err.Error()}
	}
	return allow
}

// AuthZRes is strict mode's second half: once the engine created a labelled container, dmsize
// sizes its device while the create response is held, so the first start sees the size.
func (a *app) AuthZRes(req authorization.Request) authorization.Response {
	s := a.sizer.Load()
	if a.cfg.Mode != "strict" || s == nil {
		return allow
	}
	if req.RequestMethod == http.MethodDelete {
		if m := deleteURI.FindStringSubmatch(req.RequestURI); m != nil && req.ResponseStatusCode >= 300 {
			// The removal failed: the container stays, and so must its hold.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s.Ensure(ctx, m[2])
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
	r, err := s.Ensure(ctx, created.ID)
	if err == nil && r.Action == sizer.Grown {
		a.log.WithFields(logrus.Fields{"container": r.Container, "ms": time.Since(start).Milliseconds()}).Debug("sized before the create response")
	}
	// A failure was logged by Ensure; the container runs at its current size.
	return allow
}

var allow = authorization.Response{Allow: true}

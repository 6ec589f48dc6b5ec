package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/guard"
	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/size"
	"github.com/dmsize/dmsize/sizer"
	vol "github.com/dmsize/dmsize/volume"
)

// serveControl serves the control API on a root-only unix socket until ctx ends.
func (a *app) serveControl(ctx context.Context, dir string) error {
	path := filepath.Join(dir, controlapi.SocketName)
	os.Remove(path) // a socket left by a killed process
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return err
	}
	srv := &http.Server{Handler: a.controlMux(), ReadHeaderTimeout: 10 * time.Second}
	context.AfterFunc(ctx, func() { srv.Close() })
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (a *app) controlMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+controlapi.PathVersion, func(w http.ResponseWriter, r *http.Request) {
		reply(w, controlapi.Version{Plugin: version, API: controlapi.APIVersion})
	})
	mux.HandleFunc("GET "+controlapi.PathContainers, a.handleContainers)
	mux.HandleFunc("POST "+controlapi.PathGrow, a.handleGrow)
	mux.HandleFunc("GET "+controlapi.PathPool, a.handlePool)
	mux.HandleFunc("POST "+controlapi.PathPoolExtend, a.handleExtend)
	mux.HandleFunc("GET "+controlapi.PathMetrics, a.handleMetrics)
	mux.HandleFunc("GET "+controlapi.PathVolumes, a.handleVolumes)
	mux.HandleFunc("POST "+controlapi.PathVolumeGrow, a.handleVolumeGrow)
	return mux
}

// ready is the set-up plugin, or nil after an answer saying why it is not set up yet.
func (a *app) ready(w http.ResponseWriter) *setUp {
	su := a.setup.Load()
	if su == nil {
		a.notSetUp(w)
	}
	return su
}

// notSetUp answers 503 with why the plugin is not set up.
func (a *app) notSetUp(w http.ResponseWriter) {
	why := "the plugin is not set up (the engine's API is not answering yet, or its storage is not devicemapper: see dockerd's log)"
	if msg := a.notReady.Load(); msg != nil {
		why = *msg
	}
	fail(w, http.StatusServiceUnavailable, controlapi.KindUnavailable, why)
}

// handleMetrics serves the Prometheus exposition. Until the registry exists (it needs the
// pool's name, so it comes with the sizer and the guard) the answer is 503 with the reason, as
// the other endpoints give it, not an empty exposition: a scrape that fails sets `up` to 0 and
// says why, where an empty one would look healthy while no dmsize metric exists.
func (a *app) handleMetrics(w http.ResponseWriter, r *http.Request) {
	su := a.setup.Load()
	if su == nil || su.metrics == nil {
		a.notSetUp(w)
		return
	}
	su.metrics.Handler().ServeHTTP(w, r)
}

func (a *app) handleContainers(w http.ResponseWriter, r *http.Request) {
	su := a.ready(w)
	if su == nil {
		return
	}
	s := su.sizer
	refs := r.URL.Query()["ref"]
	if len(refs) == 0 {
		ids, err := s.Known(r.Context())
		if err != nil {
			fail(w, http.StatusInternalServerError, controlapi.KindFailed, err.Error())
			return
		}
		refs = ids
	}
	out := make([]controlapi.Container, 0, len(refs))
	for _, ref := range refs {
		st, err := s.Status(r.Context(), ref)
		if errors.Is(err, sizer.ErrNotFound) && len(r.URL.Query()["ref"]) == 0 {
			continue // removed since it was listed
		}
		if err != nil {
			failWith(w, fmt.Sprintf("container %s", ref), err)
			return
		}
		out = append(out, containerOf(st))
	}
	reply(w, out)
}

func (a *app) handleGrow(w http.ResponseWriter, r *http.Request) {
	su := a.ready(w)
	if su == nil {
		return
	}
	s := su.sizer
	var req controlapi.GrowRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.Ref == "" {
		fail(w, http.StatusBadRequest, controlapi.KindInvalid, "a grow request needs a container and a size")
		return
	}
	sz, err := size.Parse(req.Size)
	if err != nil {
		fail(w, http.StatusBadRequest, controlapi.KindInvalid, fmt.Sprintf("container %s: %v", req.Ref, err))
		return
	}
	res, err := s.Grow(r.Context(), req.Ref, sz, req.DryRun)
	if err != nil {
		name := req.Ref
		if res.Name != "" {
			name = res.Name
		}
		failWith(w, fmt.Sprintf("container %s: grow to %s", name, size.Format(sz)), err)
		return
	}
	st, _ := s.Status(r.Context(), res.Container)
	out := controlapi.GrowResult{Container: containerOf(st), Action: string(res.Action), BeforeBytes: res.Before, AfterBytes: res.After,
		Strategy: string(res.Strategy), DurationMS: res.Duration.Milliseconds()}
	switch res.Action {
	case sizer.Grown:
		out.Message = fmt.Sprintf("grown from %s to %s", size.Format(res.Before), size.Format(res.After))
	case sizer.WouldGrow:
		out.Message = fmt.Sprintf("would grow from %s to %s (dry run: nothing changed)", size.Format(res.Before), size.Format(res.After))
	default:
		out.Message = fmt.Sprintf("already %s", size.Format(res.After))
	}
	reply(w, out)
}

// containerOf turns a sizer status into the API's form.
func containerOf(st sizer.Status) controlapi.Container {
	c := st.Container
	out := controlapi.Container{ID: c.ID, Name: c.Name, State: c.State, Label: c.Labels[size.Label], Device: c.Device,
		CachedBytes: c.Cached, PersistedBytes: st.Persisted, Held: st.Held, FSSizeBytes: st.FSSize, FSUsedBytes: st.FSUsed,
		LastAction: string(st.Last.Action), LastError: st.Last.Error}
	if st.Device.Active {
		out.SizeBytes = st.Device.Size
	}
	if st.Known {
		out.GrownBytes = st.Record.Grown
		out.Updated = st.Record.Updated.Format(time.RFC3339)
		if out.LastError == "" && st.Record.Rejected != "" {
			out.LastAction, out.LastError = string(sizer.Rejected), st.Record.Rejected
		}
	}
	return out
}

// failWith answers the error of an operation on what. A refusal (nothing changed) is 409,
// an unknown container or volume 404, anything else a failure. It is the one place the
// plugin tells a "no" from a failure.
func failWith(w http.ResponseWriter, what string, err error) {
	msg := err.Error()
	if what != "" {
		msg = what + ": " + msg
	}
	switch {
	case errs.IsRefusal(err):
		fail(w, http.StatusConflict, controlapi.KindRefused, msg)
	case errors.Is(err, sizer.ErrNotFound):
		fail(w, http.StatusNotFound, controlapi.KindNotFound, what+": no such container")
	case errors.Is(err, vol.ErrNotFound):
		fail(w, http.StatusNotFound, controlapi.KindNotFound, msg)
	default:
		fail(w, http.StatusInternalServerError, controlapi.KindFailed, msg)
	}
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, kind, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(controlapi.Error{Kind: kind, Message: strings.TrimSpace(msg)})
}

func (a *app) handlePool(w http.ResponseWriter, r *http.Request) {
	su := a.ready(w)
	if su == nil {
		return
	}
	s := su.sizer
	g, b := su.guard, su.backend
	if g == nil {
		fail(w, http.StatusServiceUnavailable, controlapi.KindUnavailable, "the pool guard is not running (see dockerd's log)")
		return
	}
	st := g.Status()
	out := controlapi.Pool{Name: st.Pool, Kind: st.Kind, DataUsedBytes: st.Usage.DataUsed, DataSizeBytes: st.Usage.DataTotal,
		MetaUsedBytes: st.Usage.MetaUsed, MetaSizeBytes: st.Usage.MetaTotal, Mode: st.Usage.Mode, RoomBytes: st.Room,
		RoomWhy: st.RoomWhy, Guard: "on", Threshold: st.Threshold, Blocked: st.Blocked, ContainersHeld: b.Holds(),
		ContainersWithRec: len(s.Store.All())}
	if !st.Extend {
		out.Guard = "off"
	}
	if st.RoomErr != "" {
		out.RoomWhy = st.RoomErr
	}
	if p, err := b.Provisioned(); err == nil {
		out.ProvisionedBytes = p
		if st.Usage.DataTotal > 0 {
			out.OvercommitRatio = float64(p) / float64(st.Usage.DataTotal)
		}
	}
	reply(w, out)
}

func (a *app) handleExtend(w http.ResponseWriter, r *http.Request) {
	su := a.ready(w)
	if su == nil {
		return
	}
	g := su.guard
	if g == nil {
		fail(w, http.StatusServiceUnavailable, controlapi.KindUnavailable, "the pool guard is not running (see dockerd's log)")
		return
	}
	var req controlapi.ExtendRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, controlapi.KindInvalid, "an extend request needs a size")
		return
	}
	part := "data"
	if req.Metadata {
		part = "metadata"
	}
	rel := strings.HasPrefix(req.Size, "+")
	sz, err := size.Parse(strings.TrimPrefix(req.Size, "+"))
	if err != nil {
		fail(w, http.StatusBadRequest, controlapi.KindInvalid, fmt.Sprintf("pool %s: %v", part, err))
		return
	}
	ext, err := g.Extend(r.Context(), guard.Request{Metadata: req.Metadata, Size: sz, By: rel})
	if err != nil {
		failWith(w, fmt.Sprintf("pool %s to %s", part, req.Size), err)
		return
	}
	out := controlapi.ExtendResult{Part: part, BeforeBytes: ext.From, AfterBytes: ext.To, Message: ext.Message}
	if !ext.Live.IsZero() {
		out.DurationMS = ext.Live.Sub(ext.Seen).Milliseconds()
	}
	reply(w, out)
}

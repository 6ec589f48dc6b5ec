package plugin

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/sizer"
)

// dmsize grow through the control API, on the real sizer over a fake backend: each action's
// answer (would-grow, grown, unchanged) with the container as it is afterwards, and what the
// backend was asked to do; then each refusal and failure, naming the container and the size.
func TestControlGrow(t *testing.T) {
	l, _ := test.NewNullLogger()
	a := &app{log: l}
	b := newFakeBackend()
	withSizer(t, a, b, sizer.Policy{Max: 100 << 30})
	grow := controlapi.PathGrow

	var res controlapi.GrowResult
	callOK(t, a, "POST", grow, `{"ref":"web","size":"30G","dry_run":true}`, &res)
	if res.Action != controlapi.ActionWouldGrow || res.BeforeBytes != 10<<30 || res.AfterBytes != 30<<30 ||
		res.Message != "would grow from 10GiB to 30GiB (dry run: nothing changed)" || res.Container.SizeBytes != 10<<30 {
		t.Fatalf("dry run: %+v", res)
	}
	if calls := b.Calls(); len(calls) != 0 {
		t.Fatalf("a dry run changed something: %q", calls)
	}

	res = controlapi.GrowResult{}
	callOK(t, a, "POST", grow, `{"ref":"web","size":"30G"}`, &res)
	c := res.Container
	if res.Action != controlapi.ActionGrown || res.Strategy != string(sizer.GrowLive) || res.Message != "grown from 10GiB to 30GiB" ||
		res.BeforeBytes != 10<<30 || res.AfterBytes != 30<<30 || res.DurationMS < 0 {
		t.Fatalf("grow: %+v", res)
	}
	if c.ID != webID || c.Name != "web" || c.State != "running" || c.Label != "20G" || c.Device != "thin-web" || c.SizeBytes != 30<<30 ||
		c.CachedBytes != 10<<30 || c.PersistedBytes != 30<<30 || !c.Held || c.GrownBytes != 30<<30 || c.FSSizeBytes != 30<<30 ||
		c.FSUsedBytes != 1<<30 || c.LastAction != string(sizer.Grown) || c.LastError != "" {
		t.Fatalf("the container after its grow: %+v", c)
	}
	if _, err := time.Parse(time.RFC3339, c.Updated); err != nil {
		t.Fatalf("updated %q: %v", c.Updated, err)
	}
	want := "persist thin-web 32212254720,hold thin-web,grow thin-web 32212254720,growfs thin-web 32212254720"
	if got := strings.Join(b.Calls(), ","); got != want {
		t.Fatalf("backend calls\n%s\nwant\n%s", got, want)
	}

	res = controlapi.GrowResult{}
	callOK(t, a, "POST", grow, `{"ref":"`+webID+`","size":"30G"}`, &res)
	if res.Action != controlapi.ActionUnchanged || res.Message != "already 30GiB" || res.Container.Name != "web" {
		t.Fatalf("the same size again, by ID: %+v", res)
	}

	callRefused(t, a, "POST", grow, []refusal{
		{`{"ref":"web","size":"20G"}`, http.StatusConflict, controlapi.KindRefused,
			"container web: grow to 20GiB: size 20GiB rejected: 20GiB is smaller than the current size 30GiB; dmsize never shrinks a filesystem"},
		{`{"ref":"web","size":"200G"}`, http.StatusConflict, controlapi.KindRefused,
			"container web: grow to 200GiB: size 200GiB rejected: 200GiB is above the plugin's maximum 100GiB"},
		{`{"ref":"nosuch","size":"40G"}`, http.StatusNotFound, controlapi.KindNotFound, "container nosuch: grow to 40GiB: no such container"},
		{`{"ref":"web","size":""}`, http.StatusBadRequest, controlapi.KindInvalid, "container web: "},
		{`{"ref":"web"`, http.StatusBadRequest, controlapi.KindInvalid, "a grow request needs a container and a size"},
		{`{"size":"40G"}`, http.StatusBadRequest, controlapi.KindInvalid, "a grow request needs a container and a size"},
	})

	// A failure names the container by its name even when asked by ID.
	b.stateErr = errors.New("dm: info thin-web: input/output error")
	callFails(t, a, "POST", grow, `{"ref":"`+webID+`","size":"40G"}`, http.StatusInternalServerError, controlapi.KindFailed,
		"container web: grow to 40GiB: dm: info thin-web: input/output error")
	for _, c := range b.Calls()[4:] {
		if c != "hold thin-web" { // the repair keeps the grown device held: idempotent
			t.Fatalf("refused or failed grows changed something: %q", b.Calls())
		}
	}
}

// dmsize status through the control API: every container dmsize knows (labelled, or with a
// record; one gone since it was listed is left out), or the ones asked for, each with what
// the sizer knows of it; a rejection recorded at an earlier start shows as the last action.
func TestControlContainers(t *testing.T) {
	l, _ := test.NewNullLogger()
	a := &app{log: l}
	b := newFakeBackend()
	s := withSizer(t, a, b, sizer.Policy{})
	const goneID = "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0"
	b.sized = []string{webID, goneID}
	rejected := "label dm.size=5G rejected: 5GiB is smaller than the current size 10GiB; dmsize never shrinks a filesystem"
	if err := s.Store.Put(sizer.Record{ID: dbID, Name: "db", Device: "thin-db", Label: "5G", Rejected: rejected, Updated: time.Now()}); err != nil {
		t.Fatal(err)
	}

	var list []controlapi.Container
	callOK(t, a, "GET", controlapi.PathContainers, "", &list)
	if len(list) != 2 || list[0].ID != webID || list[1].ID != dbID {
		t.Fatalf("containers: %+v", list)
	}
	web, db := list[0], list[1]
	if web.SizeBytes != 10<<30 || web.PersistedBytes != 10<<30 || web.Label != "20G" || web.Held || web.Updated != "" || web.LastAction != "" || web.FSSizeBytes != 10<<30 {
		t.Fatalf("web: %+v", web)
	}
	if db.SizeBytes != 0 || db.FSSizeBytes != 0 || db.State != "exited" || db.LastAction != string(sizer.Rejected) || db.LastError != rejected || db.Updated == "" {
		t.Fatalf("db (device not active, a rejection on record): %+v", db)
	}

	list = nil
	callOK(t, a, "GET", controlapi.PathContainers+"?ref=db", "", &list)
	if len(list) != 1 || list[0].Name != "db" {
		t.Fatalf("containers db: %+v", list)
	}
	callFails(t, a, "GET", controlapi.PathContainers+"?ref=db&ref=nosuch", "", http.StatusNotFound, controlapi.KindNotFound, "container nosuch: no such container")

	b.stateErr = errors.New("dm: info thin-web: input/output error")
	callFails(t, a, "GET", controlapi.PathContainers, "", http.StatusInternalServerError, controlapi.KindFailed, "container "+webID+": dm: info thin-web: input/output error")
	b.listErr = errors.New("engine: listing containers: connection refused")
	callFails(t, a, "GET", controlapi.PathContainers, "", http.StatusInternalServerError, controlapi.KindFailed, "engine: listing containers: connection refused")
}

// The control socket is root's only, replaces one a killed process left, and an unusable
// directory is an error naming it.
func TestServeControlSocket(t *testing.T) {
	l, _ := test.NewNullLogger()
	a := &app{log: l}
	dir := t.TempDir()
	path := filepath.Join(dir, controlapi.SocketName)
	if err := os.WriteFile(path, nil, 0o644); err != nil { // left by a killed process
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serveControl(ctx, dir) }()
	c := controlapi.NewClient(path)
	eventually(t, "the control socket", func() bool { _, err := c.Version(ctx); return err == nil })
	if fi, err := os.Stat(path); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v, want a socket with mode 0600", fi.Mode(), err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopping: %v", err)
	}
	missing := filepath.Join(dir, "none")
	if err := a.serveControl(context.Background(), missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("a missing directory: %v", err)
	}
}

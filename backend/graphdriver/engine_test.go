package graphdriver

import (
	"context"
	"errors"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/sizer"
)

var (
	idWeb = strings.Repeat("a1", 32)
	idDB  = strings.Repeat("b2", 32)
)

func TestContainer(t *testing.T) {
	api, eng := newFakeAPI(t)
	b := &Backend{eng: eng}
	api.inspect["web"] = `{"Id":"` + idWeb + `","Name":"/web","State":{"Status":"exited","Running":false},
		"HostConfig":{"ReadonlyRootfs":true},"Config":{"Labels":{"dm.size":"20G"}},
		"GraphDriver":{"Name":"devicemapper","Data":{"DeviceId":"42","DeviceName":"` + device + `","DeviceSize":"10737418240"}}}`
	api.inspect[idDB] = `{"Id":"` + idDB + `","Name":"/db","State":{"Status":"running","Running":true},
		"Config":{"Labels":{"dm.size":"5G"}},
		"GraphDriver":{"Name":"overlay2","Data":{"DeviceId":"7","DeviceName":"docker-0:0-0-` + hash + `","DeviceSize":"1"}}}`
	api.status["GET /containers/broken/json"] = 500

	for _, c := range []struct {
		ref      string
		want     sizer.Container
		notFound bool
		fails    bool
	}{
		{ref: "web", want: sizer.Container{ID: idWeb, Name: "web", Labels: map[string]string{"dm.size": "20G"}, State: "exited", ReadOnly: true,
			Device: device, DeviceID: 42, Cached: 10737418240}},
		// Another graph driver's data never names a device of this backend's.
		{ref: idDB, want: sizer.Container{ID: idDB, Name: "db", Labels: map[string]string{"dm.size": "5G"}, Running: true, State: "running"}},
		{ref: "gone", notFound: true, fails: true},
		{ref: "broken", fails: true},
	} {
		got, err := b.Container(context.Background(), c.ref)
		if (err != nil) != c.fails || errors.Is(err, sizer.ErrNotFound) != c.notFound || errors.Is(err, engine.ErrNotFound) != c.notFound {
			t.Errorf("%s: error %v; want failure %v, not found %v", c.ref, err, c.fails, c.notFound)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.ref, got, c.want)
		}
	}
	var inspected []string
	for _, r := range api.seen() {
		inspected = append(inspected, strings.TrimSuffix(r, "?"))
	}
	checkCalls(t, "requests", inspected, []string{"GET /containers/web/json", "GET /containers/" + idDB + "/json", "GET /containers/gone/json", "GET /containers/broken/json"})
}

func TestSizedContainers(t *testing.T) {
	api, eng := newFakeAPI(t)
	b := &Backend{eng: eng}
	api.list = `[{"Id":"` + idWeb + `","Names":["/web"]},{"Id":"` + idDB + `","Names":["/db"]}]`
	ids, err := b.SizedContainers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkCalls(t, "ids", ids, []string{idWeb, idDB})
	reqs := api.seen()
	if len(reqs) != 1 {
		t.Fatalf("requests %q, want one list", reqs)
	}
	path, query, _ := strings.Cut(reqs[0], "?")
	q, err := url.ParseQuery(query)
	if path != "GET /containers/json" || err != nil || q.Get("all") != "1" || !strings.Contains(q.Get("filters"), `"label":{"dm.size":true}`) {
		t.Errorf("request %q: want every container with the label dm.size", reqs[0])
	}

	api.status["GET /containers/json"] = 500
	if ids, err := b.SizedContainers(context.Background()); err == nil || ids != nil {
		t.Errorf("with the engine failing: %q, %v", ids, err)
	}
}

func TestMountRootfs(t *testing.T) {
	api, eng := newFakeAPI(t)
	b := &Backend{eng: eng}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	m := b.MountRootfs(ctx, idWeb)
	select {
	case <-m.Done():
		t.Fatalf("the engine answered before Release: %v", m.Err())
	case <-time.After(50 * time.Millisecond):
	}
	if err := m.Release(); err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	uploaded, ok := api.uploads[idWeb]
	api.mu.Unlock()
	if !ok || uploaded != 1024 {
		t.Errorf("uploaded %d bytes (%v), want an empty tar of 1024", uploaded, ok)
	}
	if !slices.ContainsFunc(api.seen(), func(r string) bool {
		return strings.HasPrefix(r, "PUT /containers/"+idWeb+"/archive?") && strings.Contains(r, "path=%2F")
	}) {
		t.Errorf("requests %q: want a PUT of the archive at /", api.seen())
	}

	api.status["PUT /containers/"+idDB+"/archive"] = 409
	m = b.MountRootfs(ctx, idDB)
	if err := m.Release(); err == nil || !strings.Contains(err.Error(), "refused by the fake engine (409)") {
		t.Errorf("Release of a refused hold: %v", err)
	}
	if m.Err() == nil {
		t.Error("Err is nil after a refusal")
	}
}

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/sizer"
)

// Any create body, however malformed, gets an answer without a panic; a body with a dm.size
// label is denied exactly when the label is one the sizer would reject, and the denial names
// it.
func FuzzAuthZCreateBody(f *testing.F) {
	for _, seed := range []string{
		`{"Image":"busybox","Labels":{"dm.size":"42G"}}`,
		`{"Labels":{"dm.size":"42X"}}`,
		`{"Labels":{"dm.size":"5G"}}`,
		`{"Labels":{"dm.size":"2T"}}`,
		`{"Labels":{"dm.size":""}}`,
		`{"Labels":null}`,
		`{"Labels":{"dm.size":42}}`,
		`[]`, ``, `{`, "\x00",
	} {
		f.Add([]byte(seed))
	}
	l, _ := test.NewNullLogger()
	store, err := sizer.OpenStore(f.TempDir(), l)
	if err != nil {
		f.Fatal(err)
	}
	a := &app{cfg: config{Mode: "strict"}, log: l}
	s := sizer.New(sizer.Config{Store: store, Policy: sizer.Policy{Max: 1 << 40}, Log: l})
	a.sizer.Store(s)
	a.base.Store(10 << 30)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := a.AuthZReq(authorization.Request{RequestMethod: "POST", RequestURI: "/v1.41/containers/create", RequestBody: body})
		var parsed struct{ Labels map[string]string }
		if json.Unmarshal(body, &parsed) != nil {
			if !r.Allow {
				t.Fatalf("a body the engine will refuse itself was denied: %+v", r)
			}
			return
		}
		label, ok := parsed.Labels[sizer.SizeLabel]
		if !ok {
			if !r.Allow {
				t.Fatalf("no label, denied: %+v", r)
			}
			return
		}
		want := s.CheckNew(label, 10<<30)
		if (want == nil) != r.Allow {
			t.Fatalf("label %q: allow=%v, CheckNew says %v", label, r.Allow, want)
		}
		if !r.Allow && !strings.Contains(r.Msg, "dm.size=") {
			t.Fatalf("denial does not name the label: %q", r.Msg)
		}
	})
}

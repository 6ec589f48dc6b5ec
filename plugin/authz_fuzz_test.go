package plugin

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/size"
	"github.com/dmsize/dmsize/sizer"
)

// poolOnly is device-mapper as CheckNew reads it: only the pool's data size.
type poolOnly struct {
	sizer.Devices
	data int64
}

func (p poolOnly) PoolData() (int64, error) { return p.data, nil }

// Any create body, however malformed, gets an answer without a panic, by strict mode's rule:
// an empty body is allowed (it has no labels), a body dmsize cannot read is denied, a body
// without a dm.size label is allowed, and one with it is denied exactly when the sizer would
// reject the label. A denial is one line starting "dmsize: ", and names the label it rejects.
func FuzzAuthZCreateBody(f *testing.F) {
	for _, seed := range []string{
		`{"Image":"busybox","Labels":{"dm.size":"42G"}}`,
		`{"Labels":{"dm.size":"42X"}}`,
		`{"Labels":{"dm.size":"5G"}}`,
		`{"Labels":{"dm.size":"2T"}}`,
		`{"Labels":{"dm.size":""}}`,
		`{"Labels":{"dm.size":"42G\n"}}`,
		`{"Labels":null}`,
		`{"Labels":{"dm.size":42}}`,
		`[]`, ``, `{`, "\x00", `null`,
	} {
		f.Add([]byte(seed))
	}
	l, _ := test.NewNullLogger()
	store, err := sizer.OpenStore(f.TempDir(), l)
	if err != nil {
		f.Fatal(err)
	}
	a := &app{cfg: config{Mode: "strict"}, log: l}
	s := sizer.New(sizer.Config{Store: store, Devices: poolOnly{data: 100 << 30}, Policy: sizer.Policy{Max: 1 << 40}, Log: l})
	a.base.Store(10 << 30)
	a.setup.Store(&setUp{sizer: s})
	f.Fuzz(func(t *testing.T, body []byte) {
		r := a.AuthZReq(authorization.Request{RequestMethod: "POST", RequestURI: "/v1.41/containers/create", RequestBody: body,
			RequestHeaders: map[string]string{"Content-Type": "application/json", "Content-Length": strconv.Itoa(len(body))}})
		if !r.Allow && (!strings.HasPrefix(r.Msg, "dmsize: ") || strings.ContainsAny(r.Msg, "\r\n")) {
			t.Fatalf("denial not one line starting \"dmsize: \": %q", r.Msg)
		}
		if len(body) == 0 {
			if !r.Allow {
				t.Fatalf("an empty body was denied: %+v", r)
			}
			return
		}
		var parsed struct{ Labels map[string]string }
		if json.Unmarshal(body, &parsed) != nil {
			if r.Allow || !strings.Contains(r.Msg, "not a JSON container config") {
				t.Fatalf("a body dmsize cannot read: %+v", r)
			}
			return
		}
		label, ok := parsed.Labels[size.Label]
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

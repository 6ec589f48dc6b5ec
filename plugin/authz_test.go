package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/sirupsen/logrus"
)

func TestURIs(t *testing.T) {
	for uri, want := range map[string]bool{
		"/v1.41/containers/create":          true,
		"/v1.41/containers/create?name=web": true,
		"/containers/create":                true,
		"/v1.41/containers/create/x":        false,
		"/v1.41/containers/json":            false,
		"/v1.41/images/create":              false,
	} {
		if got := createURI.MatchString(uri); got != want {
			t.Errorf("create %q: %v", uri, got)
		}
	}
	for uri, want := range map[string]string{
		"/v1.41/containers/web?force=1": "web",
		"/containers/0123abcd":          "0123abcd",
		"/v1.41/containers/web/kill":    "",
	} {
		m := deleteURI.FindStringSubmatch(uri)
		got := ""
		if m != nil {
			got = m[2]
		}
		if got != want {
			t.Errorf("delete %q: %q, want %q", uri, got, want)
		}
	}
}

// The handshake names the authz interface, and before the engine is reachable (no sizer yet)
// every request is allowed: the plugin never gets in the way of an engine it cannot serve.
func TestHandshakeAndAllowBeforeReady(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "dmsize.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{cfg: config{Mode: "strict"}, log: logrus.New()}
	h := authorization.NewHandler(a)
	go func() { _ = h.Serve(l) }()
	t.Cleanup(func() { l.Close() })

	c := &http.Client{Transport: &http.Transport{
		Dial: func(string, string) (net.Conn, error) { return net.Dial("unix", sock) },
	}}
	post := func(path string, body any, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := c.Post("http://plugin"+path, "application/vnd.docker.plugins.v1.2+json", bytes.NewReader(b))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("POST %s: decoding: %v", path, err)
		}
	}
	var manifest struct{ Implements []string }
	post("/Plugin.Activate", struct{}{}, &manifest)
	if len(manifest.Implements) != 1 || manifest.Implements[0] != "authz" {
		t.Fatalf("handshake implements %v, want [authz]", manifest.Implements)
	}
	body, _ := json.Marshal(map[string]any{"Image": "busybox", "Labels": map[string]string{"dm.size": "bogus"}})
	for _, path := range []string{"/AuthZPlugin.AuthZReq", "/AuthZPlugin.AuthZRes"} {
		var r authorization.Response
		post(path, authorization.Request{RequestMethod: "POST", RequestURI: "/v1.41/containers/create", RequestBody: body, ResponseStatusCode: 201}, &r)
		if !r.Allow {
			t.Fatalf("%s denied before the engine was reachable: %+v", path, r)
		}
	}
}

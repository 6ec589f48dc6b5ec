package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/docker/go-plugins-helpers/authorization"
)

// TestHandshakeAndAuthz drives the plugin's HTTP surface the way dockerd does, over a unix
// socket: the activation handshake names the authz interface, and requests are allowed.
func TestHandshakeAndAuthz(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "dmsize.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	h := authorization.NewHandler(allowAll{})
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
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: status %d", path, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("POST %s: decoding: %v", path, err)
		}
	}

	var manifest struct{ Implements []string }
	post("/Plugin.Activate", struct{}{}, &manifest)
	if len(manifest.Implements) != 1 || manifest.Implements[0] != "authz" {
		t.Fatalf("handshake implements %v, want [authz]", manifest.Implements)
	}
	for _, path := range []string{"/AuthZPlugin.AuthZReq", "/AuthZPlugin.AuthZRes"} {
		var r authorization.Response
		post(path, authorization.Request{RequestMethod: "POST", RequestURI: "/v1.41/containers/create"}, &r)
		if !r.Allow {
			t.Fatalf("%s denied: %+v", path, r)
		}
	}
}

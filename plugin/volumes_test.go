package plugin

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/authorization"
)

type recordingAuthz struct{ got []string }

func (r *recordingAuthz) AuthZReq(q authorization.Request) authorization.Response {
	r.got = append(r.got, "req "+q.RequestURI)
	return authorization.Response{Allow: true}
}
func (r *recordingAuthz) AuthZRes(q authorization.Request) authorization.Response {
	r.got = append(r.got, "res "+q.RequestURI)
	return authorization.Response{Allow: true}
}

// One socket serves the handshake naming both interfaces, the authorization calls and the
// volume driver's; a volume driver that could not open says why on every call.
func TestPluginHandler(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	az := &recordingAuthz{}
	vd := &volumeDriver{}
	why := "volumes: no device-mapper here"
	vd.failed.Store(&why)
	go pluginHandler(vd, az).Serve(l)
	defer l.Close()
	c := http.Client{Transport: &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", sock) }}}
	post := func(path, body string) map[string]any {
		t.Helper()
		resp, err := c.Post("http://plugin"+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return m
	}
	if m := post("/Plugin.Activate", "{}"); len(m["Implements"].([]any)) != 2 {
		t.Fatalf("handshake: %v", m)
	}
	if m := post("/AuthZPlugin.AuthZReq", `{"RequestMethod":"GET","RequestUri":"/v1.41/info"}`); m["Allow"] != true {
		t.Fatalf("AuthZReq: %v", m)
	}
	post("/AuthZPlugin.AuthZRes", `{"RequestMethod":"GET","RequestUri":"/v1.41/info"}`)
	if strings.Join(az.got, ",") != "req /v1.41/info,res /v1.41/info" {
		t.Fatalf("authz calls: %v", az.got)
	}
	// A body that is not JSON: 400 with the decoder's error, and the plugin is not asked.
	for _, path := range []string{"/AuthZPlugin.AuthZReq", "/AuthZPlugin.AuthZRes"} {
		resp, err := c.Post("http://plugin"+path, "application/json", strings.NewReader(`{"RequestMethod":`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "unexpected EOF") || len(az.got) != 2 {
			t.Fatalf("%s with a bad body: %s %q; authz calls %v", path, resp.Status, b, az.got)
		}
	}
	if m := post("/VolumeDriver.Create", `{"Name":"v"}`); m["Err"] != "dmsize: volumes: no device-mapper here" {
		t.Fatalf("Create: %v", m)
	}
	if m := post("/VolumeDriver.Capabilities", `{}`); m["Capabilities"].(map[string]any)["Scope"] != "local" {
		t.Fatalf("Capabilities: %v", m)
	}
}

package harness

import (
	"reflect"
	"strings"
	"testing"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
)

// Which docker commands the API answers and which go to the CLI: a flag the API path does not
// know must reach the CLI, never be dropped.
func TestAPICommandRoutes(t *testing.T) {
	c, err := client.NewClientWithOpts(client.WithHost("unix:///nonexistent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		api  bool
	}{
		{[]string{"inspect", "--format", "{{.State.Running}}", "x"}, true},
		{[]string{"inspect", "-f", "{{.Id}}", "x"}, true},
		{[]string{"inspect", "--format", "{{.State.Running}}", "x", "y"}, false},
		{[]string{"inspect", "x"}, false},
		{[]string{"exec", "x", "df", "-P", "-k", "/"}, true},
		{[]string{"exec", "-it", "x", "sh"}, false},
		{[]string{"exec", "x"}, false},
		{[]string{"start", "x"}, true},
		{[]string{"start", "-a", "x"}, true},
		{[]string{"start", "-ai", "x"}, false},
		{[]string{"stop", "-t", "1", "x"}, true},
		{[]string{"stop", "x"}, false},
		{[]string{"rm", "-f", "x", "y"}, true},
		{[]string{"rm", "x"}, true},
		{[]string{"rm", "-v", "x"}, false},
		{[]string{"logs", "x"}, true},
		{[]string{"logs", "-f", "x"}, false},
		{[]string{"ps", "-q"}, true},
		{[]string{"ps", "-aq"}, true},
		{[]string{"ps", "-q", "--filter", "label=a"}, false},
		{[]string{"ps", "-a"}, false},
		{[]string{"info", "--format", "{{.Driver}}"}, true},
		{[]string{"info"}, false},
		{[]string{"volume", "create", "-d", "dmsize", "-o", "size=1G", "v"}, true},
		{[]string{"volume", "create", "--label", "a=b", "v"}, false},
		{[]string{"volume", "create", "-o", "size", "v"}, false},
		{[]string{"volume", "inspect", "-f", "{{json .Status}}", "v"}, true},
		{[]string{"volume", "ls", "-q"}, true},
		{[]string{"volume", "rm", "-f", "a", "b"}, true},
		{[]string{"volume", "prune"}, false},
		{[]string{"plugin", "inspect", "--format", "{{.Enabled}}", "dmsize"}, true},
		{[]string{"plugin", "enable", "dmsize"}, true},
		{[]string{"plugin", "enable", "--timeout", "5", "dmsize"}, false},
		{[]string{"plugin", "disable", "-f", "dmsize"}, true},
		{[]string{"plugin", "create", "dmsize", "/dir"}, false},
		{[]string{"plugin", "set", "dmsize", "A=1"}, false},
		{[]string{"run", "-d", "--name", "w", "--network", "none", "--label", "dm.size=20G", "busybox", "sleep", "1"}, true},
		{[]string{"run", "--rm", "-v", "v:/v", "--stop-timeout", "1", "--restart", "always", "busybox", "df"}, true},
		{[]string{"run", "--rm", "--storage-opt", "size=20G", "busybox", "df"}, true},
		{[]string{"run", "-it", "busybox"}, false},
		{[]string{"run", "--stop-timeout", "soon", "busybox"}, false},
		{[]string{"run", "--restart", "on-failure:x", "busybox"}, false},
		{[]string{"run", "-d"}, false},
		{[]string{"create", "--name", "c", "busybox", "true"}, true},
		{[]string{"create", "-d", "busybox"}, false},
		{[]string{"swarm", "init"}, false},
		{[]string{"volume"}, false},
		{nil, false},
	} {
		if got := apiCommand(c, tc.args) != nil; got != tc.api {
			t.Errorf("%q: through the API %v, want %v", tc.args, got, tc.api)
		}
	}
}

func TestParseRun(t *testing.T) {
	r, ok := parseRun(true, strings.Fields("-d --name w --network none --label dm.size=20G --label x= -v v:/v --stop-timeout 2 --restart on-failure:3 --storage-opt size=20G busybox sh -c true"))
	if !ok {
		t.Fatal("not parsed")
	}
	two := 2
	want := &runArgs{run: true, detach: true, name: "w",
		config: container.Config{Image: "busybox", Cmd: []string{"sh", "-c", "true"}, Labels: map[string]string{"dm.size": "20G", "x": ""}, StopTimeout: &two},
		host: container.HostConfig{NetworkMode: "none", Binds: []string{"v:/v"}, StorageOpt: map[string]string{"size": "20G"},
			RestartPolicy: container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}},
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("parsed %+v\nwant   %+v", r, want)
	}
	r, ok = parseRun(true, strings.Fields("--rm busybox df -P -k /"))
	if !ok || !r.host.AutoRemove || !r.config.AttachStdout || !r.config.AttachStderr || r.detach {
		t.Fatalf("an attached --rm run: %+v", r)
	}
	if r.config.StopTimeout == nil || *r.config.StopTimeout != 1 {
		t.Fatalf("a run without --stop-timeout stops in %v s, want 1", r.config.StopTimeout)
	}
}

func TestVolumeCreateOptions(t *testing.T) {
	o, ok := volumeCreateOptions(strings.Fields("-d dmsize -o size=2G -o fs=xfs data"))
	want := volume.CreateOptions{Driver: "dmsize", Name: "data", DriverOpts: map[string]string{"size": "2G", "fs": "xfs"}}
	if !ok || !reflect.DeepEqual(o, want) {
		t.Fatalf("got %+v %v, want %+v", o, ok, want)
	}
}

// The CLI's templates over the API's types: numbers as integers, json and join as the CLI has them.
func TestRender(t *testing.T) {
	v := container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{RestartCount: 3, State: &container.State{Running: true}}}
	v.ContainerJSONBase.GraphDriver.Data = map[string]string{"DeviceSize": "10737418240"}
	for tmpl, want := range map[string]string{
		"{{.RestartCount}}":                "3",
		"{{.State.Running}}":               "true",
		"{{.GraphDriver.Data.DeviceSize}}": "10737418240",
		`{{join (split "a,b" ",") "-"}}`:   "a-b",
		`{{json .GraphDriver.Data}}`:       `{"DeviceSize":"10737418240"}`,
		`{{lower "A"}}{{upper "b"}}`:       "aB",
	} {
		if got, code, err := render(tmpl, v, nil); err != nil || code != 0 || got != want {
			t.Errorf("%s: %q %d %v, want %q", tmpl, got, code, err, want)
		}
	}
	if _, code, err := render("{{.Nope", v, nil); err == nil || code == 0 {
		t.Error("a broken template rendered")
	}
	if _, code, err := render("{{.Nope}}", v, nil); err == nil || code == 0 {
		t.Error("a template naming no field rendered")
	}
	// Over the raw JSON a missing key is "<no value>", as the CLI prints it.
	if got, _, err := render("{{.Nope}}", v, []byte(`{"Id":"x"}`)); err != nil || got != "<no value>" {
		t.Errorf("a missing key over the raw JSON: %q %v", got, err)
	}
	// The type's field is ID, the JSON's Id: the CLI falls back to the raw JSON, and so does this.
	p := types.Plugin{ID: "abc", Enabled: true}
	if got, _, err := render("{{.Id}} {{.Enabled}}", p, []byte(`{"Id":"abc","Enabled":true,"Size":10737418240}`)); err != nil || got != "abc true" {
		t.Errorf("{{.Id}} of a plugin: %q %v", got, err)
	}
	if got, _, err := render("{{.Size}}", struct{}{}, []byte(`{"Size":10737418240}`)); err != nil || got != "10737418240" {
		t.Errorf("a large number from the raw JSON: %q %v", got, err)
	}
}

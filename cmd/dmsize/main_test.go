package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types"

	"github.com/dmsize/dmsize/controlapi"
)

const G = int64(1) << 30

var (
	web = controlapi.Container{
		ID: "1de44219f8fd8d7c0b3a1e6b0ab1c1f9e2d3c4b5a6978877665544332211ffee", Name: "web", State: "running",
		Label: "10G", GrownBytes: 60 * G, Device: "docker-254:0-131101-048422af", SizeBytes: 60 * G,
		CachedBytes: 60 * G, PersistedBytes: 60 * G, FSSizeBytes: 60*G - 1<<20, FSUsedBytes: 354_000_000,
		Held: true, LastAction: "grown", Updated: "2025-11-25T15:00:00Z",
	}
	db = controlapi.Container{
		ID: "77aa0c5e3f1200000000000000000000000000000000000000000000000000aa", Name: "db", State: "exited",
		Label: "42X", Device: "docker-254:0-131101-9f0e", CachedBytes: 10 * G, PersistedBytes: 10 * G,
		LastAction: "rejected", LastError: "label dm.size=42X rejected: size \"42X\": not a size in Docker's grammar (e.g. 42G, 512M, 1.5T)",
	}
	pool = controlapi.Pool{
		Name: "docker-254:0-131101-pool", Kind: "loop-lvm", DataUsedBytes: 2254857830, DataSizeBytes: 8 * G,
		MetaUsedBytes: 1258291, MetaSizeBytes: 2 * G, Mode: "rw", RoomBytes: 99321118720,
		RoomWhy: "host filesystem free, less MIN_HOST_FREE 5GiB", Guard: "on", Threshold: 0.8,
		ProvisionedBytes: 70 * G, OvercommitRatio: 8.75, ContainersHeld: 1, ContainersWithRec: 2,
	}
	grown = controlapi.GrowResult{Container: web, Action: "grown", BeforeBytes: 10 * G, AfterBytes: 60 * G,
		Strategy: "online", DurationMS: 1234, Message: "grown"}
)

func TestHelp(t *testing.T) {
	r := dmsize(t, nil, "", "-h")
	r.check(t, exitOK)
	for _, want := range []string{"Usage: dmsize", "grow [--dry-run] CONTAINER SIZE", "pool extend [--metadata] SIZE|+SIZE",
		"--socket PATH", "Exit codes:", "  0  done", "  1  refused", "  2  usage", "  3  cannot reach"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dmsize -h lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, args := range [][]string{{"help"}, {"grow", "-h"}, {"status", "--help"}, {"pool", "-h"},
		{"pool", "status", "-h"}, {"pool", "extend", "-h"}, {"version", "-h"}} {
		r := dmsize(t, nil, "", args...)
		r.check(t, exitOK)
		if !strings.HasPrefix(r.stdout, "Usage: dmsize") {
			t.Errorf("dmsize %q: %q", args, r.stdout)
		}
	}
	if r := dmsize(t, nil, "", "pool", "extend", "-h"); !strings.Contains(r.stdout, "--metadata") {
		t.Errorf("pool extend -h lacks --metadata:\n%s", r.stdout)
	}
}

// run, as main calls it: buffers are no terminal.
func TestRun(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"frob"}, &out, &errb, func(string) string { return "" }); code != exitUsage {
		t.Errorf("exit %d", code)
	}
	if want := "dmsize: unknown command \"frob\" (dmsize -h lists them)\n"; errb.String() != want || out.Len() != 0 {
		t.Errorf("stdout %q stderr %q, want %q", out.String(), errb.String(), want)
	}
}

// Every usage error, the sizes the CLI can refuse itself among them, exits 2 without asking
// the plugin.
func TestUsage(t *testing.T) {
	ctl := controlAt(t)
	for _, tc := range []struct {
		args []string
		err  string // the whole of stderr, when set
	}{
		{nil, "dmsize: no command (dmsize -h lists them)\n"},
		{[]string{"frob"}, ""},
		{[]string{"--bogus", "status"}, "dmsize: flag provided but not defined: -bogus (dmsize -h)\n"},
		{[]string{"grow", "web"}, "dmsize: grow: 1 arguments [\"web\"]; usage: dmsize grow [--dry-run] CONTAINER SIZE\n"},
		{[]string{"grow", "web", "10G", "db"}, ""},
		{[]string{"grow", "--force", "web", "10G"}, "dmsize: grow: flag provided but not defined: -force (dmsize grow -h)\n"},
		{[]string{"grow", "web", "42X"}, "dmsize: grow web: size \"42X\": not a size in Docker's grammar (e.g. 42G, 512M, 1.5T)\n"},
		{[]string{"grow", "web", "0"}, "dmsize: grow web: size \"0\": must be positive\n"},
		{[]string{"grow", "web", ""}, "dmsize: grow web: empty size\n"},
		{[]string{"grow", "web", "8192P"}, ""},
		{[]string{"grow", "web", "511"}, ""},
		{[]string{"grow", "web", "-1G"}, ""}, // a flag, to the flag package
		{[]string{"grow", "web", "+1G"}, ""},
		{[]string{"status", "--format", "yaml"}, "dmsize: status: --format \"yaml\": the only format is json\n"},
		{[]string{"status", "--format"}, ""},
		{[]string{"pool"}, "dmsize: pool: status or extend? (dmsize pool -h)\n"},
		{[]string{"pool", "frob"}, ""},
		{[]string{"pool", "status", "now"}, ""},
		{[]string{"pool", "status", "--format", "text"}, ""},
		{[]string{"pool", "extend"}, ""},
		{[]string{"pool", "extend", "1G", "2G"}, ""},
		{[]string{"pool", "extend", "+X"}, "dmsize: pool extend data: size \"X\": not a size in Docker's grammar (e.g. 42G, 512M, 1.5T)\n"},
		{[]string{"pool", "extend", "--metadata", "++1G"}, ""},
		{[]string{"version", "now"}, ""},
		{[]string{"--plugin", "dmsize", "status"}, "dmsize: status: --plugin and --socket: give one\n"},
	} {
		r := dmsize(t, nil, "", append([]string{"--socket", ctl.sock}, tc.args...)...)
		r.check(t, exitUsage)
		if tc.err != "" && r.stderr != tc.err {
			t.Errorf("dmsize %q: stderr\n got %q\nwant %q", tc.args, r.stderr, tc.err)
		}
		if r.stdout != "" {
			t.Errorf("dmsize %q: stdout %q", tc.args, r.stdout)
		}
	}
	if got := ctl.asked(); len(got) != 0 {
		t.Errorf("the plugin was asked %q", got)
	}
}

func TestGrow(t *testing.T) {
	for _, tc := range []struct {
		answer controlapi.GrowResult
		args   []string
		out    string
		asked  string
	}{
		// Global flags after the command, too.
		{grown, []string{"grow", "web", "60G", "--socket", "SOCK"},
			"web (1de44219f8fd): 10GiB -> 60GiB (grown in 1.2s)\n", `{"ref":"web","size":"60G"}`},
		{controlapi.GrowResult{Container: web, Action: "unchanged", BeforeBytes: 60 * G, AfterBytes: 60 * G}, []string{"--socket", "SOCK", "grow", "1de44219f8fd", "60g"},
			"web (1de44219f8fd): already 60GiB\n", `{"ref":"1de44219f8fd","size":"60g"}`},
		{controlapi.GrowResult{Container: web, Action: "would-grow", BeforeBytes: 10 * G, AfterBytes: 60 * G}, []string{"--socket", "SOCK", "grow", "web", "--dry-run", "60G"},
			"would grow web (1de44219f8fd): 10GiB -> 60GiB (nothing changed)\n", `{"ref":"web","size":"60G","dry_run":true}`},
		{controlapi.GrowResult{Action: "repaired", BeforeBytes: 10 * G, AfterBytes: 60 * G, DurationMS: 80}, []string{"--socket", "SOCK", "grow", "web", "60G"},
			"web: 10GiB -> 60GiB (repaired in 80ms)\n", `{"ref":"web","size":"60G"}`},
	} {
		ctl := controlAt(t)
		ctl.set("POST "+controlapi.PathGrow, answer{body: tc.answer})
		args := slices.Clone(tc.args)
		args[slices.Index(args, "SOCK")] = ctl.sock
		r := dmsize(t, nil, "", args...)
		r.check(t, exitOK)
		if r.stdout != tc.out {
			t.Errorf("%q: stdout %q, want %q", tc.args, r.stdout, tc.out)
		}
		if got, want := ctl.asked(), []string{"POST /v1/containers/grow " + tc.asked}; !equal(got, want) {
			t.Errorf("asked %q, want %q", got, want)
		}
	}
}

// Each kind of refusal: its exit code, one line naming the container and the size (the
// plugin's own words do, as plugin/controlapi.go puts them; the CLI's prefix does otherwise).
func TestGrowRefused(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   any
		code   int
		err    string
	}{
		{409, controlapi.Error{Kind: controlapi.KindRefused, Message: "container web: grow to 5GiB: 5GiB is smaller than the current size 10GiB; dmsize never shrinks a filesystem"},
			exitRefused, "dmsize: container web: grow to 5GiB: 5GiB is smaller than the current size 10GiB; dmsize never shrinks a filesystem\n"},
		{409, controlapi.Error{Kind: controlapi.KindRefused, Message: "5GiB is above the plugin's maximum 1GiB"},
			exitRefused, "dmsize: grow web to 5GiB: 5GiB is above the plugin's maximum 1GiB\n"},
		{404, controlapi.Error{Kind: controlapi.KindNotFound, Message: "container web: grow to 5GiB: no such container"}, exitRefused,
			"dmsize: container web: grow to 5GiB: no such container\n"},
		{400, controlapi.Error{Kind: controlapi.KindInvalid, Message: "a grow request needs a container and a size"}, exitRefused,
			"dmsize: grow web to 5GiB: a grow request needs a container and a size\n"},
		{500, controlapi.Error{Kind: controlapi.KindFailed, Message: "resize2fs: failed\nline two"}, exitRefused,
			"dmsize: grow web to 5GiB: resize2fs: failed line two\n"},
		{503, controlapi.Error{Kind: controlapi.KindUnavailable, Message: "the plugin is not set up"}, exitUnreachable,
			"dmsize: grow web to 5GiB: the plugin is not set up\n"},
		{502, "bad gateway\n", exitRefused, "dmsize: grow web to 5GiB: POST /v1/containers/grow: 502 Bad Gateway: bad gateway\n"},
	} {
		ctl := controlAt(t)
		ctl.set("POST "+controlapi.PathGrow, answer{status: tc.status, body: tc.body})
		r := dmsize(t, nil, "", "--socket", ctl.sock, "grow", "web", "5G")
		r.check(t, tc.code)
		if tc.err != "" && r.stderr != tc.err {
			t.Errorf("%d %v: stderr\n got %q\nwant %q", tc.status, tc.body, r.stderr, tc.err)
		}
	}
}

func TestUnreachableSocket(t *testing.T) {
	sock := filepath.Join(shortDir(t), "none.sock")
	for _, args := range [][]string{{"status"}, {"grow", "web", "60G"}, {"pool", "status"}, {"pool", "extend", "+1G"}} {
		r := dmsize(t, nil, "", append([]string{"--socket", sock}, args...)...)
		r.check(t, exitUnreachable)
		if !strings.Contains(r.stderr, "cannot reach the dmsize plugin at "+sock) {
			t.Errorf("%q: %q", args, r.stderr)
		}
	}
	r := dmsize(t, nil, "", "--socket", sock, "grow", "web", "60G")
	if want := "dmsize: grow web to 60GiB: cannot reach"; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr %q, want it to start with %q", r.stderr, want)
	}
}

func TestStatus(t *testing.T) {
	ctl := controlAt(t)
	ctl.set("GET "+controlapi.PathContainers, answer{body: []controlapi.Container{web, db}})
	r := dmsize(t, nil, "", "--socket", ctl.sock, "status")
	r.check(t, exitOK)
	want := `NAME  CONTAINER     STATE    LABEL  SIZE   FS SIZE  FS USED   CACHED  HELD  LAST
web   1de44219f8fd  running  10G    60GiB  60GiB    337.6MiB  60GiB   yes   grown
db    77aa0c5e3f12  exited   42X    -      -        -         10GiB   no    label dm.size=42X rejected: size "42X": not a size in Docker's grammar (e.g. 42G, 512M, 1.5T)
`
	if r.stdout != want {
		t.Errorf("stdout\n%s\nwant\n%s", r.stdout, want)
	}
	r = dmsize(t, nil, "", "--socket", ctl.sock, "status", "web", "db")
	r.check(t, exitOK)
	if got := ctl.asked(); got[len(got)-1] != "GET /v1/containers?ref=web&ref=db" {
		t.Errorf("asked %q", got)
	}
}

func TestStatusJSON(t *testing.T) {
	ctl := controlAt(t)
	ctl.set("GET "+controlapi.PathContainers, answer{body: []controlapi.Container{web}})
	// --format after the container, the way the synopsis puts it.
	r := dmsize(t, nil, "", "--socket", ctl.sock, "status", "web", "--format", "json")
	r.check(t, exitOK)
	want, _ := json.MarshalIndent([]controlapi.Container{web}, "", "  ")
	if r.stdout != string(want)+"\n" {
		t.Errorf("stdout\n%s\nwant\n%s", r.stdout, want)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil || len(raw) != 1 {
		t.Fatalf("%v: %q", err, r.stdout)
	}
	// Exact bytes, not a rounded form.
	if raw[0]["fs_used_bytes"] != float64(354_000_000) || raw[0]["size_bytes"] != float64(60*G) || raw[0]["id"] != web.ID {
		t.Errorf("JSON %v", raw[0])
	}
	ctl.set("GET "+controlapi.PathContainers, answer{body: "null"})
	r = dmsize(t, nil, "", "--socket", ctl.sock, "status", "--format=json")
	r.check(t, exitOK)
	if r.stdout != "[]\n" {
		t.Errorf("no containers: %q, want []", r.stdout)
	}
}

func TestStatusNotFound(t *testing.T) {
	ctl := controlAt(t)
	ctl.set("GET "+controlapi.PathContainers, answer{status: 404, body: controlapi.Error{Kind: controlapi.KindNotFound, Message: "no such container: nope"}})
	r := dmsize(t, nil, "", "--socket", ctl.sock, "status", "web", "nope")
	r.check(t, exitRefused)
	if want := "dmsize: status web nope: no such container: nope\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}

func TestPoolStatus(t *testing.T) {
	ctl := controlAt(t)
	blocked := pool
	blocked.Blocked = "MAX_POOL_SIZE 8GiB reached"
	ctl.set("GET "+controlapi.PathPool, answer{body: blocked})
	r := dmsize(t, nil, "", "--socket", ctl.sock, "pool", "status")
	r.check(t, exitOK)
	want := `pool         docker-254:0-131101-pool (loop-lvm)
data         2.1GiB of 8GiB used (26.2%)
metadata     1.2MiB of 2GiB used (0.1%)
mode         rw
room         92.5GiB (host filesystem free, less MIN_HOST_FREE 5GiB)
guard        on, threshold 80%
blocked      MAX_POOL_SIZE 8GiB reached
over-commit  8.75× (70GiB provisioned)
containers   1 held, 2 with records
`
	if r.stdout != want {
		t.Errorf("stdout\n%s\nwant\n%s", r.stdout, want)
	}
	r = dmsize(t, nil, "", "--socket", ctl.sock, "pool", "status", "--format", "json")
	r.check(t, exitOK)
	b, _ := json.MarshalIndent(blocked, "", "  ")
	if r.stdout != string(b)+"\n" {
		t.Errorf("stdout\n%s\nwant\n%s", r.stdout, b)
	}
}

func TestPoolExtend(t *testing.T) {
	ctl := controlAt(t)
	ctl.set("POST "+controlapi.PathPoolExtend, answer{body: controlapi.ExtendResult{Part: "data", BeforeBytes: 8 * G, AfterBytes: 10 * G, DurationMS: 312}})
	r := dmsize(t, nil, "", "--socket", ctl.sock, "pool", "extend", "+2G")
	r.check(t, exitOK)
	if want := "pool data: 8GiB -> 10GiB (extended in 312ms)\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	ctl.set("POST "+controlapi.PathPoolExtend, answer{body: controlapi.ExtendResult{Part: "metadata", BeforeBytes: 1 * G, AfterBytes: 1 * G}})
	r = dmsize(t, nil, "", "--socket", ctl.sock, "pool", "extend", "1G", "--metadata")
	r.check(t, exitOK)
	if want := "pool metadata: already 1GiB\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	want := []string{`POST /v1/pool/extend {"size":"+2G"}`, `POST /v1/pool/extend {"metadata":true,"size":"1G"}`}
	if got := ctl.asked(); !equal(got, want) {
		t.Errorf("asked %q, want %q", got, want)
	}
	ctl.set("POST "+controlapi.PathPoolExtend, answer{status: 409, body: controlapi.Error{Kind: controlapi.KindRefused, Message: "pool data to 100G: 100GiB is above MAX_POOL_SIZE=64G"}})
	r = dmsize(t, nil, "", "--socket", ctl.sock, "pool", "extend", "100G")
	r.check(t, exitRefused)
	if want := "dmsize: pool data to 100G: 100GiB is above MAX_POOL_SIZE=64G\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	ctl.set("POST "+controlapi.PathPoolExtend, answer{status: 500, body: controlapi.Error{Kind: controlapi.KindFailed, Message: "lvextend: exit status 5"}})
	r = dmsize(t, nil, "", "--socket", ctl.sock, "pool", "extend", "+100G")
	r.check(t, exitRefused)
	if want := "dmsize: pool extend data by 100GiB: lvextend: exit status 5\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	// Smaller than now: the guard says so, and there is nothing to do.
	ctl.set("POST "+controlapi.PathPoolExtend, answer{body: controlapi.ExtendResult{Part: "data", BeforeBytes: 8 * G, AfterBytes: 8 * G,
		Message: "the pool's data is already 8GiB (asked for 4GiB; a pool never shrinks)"}})
	r = dmsize(t, nil, "", "--socket", ctl.sock, "pool", "extend", "4G")
	r.check(t, exitOK)
	if want := "the pool's data is already 8GiB (asked for 4GiB; a pool never shrinks)\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

func TestVersion(t *testing.T) {
	ctl := controlAt(t)
	ctl.set("GET "+controlapi.PathVersion, answer{body: controlapi.Version{Plugin: "v1.2", API: "v1"}})
	r := dmsize(t, nil, "", "--socket", ctl.sock, "version")
	r.check(t, exitOK)
	if want := "cli     dev\nplugin  v1.2 (control API v1)\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	// A plugin without a version: unavailable, as is one not running.
	ctl.set("GET "+controlapi.PathVersion, answer{status: 404, body: "404 page not found\n"})
	r = dmsize(t, nil, "", "--socket", ctl.sock, "version")
	r.check(t, exitUnreachable)
	r = dmsize(t, nil, "", "--socket", filepath.Join(shortDir(t), "none.sock"), "version")
	r.check(t, exitUnreachable)
	if r.stdout != "cli     dev\n" || !strings.HasPrefix(r.stderr, "dmsize: plugin version: cannot reach the dmsize plugin at ") {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
}

const dmsizeEntry = "/dmsize-plugin"

// installed is a fake engine with plugins, the control sockets of the enabled dmsize ones
// under root.
func installed(t *testing.T, apiVersion string, plugins ...*pluginAt) (f *fakeDocker, root string) {
	root = shortDir(t)
	var list []*types.Plugin
	for _, p := range plugins {
		list = append(list, p.spec)
		if p.ctl != nil {
			*p.ctl = newFakeControl(t, filepath.Join(root, p.spec.ID, controlapi.SocketName))
			(*p.ctl).set("GET "+controlapi.PathContainers, answer{body: []controlapi.Container{web}})
		}
	}
	return newFakeDocker(t, apiVersion, list...), root
}

type pluginAt struct {
	spec *types.Plugin
	ctl  **fakeControl // its control socket, when it has one
}

func TestDiscover(t *testing.T) {
	var ctl *fakeControl
	// Installed from a registry, beside another plugin; an engine of API 1.30 (17.06).
	f, root := installed(t, "1.30",
		&pluginAt{spec: plugin("aa11", "vieux/sshfs:latest", true, "/docker-volume-sshfs")},
		&pluginAt{spec: plugin("d1", "localhost:5000/dmsize:1.2", true, dmsizeEntry), ctl: &ctl})
	r := dmsize(t, map[string]string{"DOCKER_HOST": f.host}, root, "status")
	r.check(t, exitOK)
	if !strings.HasPrefix(r.stdout, "NAME ") || len(ctl.asked()) != 1 {
		t.Errorf("stdout %q, plugin asked %q", r.stdout, ctl.asked())
	}
	if got := f.requested(); !equal(got, []string{"/_ping", "/v1.30/plugins"}) {
		t.Errorf("engine asked %q", got)
	}
	// --host wins over DOCKER_HOST.
	r = dmsize(t, map[string]string{"DOCKER_HOST": "unix:///nonexistent.sock"}, root, "--host", f.host, "status")
	r.check(t, exitOK)
}

func TestDiscoverByName(t *testing.T) {
	var one, two *fakeControl
	f, root := installed(t, "1.41",
		&pluginAt{spec: plugin("d1", "dmsize:latest", true, dmsizeEntry), ctl: &one},
		&pluginAt{spec: plugin("d2", "localhost:5000/dmsize:1.2", true, dmsizeEntry), ctl: &two})
	env := map[string]string{"DOCKER_HOST": f.host}
	r := dmsize(t, env, root, "--plugin", "localhost:5000/dmsize:1.2", "status")
	r.check(t, exitOK)
	if len(one.asked()) != 0 || len(two.asked()) != 1 {
		t.Errorf("asked %q and %q", one.asked(), two.asked())
	}
	if got := f.requested(); got[len(got)-1] != "/v1.41/plugins/localhost:5000/dmsize:1.2/json" {
		t.Errorf("engine asked %q", got)
	}
	r = dmsize(t, env, root, "status", "--plugin", "dmsize")
	r.check(t, exitOK)
	if len(one.asked()) != 1 {
		t.Errorf("--plugin dmsize: asked %q", one.asked())
	}
	// Without --plugin: which one?
	r = dmsize(t, env, root, "status")
	r.check(t, exitUsage)
	if want := "dmsize: status: 2 dmsize plugins are installed: dmsize:latest (enabled), localhost:5000/dmsize:1.2 (enabled); say which with --plugin NAME\n"; r.stderr != want {
		t.Errorf("stderr\n got %q\nwant %q", r.stderr, want)
	}
}

func TestDiscoverFails(t *testing.T) {
	other := plugin("aa11", "vieux/sshfs:latest", true, "/docker-volume-sshfs")
	for _, tc := range []struct {
		name    string
		plugins []*pluginAt
		args    []string
		code    int
		err     string
	}{
		{"disabled", []*pluginAt{{spec: plugin("d1", "dmsize:latest", false, dmsizeEntry)}}, []string{"status"}, exitUnreachable,
			"dmsize: status: the dmsize plugin dmsize:latest is disabled (docker plugin enable dmsize:latest)\n"},
		{"disabled by name", []*pluginAt{{spec: plugin("d1", "reg/dmsize:1.2", false, dmsizeEntry)}}, []string{"--plugin", "reg/dmsize:1.2", "grow", "web", "60G"},
			exitUnreachable, "dmsize: grow web to 60GiB: the dmsize plugin reg/dmsize:1.2 is disabled (docker plugin enable reg/dmsize:1.2)\n"},
		{"none", []*pluginAt{{spec: other}}, []string{"status"}, exitUnreachable,
			"dmsize: status: no dmsize plugin is installed (docker plugin ls; README: Install)\n"},
		{"unknown name", []*pluginAt{{spec: other}}, []string{"--plugin", "dmsize", "status"}, exitUnreachable,
			"dmsize: status: no plugin dmsize is installed (docker plugin ls)\n"},
		{"not dmsize", []*pluginAt{{spec: other}}, []string{"--plugin", "vieux/sshfs", "status"}, exitUnreachable,
			"dmsize: status: plugin vieux/sshfs:latest is not dmsize: its entrypoint is [\"/docker-volume-sshfs\"], not [\"/dmsize-plugin\"]\n"},
		{"several, one disabled", []*pluginAt{{spec: plugin("d1", "dmsize:latest", true, dmsizeEntry)}, {spec: plugin("d2", "dmsize:old", false, dmsizeEntry)}},
			[]string{"pool", "status"}, exitUsage,
			"dmsize: pool status: 2 dmsize plugins are installed: dmsize:latest (enabled), dmsize:old (disabled); say which with --plugin NAME\n"},
		{"enabled, no control socket", []*pluginAt{{spec: plugin("d1", "dmsize:latest", true, dmsizeEntry)}}, []string{"status"}, exitUnreachable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, root := installed(t, "1.41", tc.plugins...)
			r := dmsize(t, map[string]string{"DOCKER_HOST": f.host}, root, tc.args...)
			r.check(t, tc.code)
			if tc.err != "" && r.stderr != tc.err {
				t.Errorf("stderr\n got %q\nwant %q", r.stderr, tc.err)
			}
		})
	}
}

func TestNoEngine(t *testing.T) {
	host := "unix://" + filepath.Join(shortDir(t), "docker.sock")
	for _, env := range []map[string]string{{"DOCKER_HOST": host}, nil} {
		args := []string{"grow", "web", "60G"}
		if env == nil {
			args = append([]string{"--host", host}, args...)
		}
		r := dmsize(t, env, "", args...)
		r.check(t, exitUnreachable)
		if want := "dmsize: grow web to 60GiB: cannot reach the Docker engine at " + host + " "; !strings.HasPrefix(r.stderr, want) {
			t.Errorf("stderr %q, want it to start with %q", r.stderr, want)
		}
	}
}

// On a terminal, a request over the delay shows a spinner, erased before the answer.
func TestProgress(t *testing.T) {
	ctl := controlAt(t)
	ctl.set("POST "+controlapi.PathGrow, answer{body: grown, delay: 300 * time.Millisecond})
	run := func(args ...string) result {
		var out, errb bytes.Buffer
		a := newApp(&out, &errb, func(string) string { return "" })
		a.tty, a.spinAfter = true, 50*time.Millisecond
		code := a.run(append([]string{"--socket", ctl.sock}, args...))
		return result{code, out.String(), errb.String()}
	}
	r := run("grow", "web", "60G")
	if r.code != exitOK || r.stdout != "web (1de44219f8fd): 10GiB -> 60GiB (grown in 1.2s)\n" {
		t.Errorf("exit %d, stdout %q", r.code, r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "\r| growing web to 60GiB… 0s\x1b[K\r/ growing") || !strings.HasSuffix(r.stderr, "s\x1b[K\r\x1b[K") {
		t.Errorf("stderr %q", r.stderr)
	}
	ctl.set("POST "+controlapi.PathGrow, answer{status: 409, body: controlapi.Error{Kind: controlapi.KindRefused, Message: "no"}, delay: 300 * time.Millisecond})
	r = run("grow", "web", "60G")
	if r.code != exitRefused || !strings.HasSuffix(r.stderr, "\x1b[K\r\x1b[Kdmsize: grow web to 60GiB: no\n") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	// Quick answers show nothing.
	ctl.set("POST "+controlapi.PathGrow, answer{body: grown})
	if r = run("grow", "web", "60G"); r.stderr != "" {
		t.Errorf("stderr %q", r.stderr)
	}
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) || isTerminal(&bytes.Buffer{}) {
		t.Error("a pipe or a buffer taken for a terminal")
	}
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	if !isTerminal(ptmx) {
		t.Error("a pseudo-terminal not taken for one")
	}
}

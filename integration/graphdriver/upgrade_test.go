//go:build vmtest

package graphdriver

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/integration/harness"
)

// registry is the test bed's local registry (dmsize-engine registry); the engine allows plain
// HTTP to 127.0.0.0/8.
const registry = "127.0.0.1:5000"

// keepData writes a 20 MB file and its checksum once; later starts of the container keep them.
const keepData = `[ -f /keep ] || { head -c 20000000 /dev/urandom > /keep && md5sum /keep > /keep.md5 && sync; }; sleep 3600`

// The plugin as users get it: pushed to a registry with rootfs/push.sh (what `make push` runs),
// installed from there under a name of the user's choosing with settings at install time, on
// an engine whose data root is not /var/lib/docker; found by the dmsize command under that
// name; then upgraded with sized containers running and stopped.
func TestRegistryInstallUpgrade(t *testing.T) {
	const root = "/srv/docker"
	e := harness.StartEngine(t, harness.Setup{Kind: "loop-lvm", DataSize: "8G", MetaSize: "256M", DataRoot: root})
	if got := e.Docker("info", "--format", "{{.DockerRootDir}}"); got != root {
		t.Fatalf("engine data root %q, want %q", got, root)
	}
	harness.MustRun(t, "dmsize-engine", "registry")
	p := harness.Payload()
	start := time.Now()
	// Each push is a plugin create and a push of its 15 MB layer, about 30 s under TCG: the fast
	// suite pushes the two versions it installs, without :latest; the lvm flavor's privileges
	// are checked on its local install there (TestDirectLVMEngine).
	if harness.Long() {
		harness.MustRun(t, "dmsize-push", registry, "v1", p+"/plugin", p+"/plugin-lvm")
		harness.MustRun(t, "dmsize-push", registry, "v2", p+"/plugin-next")
		t.Logf("pushed dmsize:v1, :latest, dmsize-lvm:v1, :latest, then dmsize:v2, :latest in %v", time.Since(start).Round(time.Millisecond))
	} else {
		harness.MustRun(t, "dmsize-push", "--no-latest", registry, "v1", p+"/plugin")
		harness.MustRun(t, "dmsize-push", "--no-latest", registry, "v2", p+"/plugin-next")
		t.Logf("pushed dmsize:v1, then dmsize:v2 in %v", time.Since(start).Round(time.Millisecond))
	}
	e.ImportBusybox()

	// What each flavor asks for at install.
	if harness.Long() {
		e.Docker("plugin", "install", "--grant-all-permissions", "--disable", "--alias", "lvm-flavor", registry+"/dmsize-lvm:v1")
		checkLVMFlavor(t, e, "lvm-flavor")
		e.Docker("plugin", "rm", "lvm-flavor")
	}

	// Every setting not exercised elsewhere in the suite, at install time. The engine's socket
	// by another path: a hard link to the socket reaches the same listener.
	const sock = "/run/dmsize-test-docker.sock"
	harness.MustRun(t, "ln", "-f", "/run/docker.sock", sock)
	const name = "sizer"
	settings := []string{"docker-root.source=" + root, "docker-socket.source=" + sock, "STATE_DIR=/var/lib/docker/dmsize-records",
		"MAX_SIZE=100G", "LOG_LEVEL=debug", "GUARD_THRESHOLD=75%", "GUARD_STEP=2G", "MAX_POOL_SIZE=40G", "MIN_HOST_FREE=4G", "GUARD_INTERVAL=5s"}
	start = time.Now()
	e.Docker(append([]string{"plugin", "install", "--grant-all-permissions", "--alias", name, registry + "/dmsize:v1"}, settings...)...)
	t.Logf("docker plugin install (pull, enable): %v", time.Since(start).Round(time.Millisecond))
	if got := privileges(e, name); got != "pidhost=false ipchost=false network= caps=CAP_MKNOD,CAP_SYS_ADMIN,CAP_SYS_RESOURCE" {
		t.Errorf("default flavor asks for %s", got)
	}
	if got := pluginSettings(e, name); !strings.Contains(got, "docker-root="+root) || !strings.Contains(got, "MAX_SIZE=100G") {
		t.Fatalf("settings after install: %s", got)
	}
	e.WaitFor("the guard to start with the settings given at install", 60*time.Second, func() bool {
		return harness.CountLines(e.DaemonLog(), "pool guard watching", `\"step\":\"2GiB\"`, `\"interval\":\"5s\"`,
			`\"threshold\":0.75`, `\"max_pool_size\":42949672960`, `\"min_host_free\":4294967296`) == 1
	})

	// Sized containers on the non-default data root: one running, one stopped.
	run := e.Docker("run", "-d", "--name", "upg-running", "--network", "none", "--label", "dm.size=20G", "busybox", "sh", "-c", keepData)
	stopped := e.Docker("run", "-d", "--name", "upg-stopped", "--network", "none", "--label", "dm.size=20G", "busybox", "sh", "-c", keepData)
	for _, id := range []string{run, stopped} {
		e.WaitRootSize(id, 20*G*95/100, 90*time.Second)
		e.WaitFor("the data written", 60*time.Second, func() bool {
			_, err := e.TryDocker("exec", id, "md5sum", "-c", "/keep.md5")
			return err == nil
		})
	}
	e.Docker("stop", "-t", "1", stopped)
	// A volume with data, mounted in a running container, across the upgrade.
	e.Docker("volume", "create", "-d", name, "-o", "size=1G", "upgvol")
	withVol := e.Docker("run", "-d", "--name", "upg-vol", "--network", "none", "-v", "upgvol:/v", "busybox", "sh", "-c",
		"dd if=/dev/urandom of=/v/f bs=1M count=16 2>/dev/null && md5sum /v/f > /v/f.md5 && sync && sleep 3600")
	e.WaitFor("the volume's data written", 60*time.Second, func() bool {
		_, err := e.TryDocker("exec", withVol, "test", "-s", "/v/f.md5")
		return err == nil
	})

	// The CLI finds the plugin under its alias, and so does the guard's view of the pool.
	if out, errOut, code := harness.CLI("grow", "upg-running", "24G"); code != 0 {
		t.Fatalf("dmsize grow: exit %d: %s %s", code, out, errOut)
	}
	if got := e.ExecRootSize(run); !harness.About(got, 24*G) {
		t.Fatalf("upg-running at %d bytes after dmsize grow 24G", got)
	}
	out, errOut, code := harness.CLI("pool", "status")
	if code != 0 || !strings.Contains(out, "room") || strings.Contains(out, "cannot") {
		t.Fatalf("dmsize pool status: exit %d: %s %s", code, out, errOut)
	}
	t.Logf("dmsize pool status on data root %s:\n%s", root, out)
	if !strings.Contains(out, "MIN_HOST_FREE keeps 4GiB") || !strings.Contains(out, "threshold 75%") {
		t.Errorf("dmsize pool status does not show MIN_HOST_FREE=4G and GUARD_THRESHOLD=75%%")
	}
	for _, id := range []string{run, stopped} {
		if _, err := os.Stat(root + "/dmsize-records/" + id + ".json"); err != nil {
			t.Errorf("STATE_DIR=/var/lib/docker/dmsize-records: no record on the host: %v", err)
		}
	}
	before := statusOf(t)

	// Metrics on the host without host networking: dmsize metrics --listen, across the upgrade.
	scrape := listenMetrics(t)
	if code, body := scrape(); code != 200 || !strings.Contains(body, "dmsize_pool_data_size_bytes{") {
		t.Fatalf("dmsize metrics --listen: HTTP %d\n%s", code, harness.LastLines(body, 5))
	}
	if c := before["upg-stopped"]; !c.Held || c.PersistedBytes != 20*G {
		t.Fatalf("stopped sized container before the upgrade: %+v; want held, persisted 20G", c)
	}

	// Upgrade: disable, upgrade, enable. While the plugin is down nothing holds the stopped
	// container's device, the kernel completes its deferred removal, and the engine would
	// re-create it at its cached 10G under a 20G filesystem: that start fails, and nothing is
	// lost.
	// dockerd holds a reference on the plugin for each of its volumes: disable needs -f.
	if out, err := e.TryDocker("plugin", "disable", name); err == nil || !strings.Contains(out, "in use") {
		t.Fatalf("docker plugin disable with a volume: %v %s; want refused as in use (the README says -f)", err, out)
	} else {
		t.Logf("docker plugin disable with a volume: %s", harness.LastLines(out, 1))
	}
	start = time.Now()
	e.Docker("plugin", "disable", "-f", name)
	disabled := time.Now()
	if code, body := scrape(); code != 503 || !strings.Contains(body, "disabled") {
		t.Errorf("a scrape while the plugin is disabled: HTTP %d %q, want 503 saying it is disabled", code, body)
	}
	if _, err := e.TryDocker("start", stopped); err == nil {
		t.Errorf("a stopped sized container started while the plugin was disabled: the window the README describes is gone; update the README")
	} else {
		t.Logf("docker start of a stopped sized container while the plugin is disabled fails, as documented: %v", firstLine(err.Error()))
	}
	// --skip-remote-check: the CLI otherwise asks before moving to another tag.
	e.Docker("plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", name, registry+"/dmsize:v2")
	after := pluginSettings(e, name)
	t.Logf("settings after docker plugin upgrade: %s", after)
	// Docker 20.10 keeps the settings docker plugin inspect shows across an upgrade but starts
	// the upgraded plugin with the new config's mount sources: without this set, the enable
	// fails ("error mounting /var/lib/docker ... no such file or directory") or, where that
	// path exists, mounts the wrong data root. The README says to set them again.
	e.Docker(append([]string{"plugin", "set", name}, settings...)...)
	e.Docker("plugin", "enable", name)
	enabled := time.Now()
	dev := e.DeviceOf(stopped)
	repaired := e.WaitFor("the stopped container's device back at 20G", 60*time.Second, func() bool {
		return harness.DeviceSectors(dev) == 20*G/512
	})
	t.Logf("upgrade: disable %v, upgrade+enable %v; stopped container's device repaired %v after enable (window without a plugin: %v)",
		disabled.Sub(start).Round(time.Millisecond), enabled.Sub(disabled).Round(time.Millisecond), repaired.Round(time.Millisecond),
		enabled.Add(repaired).Sub(disabled).Round(time.Millisecond))

	e.WaitFor("scrapes to answer again after the upgrade", 30*time.Second, func() bool {
		code, body := scrape()
		return code == 200 && strings.Contains(body, "dmsize_pool_data_size_bytes{")
	})
	if v, errOut, code := harness.CLI("version"); code != 0 || !strings.Contains(v, "-next") {
		t.Fatalf("dmsize version after the upgrade: exit %d: %s %s", code, v, errOut)
	}
	e.Docker("start", stopped)
	if got := e.ExecRootSize(stopped); !harness.About(got, 20*G) {
		t.Fatalf("upg-stopped starts at %d bytes after the upgrade, want 20G", got)
	}
	if got := e.ExecRootSize(run); !harness.About(got, 24*G) {
		t.Fatalf("upg-running at %d bytes after the upgrade, want 24G", got)
	}
	for _, id := range []string{run, stopped} {
		if out, err := e.TryDocker("exec", id, "md5sum", "-c", "/keep.md5"); err != nil {
			t.Fatalf("container %s: data changed across the upgrade: %s %v", id, out, err)
		}
	}
	// The volume: still mounted in the running container, mounted by a new one, and known to
	// the upgraded plugin.
	if out, err := e.TryDocker("exec", withVol, "md5sum", "-c", "/v/f.md5"); err != nil {
		t.Fatalf("the running container's volume after the upgrade: %s %v", out, err)
	}
	if out, err := e.TryDocker("run", "--rm", "--network", "none", "-v", "upgvol:/v", "busybox", "md5sum", "-c", "/v/f.md5"); err != nil {
		t.Fatalf("a new container's mount of the volume after the upgrade: %s %v", out, err)
	}
	if st := e.Docker("volume", "inspect", "--format", "{{json .Status}}", "upgvol"); !strings.Contains(st, `"size":"1GiB"`) || !strings.Contains(st, `"mounts":1`) {
		t.Fatalf("docker volume inspect after the upgrade: Status %s", st)
	}
	afterStatus := statusOf(t)
	for _, n := range []string{"upg-running", "upg-stopped"} {
		b, a := before[n], afterStatus[n]
		t.Logf("%s: before the upgrade %+v; after %+v", n, b, a)
		if a.PersistedBytes != b.PersistedBytes || a.GrownBytes != b.GrownBytes || a.Label != b.Label {
			t.Errorf("%s: record before %+v, after %+v", n, b, a)
		}
	}
	// A new container after the upgrade is sized by the new version.
	id := e.Docker("run", "-d", "--network", "none", "--label", "dm.size=16G", "busybox", "sleep", "3600")
	e.WaitRootSize(id, 16*G*95/100, 90*time.Second)
}

// listenMetrics starts `dmsize metrics --listen` on the guest's loopback for the rest of the
// test and returns a scrape: its HTTP status and body.
func listenMetrics(t *testing.T) func() (int, string) {
	t.Helper()
	const addr = "127.0.0.1:9434"
	cmd := exec.Command("dmsize", "metrics", "--listen", addr)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		t.Logf("dmsize metrics --listen said:\n%s", stderr.String())
	})
	c := http.Client{Timeout: 10 * time.Second}
	scrape := func() (int, string) {
		resp, err := c.Get("http://" + addr + "/metrics")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for code, _ := scrape(); code == 0 && time.Now().Before(deadline); code, _ = scrape() {
		time.Sleep(100 * time.Millisecond)
	}
	return scrape
}

// checkLVMFlavor checks what the lvm flavor, installed as name, asks of the host.
func checkLVMFlavor(t *testing.T, e *harness.Engine, name string) {
	t.Helper()
	if got := privileges(e, name); got != "pidhost=true ipchost=true network= caps=CAP_IPC_LOCK,CAP_MKNOD,CAP_SYS_ADMIN,CAP_SYS_CHROOT,CAP_SYS_PTRACE,CAP_SYS_RESOURCE" {
		t.Errorf("lvm flavor asks for %s", got)
	}
}

// privileges is what a plugin's config asks of the host, in one line, the capabilities sorted
// (the engine keeps them in the order the config lists them).
func privileges(e *harness.Engine, name string) string {
	out := e.Docker("plugin", "inspect", "--format",
		`pidhost={{.Config.PidHost}} ipchost={{.Config.IpcHost}} network={{.Config.Network.Type}} caps={{join .Config.Linux.Capabilities ","}}`, name)
	head, caps, _ := strings.Cut(out, "caps=")
	list := strings.Split(caps, ",")
	sort.Strings(list)
	return head + "caps=" + strings.Join(list, ",")
}

// pluginSettings is a plugin's mount sources and environment, as "name=value" words.
func pluginSettings(e *harness.Engine, name string) string {
	return e.Docker("plugin", "inspect", "--format",
		`{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}{{join .Settings.Env " "}}`, name)
}

// statusOf is `dmsize status --format json` by container name.
func statusOf(t *testing.T) map[string]controlapi.Container {
	t.Helper()
	out, errOut, code := harness.CLI("status", "--format", "json")
	if code != 0 {
		t.Fatalf("dmsize status: exit %d: %s", code, errOut)
	}
	var list []controlapi.Container
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("dmsize status --format json: %v: %s", err, out)
	}
	m := map[string]controlapi.Container{}
	for _, c := range list {
		m[strings.TrimPrefix(c.Name, "/")] = c
	}
	return m
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

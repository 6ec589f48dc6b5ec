//go:build vmtest

package graphdriver

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsize/dmsize/integration/harness"
	"github.com/dmsize/dmsize/volume"
)

// volumePoolLV is the operator's LVM thin pool the volumes go into (VOLUME_POOL), beside the
// engine's docker/thinpool in the same volume group; its device-mapper thin-pool target.
const (
	volumePoolLV  = "docker/volumes"
	volumePoolDev = "docker-volumes-tpool"
)

// lvmVolumes lists dmsize's thin LVs in the volume group: name -> "size_bytes|tags|pool".
func lvmVolumes(t *testing.T) map[string]string {
	t.Helper()
	out := harness.MustRun(t, "lvs", "--noheadings", "--nosuffix", "--units", "b", "--separator", "|",
		"-o", "lv_name,lv_size,lv_tags,pool_lv", "docker")
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(strings.TrimSpace(line), "|", 2)
		if len(f) == 2 && strings.HasPrefix(f[0], "dmsize-vol-") {
			m[f[0]] = f[1]
		}
	}
	return m
}

// Volumes in an operator's LVM thin pool (VOLUME_POOL=docker/volumes, the lvm flavor): each
// is a thin LV made, grown and removed with the host's lvm, which keeps the pool's transaction
// id; crashes are settled by the records and whether the LV exists (a create's rollback removes
// only an LV the create made); the guard extends the pool with lvextend.
func volumesInLVMPool(t *testing.T, e *harness.Engine) {
	harness.MustRun(t, "dmesg", "-C") // checkHealthy reads the kernel's log
	// 512 MiB, no autoextension of LVM's own: the guard is what grows it.
	harness.MustRun(t, "lvcreate", "-qq", "--yes", "--type", "thin-pool", "-L", "512M", "-n", "volumes", "docker")
	e.InstallDmsize("VOLUME_POOL=" + volumePoolLV)
	checkLVMFlavor(t, e, harness.Plugin)
	// dockerd copies the plugin's log lines into its own as they come, after the enable.
	e.WaitFor(`the plugin's "volumes: ready" line naming `+volumePoolLV, 30*time.Second, func() bool {
		return harness.CountLines(e.DaemonLog(), "volumes: ready", volumePoolLV) > 0
	})
	start := time.Now()
	e.Docker("volume", "create", "-d", harness.Plugin, "-o", "size=2G", "-o", "fs=xfs", "data")
	t.Logf("docker volume create -o size=2G -o fs=xfs in %s: %v", volumePoolLV, time.Since(start).Round(time.Millisecond))
	e.WaitFor("the over-commit warning", 30*time.Second, func() bool {
		return harness.CountLines(e.DaemonLog(), "WARNING: volume data: sum of all thin volume sizes (2GiB) exceeds the size of the volume pool (512MiB)") > 0
	})
	lvs := lvmVolumes(t)
	if len(lvs) != 1 || lvs["dmsize-vol-1"] != "2147483648|"+volume.LVMTag+"|volumes" {
		t.Fatalf("thin LVs after the create: %v", lvs)
	}
	if st := e.Docker("volume", "inspect", "--format", "{{json .Status}}", "data"); !strings.Contains(st, `"pool":"`+volumePoolLV+`"`) || !strings.Contains(st, `"size":"2GiB"`) {
		t.Fatalf("docker volume inspect: Status %s", st)
	}
	t.Logf("$ lvs docker\n%s", harness.MustRun(t, "lvs", "docker"))

	w := e.Docker("run", "-d", "--network", "none", "-v", "data:/v", "busybox", "sh", "-c",
		"dd if=/dev/urandom of=/v/f bs=1M count=32 2>/dev/null && md5sum /v/f > /v/f.md5 && sync && sleep 3600")
	e.WaitFor("the container's checksum", time.Minute, func() bool {
		_, err := e.TryDocker("exec", w, "test", "-s", "/v/f.md5")
		return err == nil
	})
	intact := func(what string) {
		t.Helper()
		if out, err := e.TryDocker("exec", w, "md5sum", "-c", "/v/f.md5"); err != nil {
			t.Fatalf("%s: the volume's data: %v\n%s", what, err, out)
		}
	}
	if got := harness.ParseDfKiB(t, e.Docker("exec", w, "df", "-P", "-k", "/v")); !fsAbout(got, 2*G) {
		t.Fatalf("df in the container: %d bytes, want about 2 GiB", got)
	}

	// Online growth: lvextend, then xfs_growfs, under the running container.
	start = time.Now()
	out := cli(t, 0, "volume", "grow", "data", "3G")
	t.Logf("dmsize volume grow data 3G (%v): %s", time.Since(start).Round(time.Millisecond), out)
	if got := harness.ParseDfKiB(t, e.Docker("exec", w, "df", "-P", "-k", "/v")); !fsAbout(got, 3*G) {
		t.Fatalf("df in the running container after the grow: %d bytes, want about 3 GiB", got)
	}
	if lvs := lvmVolumes(t); !strings.HasPrefix(lvs["dmsize-vol-1"], "3221225472|") {
		t.Fatalf("LV after the grow: %v", lvs)
	}
	intact("after the grow")
	t.Logf("$ docker volume inspect -f '{{json .Status}}' data\n%s", e.Docker("volume", "inspect", "-f", "{{json .Status}}", "data"))
	status := cli(t, 0, "volume", "status")
	t.Logf("$ dmsize volume status\n%s", status)
	if !strings.Contains(status, "docker/dmsize-vol-1") {
		t.Fatalf("dmsize volume status does not name the LV docker/dmsize-vol-1:\n%s", status)
	}
	t.Logf("$ docker exec %.12s df -h /v\n%s", w, e.Docker("exec", w, "df", "-h", "/v"))

	// A dmsize LV no record names (a state directory restored from a backup) at the id the
	// next create reserves: a SIGKILL right after that create's intent, and the start's
	// rollback leaves the LV alone (the create never made it); the create repeated skips it.
	harness.MustRun(t, "lvcreate", "-qq", "--yes", "--thin", "-V", "64M", "-n", "dmsize-vol-2", "--addtag", volume.LVMTag, volumePoolLV)
	a := armAndKill(t, e, volume.StepCreateIntent)
	out, err := e.TryDocker("volume", "create", "-d", harness.Plugin, "-o", "size=1G", "restored")
	crashed(t, e, volume.StepCreateIntent, a)
	t.Logf("docker volume create across a crash after its intent: %v %s", err, harness.LastLines(out, 1))
	e.TryDocker("volume", "rm", "restored") // dockerd may have recorded it
	if lvs := lvmVolumes(t); len(lvs) != 2 || lvs["dmsize-vol-2"] == "" {
		t.Fatalf("thin LVs after the crashed create was rolled back, want dmsize-vol-1 and the restored dmsize-vol-2: %v", lvs)
	}
	e.Docker("volume", "create", "-d", harness.Plugin, "-o", "size=1G", "restored")
	if lvs := lvmVolumes(t); len(lvs) != 3 || lvs["dmsize-vol-2"] == "" || lvs["dmsize-vol-3"] == "" {
		t.Fatalf("thin LVs after the create repeated, want it at dmsize-vol-3: %v", lvs)
	}
	e.Docker("volume", "rm", "restored")
	harness.MustRun(t, "lvremove", "-qq", "--yes", "docker/dmsize-vol-2")

	// A SIGKILL after the LV was made (and recorded as the create's), and one after the
	// removal's intent: the next start removes the half-made LV and finishes the removal.
	a = armAndKill(t, e, volume.StepThinCreated)
	out, err = e.TryDocker("volume", "create", "-d", harness.Plugin, "-o", "size=1G", "crashed")
	crashed(t, e, volume.StepThinCreated, a)
	t.Logf("docker volume create across a crash after lvcreate: %v %s", err, harness.LastLines(out, 1))
	e.TryDocker("volume", "rm", "crashed") // dockerd may have recorded it
	if lvs := lvmVolumes(t); len(lvs) != 1 {
		t.Fatalf("thin LVs after the crashed create was rolled back: %v", lvs)
	}
	e.Docker("volume", "create", "-d", harness.Plugin, "-o", "size=1G", "crashed")
	if got := volumeDf(t, e, "crashed"); !fsAbout(got, 1*G) {
		t.Fatalf("the create repeated after the crash: df %d bytes", got)
	}
	a = armAndKill(t, e, volume.StepRemoveIntent)
	out, err = e.TryDocker("volume", "rm", "crashed")
	crashed(t, e, volume.StepRemoveIntent, a)
	t.Logf("docker volume rm across a crash after its intent: %v %s", err, harness.LastLines(out, 1))
	if out, err := e.TryDocker("volume", "rm", "crashed"); err != nil && !strings.Contains(out, "No such volume") {
		t.Fatalf("the removal repeated after the crash: %v %s", err, out)
	}
	if lvs := lvmVolumes(t); len(lvs) != 1 {
		t.Fatalf("thin LVs after the crashed removal: %v", lvs)
	}
	intact("after two plugin crashes")

	// The guard watches the LVM volume pool: 768 MiB into a 512 MiB pool, extended by
	// lvextend as it fills.
	before := poolStatus(t, volumePoolDev)
	start = time.Now()
	if out, err := e.TryDocker("exec", w, "dd", "if=/dev/zero", "of=/v/big", "bs=1M", "count=768", "conv=fsync"); err != nil {
		t.Fatalf("768 MiB into a volume of a 512 MiB LVM pool: %v\n%s\n--- kernel:\n%s", err, out, harness.LastLines(dmesg(t), 20))
	}
	after := poolStatus(t, volumePoolDev)
	ok := metric(t, `dmsize_pool_extensions_total{part="data",pool="`+volumePoolDev+`",result="ok"}`)
	lv := strings.TrimSpace(harness.MustRun(t, "lvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "lv_size", volumePoolLV))
	t.Logf("768 MiB written in %v; LV %s %s -> %s bytes (pool data %s -> %s) in %v extensions", time.Since(start).Round(time.Millisecond),
		volumePoolLV, strconv.FormatInt(before.dataTotal, 10), lv, gibs(before.dataTotal), gibs(after.dataTotal), ok)
	if after.dataTotal < 768<<20 || ok < 1 {
		t.Fatalf("volume pool data %d bytes after %v extensions", after.dataTotal, ok)
	}
	intact("after the fill")

	// In use: refused; stopped: removed, LVs and all.
	if out, err := e.TryDocker("volume", "rm", "data"); err == nil || !strings.Contains(out, "in use") {
		t.Fatalf("docker volume rm of a volume in use: %v %s", err, out)
	}
	e.Docker("rm", "-f", w)
	if out, err := e.TryDocker("run", "--rm", "--network", "none", "-v", "data:/v", "busybox", "md5sum", "-c", "/v/f.md5"); err != nil {
		t.Fatalf("a new container: %v\n%s", err, out)
	}
	e.Docker("volume", "rm", "data")
	if lvs := lvmVolumes(t); len(lvs) != 0 {
		t.Fatalf("thin LVs left after docker volume rm: %v", lvs)
	}
	if left := volRecords(t); len(left) != 0 {
		t.Fatalf("records left after docker volume rm: %v", left)
	}
	checkHealthy(t, volumePoolDev, false)
}

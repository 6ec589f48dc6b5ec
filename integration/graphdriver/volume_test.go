//go:build vmtest

package graphdriver

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmsize/dmsize/integration/harness"
	"github.com/dmsize/dmsize/volume"
)

// dmsize's volume driver on one engine: sized volumes seen by df, shared by two containers,
// grown online, through a plugin SIGKILL and a dockerd restart with their data, xfs, bad
// options, a SIGKILL during a create, a mount, a grow and a removal (after the step that changes
// the device in each; every step in `make test-long`, and every step in volume's unit tests),
// the mount IDs of a container that went while the plugin was disabled, and many creates and
// removals leaving nothing behind.
func TestVolumes(t *testing.T) {
	e := harness.StartEngine(t, harness.Setup{Kind: "loop-lvm", FS: "xfs"})
	harness.MustRun(t, "dmesg", "-C") // checkHealthy reads the kernel's log
	e.ImportBusybox()
	// A 1 GiB volume pool: the volumes' sizes over-commit it, as thin volumes may, and the
	// guard subtest's fill makes it grow.
	e.InstallDmsize("VOLUME_POOL_SIZE=1G")
	t.Run("lifecycle", func(t *testing.T) { volumeLifecycle(t, e.With(t)) })
	if harness.Long() { // the guard's fills in the fast suite: TestGuardLoopData and the like
		t.Run("guard", func(t *testing.T) { volumeGuard(t, e.With(t)) })
	}
	t.Run("bad-options", func(t *testing.T) { volumeBadOptions(t, e.With(t)) })
	t.Run("crash", func(t *testing.T) { volumeCrashes(t, e.With(t)) })
	t.Run("stale-mounts", func(t *testing.T) { volumeStaleMounts(t, e.With(t)) })
	// 5 in the fast suite, 200 in `make test-long`; DMSIZE_VOLUMES=N for another count.
	many := harness.Pick(5, 200)
	if s := os.Getenv("DMSIZE_VOLUMES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("DMSIZE_VOLUMES=%q: want a count of at least 1", s)
		}
		many = n
	}
	t.Run("many", func(t *testing.T) { volumeMany(t, e.With(t), many) })
}

// volumeDf is the size of the filesystem at dir in a new container using volume name there.
func volumeDf(t *testing.T, e *harness.Engine, name string) int64 {
	t.Helper()
	return harness.ParseDfKiB(t, e.Docker("run", "--rm", "--network", "none", "-v", name+":/v", "busybox", "df", "-P", "-k", "/v"))
}

// fsAbout: a filesystem of a volume of want bytes (ext4 and xfs keep up to 5 % for themselves).
func fsAbout(got, want int64) bool { return got <= want && got >= want*93/100 }

func volDevices(t *testing.T) []string {
	t.Helper()
	names, err := harness.DeviceNames()
	if err != nil {
		t.Fatal(err)
	}
	var vols []string
	for _, n := range names {
		if strings.HasPrefix(n, "dmsize-vol-") {
			vols = append(vols, n)
		}
	}
	return vols
}

func volRecords(t *testing.T) []string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(harness.StateDir, "volumes", "records"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func volumeLifecycle(t *testing.T, e *harness.Engine) {
	start := time.Now()
	e.Docker("volume", "create", "-d", harness.Plugin, "-o", "size=2G", "data")
	t.Logf("docker volume create -o size=2G: %v (the first one also makes the pool)", time.Since(start).Round(time.Millisecond))
	// 2 GiB in a 1 GiB pool: granted, with LVM's kind of warning.
	e.WaitFor("the over-commit warning", 30*time.Second, func() bool {
		return harness.CountLines(e.DaemonLog(), "WARNING: volume data: sum of all thin volume sizes (2GiB) exceeds the size of the volume pool (1GiB)") > 0
	})
	if st := e.Docker("volume", "inspect", "--format", "{{json .Status}}", "data"); !strings.Contains(st, `"size":"2GiB"`) || !strings.Contains(st, `"fs":"ext4"`) || !strings.Contains(st, `"state":"ready"`) {
		t.Fatalf("docker volume inspect: Status %s", st)
	}
	if got := volumeDf(t, e, "data"); !fsAbout(got, 2*G) {
		t.Fatalf("df in a container: %d bytes, want about 2 GiB", got)
	}
	t.Logf("$ docker run --rm -v data:/data busybox df -h /data\n%s", e.Docker("run", "--rm", "--network", "none", "-v", "data:/data", "busybox", "df", "-h", "/data"))

	// Two containers share it; one goes, the other keeps it mounted.
	w1 := e.Docker("run", "-d", "--network", "none", "-v", "data:/v", "busybox", "sh", "-c",
		"dd if=/dev/urandom of=/v/f bs=1M count=32 2>/dev/null && md5sum /v/f > /v/f.md5 && sync && sleep 3600")
	e.WaitFor("the first container's checksum", time.Minute, func() bool {
		_, err := e.TryDocker("exec", w1, "test", "-s", "/v/f.md5")
		return err == nil
	})
	w2 := e.Docker("run", "-d", "--network", "none", "-v", "data:/v", "--stop-timeout", "1", "busybox", "sleep", "3600")
	e.Docker("rm", "-f", w1)
	check := func(what, id string) {
		t.Helper()
		if out, err := e.TryDocker("exec", id, "md5sum", "-c", "/v/f.md5"); err != nil {
			t.Fatalf("%s: the volume's data: %v\n%s", what, err, out)
		}
	}
	check("after the other container went", w2)

	// Online growth, in the running container.
	start = time.Now()
	out := cli(t, 0, "volume", "grow", "data", "4G")
	t.Logf("dmsize volume grow data 4G (%v): %s", time.Since(start).Round(time.Millisecond), out)
	if got := harness.ParseDfKiB(t, e.Docker("exec", w2, "df", "-P", "-k", "/v")); !fsAbout(got, 4*G) {
		t.Fatalf("df in the running container after the grow: %d bytes, want about 4 GiB", got)
	}
	check("after the grow", w2)
	cli(t, 1, "volume", "grow", "data", "3G") // never shrinks
	if out := cli(t, 0, "volume", "grow", "data", "4G"); !strings.Contains(out, "already 4GiB") {
		t.Fatalf("a repeated grow said %q", out)
	}
	t.Logf("$ docker volume inspect -f '{{json .Status}}' data\n%s", e.Docker("volume", "inspect", "-f", "{{json .Status}}", "data"))
	status := cli(t, 0, "volume", "status")
	t.Logf("dmsize volume status:\n%s", status)
	if !strings.Contains(status, "data") || !strings.Contains(status, "4GiB") {
		t.Fatalf("status: %s", status)
	}

	// A grow whose filesystem step fails (the filesystem remounted read-only, from the
	// container's side): refused with the reason, the volume still 4G; asked again once the
	// filesystem is writable, the grow is finished, not taken as already done.
	// From the host, in the container's mount and pid namespaces (its /proc/mounts).
	pid := e.Docker("inspect", "--format", "{{.State.Pid}}", w2)
	harness.MustRun(t, "nsenter", "-t", pid, "-m", "-p", "mount", "-o", "remount,ro", "/v")
	if out, errOut, code := harness.CLI("volume", "grow", "data", "5G"); code != 1 {
		t.Fatalf("dmsize volume grow data 5G on a read-only filesystem: exit %d, want 1\n%s%s", code, out, errOut)
	} else {
		t.Logf("dmsize volume grow data 5G, its filesystem read-only -> exit 1: %s", strings.TrimSpace(errOut))
	}
	if got := harness.ParseDfKiB(t, e.Docker("exec", w2, "df", "-P", "-k", "/v")); !fsAbout(got, 4*G) {
		t.Fatalf("df after the failed grow: %d bytes, want about 4 GiB", got)
	}
	harness.MustRun(t, "nsenter", "-t", pid, "-m", "-p", "mount", "-o", "remount,rw", "/v")
	if out := cli(t, 0, "volume", "grow", "data", "5G"); strings.Contains(out, "already") {
		t.Fatalf("the grow asked again after a failed filesystem step said %q", out)
	} else {
		t.Logf("dmsize volume grow data 5G, asked again: %s", strings.TrimSpace(out))
	}
	if got := harness.ParseDfKiB(t, e.Docker("exec", w2, "df", "-P", "-k", "/v")); !fsAbout(got, 5*G) {
		t.Fatalf("df after the grow asked again: %d bytes, want about 5 GiB", got)
	}
	check("after a failed grow and the grow asked again", w2)

	// The plugin SIGKILLed: the running container keeps its data, a new one mounts the volume.
	t.Logf("plugin SIGKILLed, back in %v", e.KillPlugin().Round(time.Millisecond))
	check("after a plugin SIGKILL, the running container", w2)
	if out, err := e.TryDocker("run", "--rm", "--network", "none", "-v", "data:/v", "busybox", "md5sum", "-c", "/v/f.md5"); err != nil {
		t.Fatalf("a new container after the plugin's SIGKILL: %v\n%s", err, out)
	}
	// In use: the engine refuses the removal (and dmsize would).
	if out, err := e.TryDocker("volume", "rm", "data"); err == nil || !strings.Contains(out, "in use") {
		t.Fatalf("docker volume rm of a volume in use: %v %s", err, out)
	}

	// A dockerd restart (the running container stops with it).
	e.Restart()
	e.WaitFor("the plugin after the dockerd restart", time.Minute, func() bool { return harness.PluginPID() != 0 })
	if out, err := e.TryDocker("run", "--rm", "--network", "none", "-v", "data:/v", "busybox", "md5sum", "-c", "/v/f.md5"); err != nil {
		t.Fatalf("after a dockerd restart: %v\n%s", err, out)
	}
	if got := volumeDf(t, e, "data"); !fsAbout(got, 5*G) {
		t.Fatalf("df after a dockerd restart: %d bytes, want about 5 GiB", got)
	}

	// xfs.
	// (Not a one-letter name: docker run -v reads "x:/v" as a Windows drive path.)
	e.Docker("volume", "create", "-d", harness.Plugin, "-o", "size=1G", "-o", "fs=xfs", "xfsvol")
	if got := volumeDf(t, e, "xfsvol"); !fsAbout(got, 1*G) {
		t.Fatalf("xfs volume: df %d bytes, want about 1 GiB", got)
	}
	if st := e.Docker("volume", "inspect", "--format", "{{json .Status}}", "xfsvol"); !strings.Contains(st, `"fs":"xfs"`) {
		t.Fatalf("xfs volume: Status %s", st)
	}

	// rm: the devices and the records go.
	e.Docker("rm", "-f", w2)
	e.Docker("volume", "rm", "data", "xfsvol")
	if left := volDevices(t); len(left) != 0 {
		t.Fatalf("devices left after docker volume rm: %v", left)
	}
	if left := volRecords(t); len(left) != 0 {
		t.Fatalf("records left after docker volume rm: %v", left)
	}
}

func volumeBadOptions(t *testing.T, e *harness.Engine) {
	for _, c := range []struct {
		opts []string
		want string
	}{
		{[]string{"-o", "size=lots"}, `option size=lots`},
		{[]string{"-o", "size=0"}, `option size=0`},
		{[]string{"-o", "fs=btrfs"}, "option fs=btrfs: not one of ext4, xfs"},
		{[]string{"-o", "sise=1G"}, `unknown option "sise" (known: size, fs)`},
		{[]string{"-o", "size=5T"}, "above the plugin's maximum"},
	} {
		args := append(append([]string{"volume", "create", "-d", harness.Plugin}, c.opts...), "bad")
		out, err := e.TryDocker(args...)
		t.Logf("$ docker %s\n%s", strings.Join(args, " "), out)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("docker %s: %v, said %q; want %q", strings.Join(args, " "), err, out, c.want)
		}
	}
	if ls := e.Docker("volume", "ls", "-q"); strings.Contains(ls, "bad") {
		t.Fatalf("a refused create left a volume: %s", ls)
	}
	if left := volDevices(t); len(left) != 0 {
		t.Fatalf("a refused create left devices: %v", left)
	}
}

// armAndKill arms the crash hook for step and SIGKILLs the plugin: dockerd restarts it, and the
// restarted plugin reads the hook.
func armAndKill(t *testing.T, e *harness.Engine, step string) armed {
	t.Helper()
	if err := os.WriteFile(harness.CrashFile, []byte(step+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.KillPlugin()
	return armed{pid: harness.PluginPID(), at: time.Now()}
}

// armed is a plugin started with the crash hook armed, and when dockerd had finished starting it.
type armed struct {
	pid int
	at  time.Time
}

// crashed waits for the armed plugin to have died at step and for dockerd to have started a
// new one.
func crashed(t *testing.T, e *harness.Engine, step string, a armed) {
	t.Helper()
	if _, err := os.Stat(harness.CrashFile); err == nil {
		t.Fatalf("the plugin never reached %s", step)
	}
	if _, _, ok := harness.NextPluginPID(a.pid, time.Minute); !ok {
		ps, _ := harness.Run("ps", "-eo", "pid,ppid,stat,wchan:24,etime,args")
		t.Fatalf("no plugin after the crash at %s; processes:\n%s\ndockerd's log:\n%s", step, ps, harness.LastLines(e.DaemonLog(), 40))
	}
	// The restarted plugin listens before its repairs, so that dockerd's first dial, 0.5 s
	// after it starts the process, finds it: the save comes about then, not 3 s later.
	t.Logf("dockerd had the plugin started again %v after the crash's operation began",
		e.WaitStarted(a.at).Round(time.Millisecond))
}

func volumeCrashes(t *testing.T, e *harness.Engine) {
	mark := len(e.DaemonLog())
	// A volume with data, mounted in a running container, through every crash.
	e.Docker("volume", "create", "-d", harness.Plugin, "-o", "size=1G", "keep")
	by := e.Docker("run", "-d", "--network", "none", "-v", "keep:/v", "busybox", "sh", "-c",
		"dd if=/dev/urandom of=/v/f bs=1M count=16 2>/dev/null && md5sum /v/f > /v/f.md5 && sync && sleep 3600")
	e.WaitFor("the bystander's checksum", time.Minute, func() bool {
		_, err := e.TryDocker("exec", by, "test", "-s", "/v/f.md5")
		return err == nil
	})
	crashes := 0
	createSteps := harness.Pick([]string{volume.StepThinCreated},
		[]string{volume.StepCreateIntent, volume.StepThinCreated, volume.StepTxnSet, volume.StepPoolRecorded, volume.StepFilesystem})
	for _, step := range createSteps {
		crashes++
		t.Run(step, func(t *testing.T) {
			e := e.With(t)
			a := armAndKill(t, e, step)
			out, err := e.TryDocker("volume", "create", "-d", harness.Plugin, "-o", "size=1G", "crashed")
			crashed(t, e, step, a)
			t.Logf("docker volume create across a crash at %s: %v %s", step, err, harness.LastLines(out, 1))
			// The interrupted create was rolled back; the create, repeated, makes a whole volume.
			e.TryDocker("volume", "rm", "crashed") // dockerd may have recorded it, if the answer came
			e.Docker("volume", "create", "-d", harness.Plugin, "-o", "size=1G", "crashed")
			if got := volumeDf(t, e, "crashed"); !fsAbout(got, 1*G) {
				t.Fatalf("after the crash: df %d bytes", got)
			}
			e.Docker("volume", "rm", "crashed")
			if n := len(volDevices(t)); n != 1 {
				t.Fatalf("%d volume devices, want the bystander's only", n)
			}
			if out, err := e.TryDocker("exec", by, "md5sum", "-c", "/v/f.md5"); err != nil {
				t.Fatalf("the bystander's data: %v\n%s", err, out)
			}
		})
	}
	crashes++
	t.Run(volume.StepMountRecorded, func(t *testing.T) {
		e := e.With(t)
		a := armAndKill(t, e, volume.StepMountRecorded)
		out, err := e.TryDocker("run", "--rm", "--network", "none", "-v", "keep:/v", "busybox", "md5sum", "-c", "/v/f.md5")
		crashed(t, e, volume.StepMountRecorded, a)
		t.Logf("docker run across a crash at the mount: %v %s", err, harness.LastLines(out, 1))
		if out, err := e.TryDocker("run", "--rm", "--network", "none", "-v", "keep:/v", "busybox", "md5sum", "-c", "/v/f.md5"); err != nil {
			t.Fatalf("a mount after the crash: %v\n%s", err, out)
		}
		if out, err := e.TryDocker("exec", by, "md5sum", "-c", "/v/f.md5"); err != nil {
			t.Fatalf("the running container's data: %v\n%s", err, out)
		}
	})
	// A grow cut short: the next start finishes it from the record (device, then filesystem),
	// online under the running container; the grow repeated finds it done.
	for i, step := range harness.Pick([]string{volume.StepDeviceGrown}, []string{volume.StepGrowIntent, volume.StepDeviceGrown}) {
		crashes++
		t.Run(step, func(t *testing.T) {
			e := e.With(t)
			want := fmt.Sprintf("%dM", 1536+512*i)
			a := armAndKill(t, e, step)
			out, errOut, code := harness.CLI("volume", "grow", "keep", want)
			crashed(t, e, step, a)
			t.Logf("dmsize volume grow keep %s across a crash at %s: exit %d %s%s", want, step, code, out, errOut)
			if out := cli(t, 0, "volume", "grow", "keep", want); !strings.Contains(out, "already") {
				t.Fatalf("the grow repeated after the crash did it again: %q", out)
			}
			if got := harness.ParseDfKiB(t, e.Docker("exec", by, "df", "-P", "-k", "/v")); !fsAbout(got, int64(1536+512*i)<<20) {
				t.Fatalf("df in the running container after the crash: %d bytes, want about %s", got, want)
			}
			if out, err := e.TryDocker("exec", by, "md5sum", "-c", "/v/f.md5"); err != nil {
				t.Fatalf("the running container's data: %v\n%s", err, out)
			}
		})
	}
	// A removal cut short: repeated, it succeeds and leaves nothing of the volume.
	for _, step := range harness.Pick([]string{volume.StepThinDeleted},
		[]string{volume.StepRemoveIntent, volume.StepThinDeleted, volume.StepRemoveTxnSet, volume.StepRemovePoolNote}) {
		crashes++
		t.Run(step, func(t *testing.T) {
			e := e.With(t)
			e.Docker("volume", "create", "-d", harness.Plugin, "-o", "size=1G", "gone")
			a := armAndKill(t, e, step)
			out, err := e.TryDocker("volume", "rm", "gone")
			crashed(t, e, step, a)
			t.Logf("docker volume rm across a crash at %s: %v %s", step, err, harness.LastLines(out, 1))
			// Repeated, it removes the volume, or finds it gone: the restarted plugin finished
			// the removal, and dockerd forgets a volume its driver no longer has.
			if err != nil {
				out, err := e.TryDocker("volume", "rm", "gone")
				t.Logf("docker volume rm gone, repeated: %v %s", err, harness.LastLines(out, 1))
				if err != nil && !strings.Contains(out, "No such volume: gone") {
					t.Fatalf("docker volume rm gone, repeated after the crash: %v\n%s", err, out)
				}
			}
			if ls := e.Docker("volume", "ls", "-q"); strings.Contains(ls, "gone") {
				t.Fatalf("docker volume ls after the removal: %s", ls)
			}
			if n := len(volDevices(t)); n != 1 {
				t.Fatalf("%d volume devices, want the bystander's only", n)
			}
			if ids := harness.PoolThinIDs(t, volume.PoolName); len(ids) != 1 {
				t.Fatalf("thin devices in the volume pool: %v, want the bystander's only", ids)
			}
			for _, r := range volRecords(t) {
				if strings.Contains(r, "gone") {
					t.Fatalf("a record is left: %v", volRecords(t))
				}
			}
			if out, err := e.TryDocker("exec", by, "md5sum", "-c", "/v/f.md5"); err != nil {
				t.Fatalf("the bystander's data: %v\n%s", err, out)
			}
		})
	}
	e.Docker("rm", "-f", by)
	// A plugin that dockerd restarted after a crash gets, through its bind of the data root, a
	// copy of the host's mount of each volume mounted at the time; volume.Isolate detaches them
	// at start, so the removal finds the device closed.
	if out, err := e.TryDocker("volume", "rm", "keep"); err != nil {
		t.Fatalf("docker volume rm keep after the crashes: %v\n%s\nwho has it:\n%s", err, out,
			harness.DeviceUsers(e.Docker("volume", "inspect", "-f", "{{.Status.device}}", "keep")))
	}
	log := e.DaemonLog()[mark:]
	if n := strings.Count(log, "detached the plugin namespace's copy of a propagated-mount directory"); n < crashes {
		t.Fatalf("%d plugin starts detached the propagated-mount copies, want one per crash (%d); dockerd's log:\n%s", n, crashes, harness.LastLines(log, 40))
	}
	if left := volDevices(t); len(left) != 0 {
		t.Fatalf("devices left: %v", left)
	}
}

// volumeStaleMounts: a container removed while the plugin is disabled leaves its mount ID
// behind (dockerd's unmount finds no plugin); once enabled again, the plugin asks the engine,
// forgets the ID of the container that is gone and unmounts the volume.
func volumeStaleMounts(t *testing.T, e *harness.Engine) {
	e.Docker("volume", "create", "-d", harness.Plugin, "-o", "size=1G", "stale")
	id := e.Docker("run", "-d", "--network", "none", "-v", "stale:/v", "busybox", "sleep", "3600")
	e.Docker("plugin", "disable", "-f", harness.Plugin)
	e.Docker("rm", "-f", id)
	rec, err := os.ReadFile(filepath.Join(harness.StateDir, "volumes", "records", "stale.json"))
	var r volume.Record
	if err == nil {
		err = json.Unmarshal(rec, &r)
	}
	if err != nil || len(r.Mounts) != 1 {
		t.Fatalf("the record of stale after its container went with the plugin disabled, want a mount ID left: %v %s", err, rec)
	}
	// The enable's start mounts the volume again (its record has the ID), then forgets the ID;
	// a SIGKILL right after that record, before the unmount: dockerd's handling of the plugin's
	// exit unmounts its propagated mount on the host (OnHit logs whether that came first), and
	// the next start, finding no mount ID, leaves the volume unmounted and removable.
	point := filepath.Join("/var/lib/docker/plugins", e.Docker("plugin", "inspect", "-f", "{{.Id}}", harness.Plugin), "propagated-mount", "stale")
	c := e.ArmCrash(volume.StepMountsForgotten)
	c.OnHit = func() {
		if _, err := harness.Run("mountpoint", "-q", point); err != nil {
			t.Logf("at the crash %s was already unmounted on the host (dockerd unmounts a dead plugin's propagated mount)", point)
		}
	}
	c.Wait(time.Minute)
	t.Logf("%s", c)
	e.WaitFor("the stale mount ID to be forgotten", time.Minute, func() bool {
		return e.Docker("volume", "inspect", "-f", "{{.Status.mounts}}", "stale") == "0"
	})
	t.Logf("the stale mount ID forgotten and the volume unmounted %v after the enable began", time.Since(c.Armed).Round(time.Millisecond))
	e.WaitFor(point+" unmounted on the host", 30*time.Second, func() bool {
		_, err := harness.Run("mountpoint", "-q", point)
		return err != nil
	})
	e.Docker("volume", "rm", "stale")
	if n := len(volDevices(t)); n != 0 {
		t.Fatalf("%d volume devices left", n)
	}
}

// volumeGuard: 2 GiB written into a volume of a 1 GiB pool completes; the guard extended the
// volume pool's files in steps, and the metrics carry the volume pool's name.
func volumeGuard(t *testing.T, e *harness.Engine) {
	e.Docker("volume", "create", "-d", harness.Plugin, "-o", "size=3G", "fill")
	before := poolStatus(t, volume.PoolName)
	start := time.Now()
	out, err := e.TryDocker("run", "--rm", "--network", "none", "-v", "fill:/v", "busybox",
		"dd", "if=/dev/zero", "of=/v/big", "bs=1M", "count=2048", "conv=fsync")
	if err != nil {
		t.Fatalf("2 GiB into a volume of a 1 GiB pool: %v\n%s\n--- kernel:\n%s", err, out, harness.LastLines(dmesg(t), 20))
	}
	after := poolStatus(t, volume.PoolName)
	ok := metric(t, `dmsize_pool_extensions_total{part="data",pool="`+volume.PoolName+`",result="ok"}`)
	t.Logf("2 GiB written in %v; volume pool data %s -> %s in %v extensions", time.Since(start).Round(time.Millisecond), gibs(before.dataTotal), gibs(after.dataTotal), ok)
	if after.dataTotal < 2*G || ok < 2 {
		t.Fatalf("volume pool data %d bytes after %v extensions", after.dataTotal, ok)
	}
	checkHealthy(t, volume.PoolName, false)
	e.Docker("volume", "rm", "fill")
}

// volumeMany creates n volumes and removes them: nothing is left, and the pool's transaction
// id moved once per create and per removal.
func volumeMany(t *testing.T, e *harness.Engine, n int) {
	start := time.Now()
	for i := 0; i < n; i++ {
		e.Docker("volume", "create", "-d", harness.Plugin, "-o", "size=1G", fmt.Sprintf("many-%03d", i))
	}
	created := time.Since(start)
	if got := len(volDevices(t)); got != n {
		t.Fatalf("%d devices for %d volumes", got, n)
	}
	start = time.Now()
	for i := 0; i < n; i++ {
		e.Docker("volume", "rm", fmt.Sprintf("many-%03d", i))
	}
	t.Logf("%d volumes created in %v (%v each), removed in %v", n, created.Round(time.Millisecond),
		(created / time.Duration(n)).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if left := volDevices(t); len(left) != 0 {
		t.Fatalf("devices left: %v", left)
	}
	if left := volRecords(t); len(left) != 0 {
		t.Fatalf("records left: %v", left)
	}
	if ids := harness.PoolThinIDs(t, volume.PoolName); len(ids) != 0 {
		t.Fatalf("thin devices left in the volume pool: %v", ids)
	}
	if status := harness.MustRun(t, "dmsetup", "status", volume.PoolName); !strings.Contains(status, " thin-pool ") {
		t.Fatalf("pool status: %s", status)
	}
	t.Logf("pool: %s", harness.MustRun(t, "dmsetup", "status", volume.PoolName))
}

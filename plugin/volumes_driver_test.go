package plugin

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/engine"
	vol "github.com/dmsize/dmsize/volume"
)

func engineFor(t *testing.T, f *fakeDocker) *engine.Client {
	t.Helper()
	eng, err := engine.New(f.host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// The volume driver's calls as dockerd makes them: create (options checked, errors naming the
// volume), inspect, path, list, mount, unmount, and remove, which asks the engine whether the
// containers a mounted volume's IDs stand for still run.
func TestVolumeDriverLifecycle(t *testing.T) {
	l, _ := test.NewNullLogger()
	d, k := newVolumes(t, "", l)
	docker := newFakeDocker(t)

	if err := d.Create(&volume.CreateRequest{Name: "data", Options: map[string]string{"size": "2G", "fs": "xfs"}}); err != nil {
		t.Fatal(err)
	}
	if k.thins[1] != 2<<30 {
		t.Fatalf("thin devices %v, want id 1 of 2 GiB", k.thins)
	}
	for want, opts := range map[string]map[string]string{
		`dmsize: volume bad: unknown option "color" (known: size, fs)`:                 {"color": "red"},
		"dmsize: volume bad: size 100GiB: above the plugin's maximum 50GiB (MAX_SIZE)": {"size": "100G"},
		"dmsize: volume bad: option fs=btrfs: not one of ext4, xfs":                    {"fs": "btrfs"},
	} {
		if err := d.Create(&volume.CreateRequest{Name: "bad", Options: opts}); err == nil || err.Error() != want {
			t.Errorf("create %v: %v, want %q", opts, err, want)
		}
	}
	if err := d.Create(&volume.CreateRequest{Name: "data", Options: map[string]string{"size": "3G"}}); err == nil || !strings.Contains(err.Error(), "volume data exists (2GiB, xfs, ready)") {
		t.Fatalf("create with other options: %v", err)
	}

	dir := d.v.Load().Path("data")
	g, err := d.Get(&volume.GetRequest{Name: "data"})
	if err != nil {
		t.Fatal(err)
	}
	st := g.Volume.Status
	if g.Volume.Name != "data" || g.Volume.Mountpoint != dir || st["size"] != "2GiB" || st["sizeBytes"] != int64(2<<30) || st["fs"] != "xfs" ||
		st["state"] != "ready" || st["device"] != "dmsize-vol-1" || st["pool"] != vol.PoolName || st["mounts"] != 0 || st["used"] != nil {
		t.Fatalf("get: %+v", g.Volume)
	}
	if _, err := time.Parse(time.RFC3339, g.Volume.CreatedAt); err != nil {
		t.Fatalf("created %q: %v", g.Volume.CreatedAt, err)
	}
	if p, err := d.Path(&volume.PathRequest{Name: "data"}); err != nil || p.Mountpoint != dir {
		t.Fatalf("path: %+v %v", p, err)
	}
	if ls, err := d.List(); err != nil || len(ls.Volumes) != 1 || ls.Volumes[0].Name != "data" || ls.Volumes[0].Mountpoint != dir {
		t.Fatalf("list: %+v %v", ls, err)
	}

	m, err := d.Mount(&volume.MountRequest{Name: "data", ID: "c1"})
	if err != nil || m.Mountpoint != dir || !k.isMounted(dir) {
		t.Fatalf("mount: %+v %v; mounts %v", m, err, k.mounted)
	}
	g, _ = d.Get(&volume.GetRequest{Name: "data"})
	if st := g.Volume.Status; st["mounts"] != 1 || st["usedBytes"] == nil || st["used"] == nil {
		t.Fatalf("a mounted volume's status has no use: %v", st)
	}

	err = d.Remove(&volume.RemoveRequest{Name: "data"})
	if err == nil || err.Error() != "dmsize: volume data is mounted for 1 containers, and asking the engine whether they still exist failed: no client of the engine's API (see the plugin's log)" {
		t.Fatalf("remove without an engine: %v", err)
	}
	d.eng = engineFor(t, docker)
	docker.users["data"] = 1
	if err := d.Remove(&volume.RemoveRequest{Name: "data"}); err == nil || err.Error() != "dmsize: volume data is in use: mounted for 1 containers" {
		t.Fatalf("remove while a container runs with it: %v", err)
	}
	if got := docker.listed(); len(got) != 1 || got[0] != "volume=data all=false" {
		t.Fatalf("the engine was asked %q, want the running containers with volume data", got)
	}
	if err := d.Unmount(&volume.UnmountRequest{Name: "data", ID: "c1"}); err != nil || k.isMounted(dir) {
		t.Fatalf("unmount: %v; mounts %v", err, k.mounted)
	}
	if _, err := d.Mount(&volume.MountRequest{Name: "data", ID: "c2"}); err != nil {
		t.Fatal(err)
	}
	docker.users["data"] = 0 // c2's container went while dmsize was not told
	if err := d.Remove(&volume.RemoveRequest{Name: "data"}); err != nil {
		t.Fatalf("remove of a volume whose containers are gone: %v", err)
	}
	if len(k.thins) != 0 || len(k.mounted) != 0 {
		t.Fatalf("after the removal: thin devices %v, mounts %v", k.thins, k.mounted)
	}
	if ls, err := d.List(); err != nil || len(ls.Volumes) != 0 {
		t.Fatalf("list after the removal: %+v %v", ls, err)
	}

	for name, err := range map[string]error{
		"get":     func() error { _, err := d.Get(&volume.GetRequest{Name: "data"}); return err }(),
		"path":    func() error { _, err := d.Path(&volume.PathRequest{Name: "data"}); return err }(),
		"mount":   func() error { _, err := d.Mount(&volume.MountRequest{Name: "data", ID: "c3"}); return err }(),
		"unmount": d.Unmount(&volume.UnmountRequest{Name: "data", ID: "c3"}),
		"remove":  d.Remove(&volume.RemoveRequest{Name: "data"}),
	} {
		if !errors.Is(err, vol.ErrNotFound) || err.Error() != "dmsize: volume data: no such volume" {
			t.Errorf("%s of a removed volume: %v", name, err)
		}
	}
}

// Until the volumes are open, and when opening them failed, every call says why (dockerd shows
// it to the user); the capabilities need nothing.
func TestVolumeDriverNotOpen(t *testing.T) {
	d := &volumeDriver{}
	calls := func() map[string]error {
		return map[string]error{
			"create":  d.Create(&volume.CreateRequest{Name: "data"}),
			"remove":  d.Remove(&volume.RemoveRequest{Name: "data"}),
			"mount":   func() error { _, err := d.Mount(&volume.MountRequest{Name: "data", ID: "c1"}); return err }(),
			"unmount": d.Unmount(&volume.UnmountRequest{Name: "data", ID: "c1"}),
			"path":    func() error { _, err := d.Path(&volume.PathRequest{Name: "data"}); return err }(),
			"get":     func() error { _, err := d.Get(&volume.GetRequest{Name: "data"}); return err }(),
			"list":    func() error { _, err := d.List(); return err }(),
		}
	}
	for name, err := range calls() {
		if err == nil || err.Error() != "dmsize: the volume driver is starting" {
			t.Errorf("%s while starting: %v", name, err)
		}
	}
	why := "volumes: VOLUME_POOL=docker/volumes: exit status 5"
	d.failed.Store(&why)
	for name, err := range calls() {
		if err == nil || err.Error() != "dmsize: "+why {
			t.Errorf("%s after a failed open: %v", name, err)
		}
	}
	if c := d.Capabilities(); c.Capabilities.Scope != "local" {
		t.Fatalf("capabilities: %+v", c)
	}
}

// openVolumes without device-mapper: the driver says why on every call, and the log says it
// cannot work; it keeps its engine client for later.
func TestOpenVolumesWithoutDM(t *testing.T) {
	l, hook := test.NewNullLogger()
	calls := stubDM(t, 0)
	d := openVolumes(config{DockerHost: newFakeDocker(t).host, StateDir: t.TempDir()}, l)
	if calls() != 1 || d.eng == nil || d.v.Load() != nil || d.poolName() != vol.PoolName {
		t.Fatalf("dm opened %d times; driver %+v", calls(), d)
	}
	if err := d.Create(&volume.CreateRequest{Name: "data"}); err == nil || err.Error() != "dmsize: volumes: "+errNoDM.Error() {
		t.Fatalf("create: %v", err)
	}
	if e := logged(hook, logrus.ErrorLevel, "volumes: the volume driver cannot work"); e == nil || !errors.Is(e.Data[logrus.ErrorKey].(error), errNoDM) {
		t.Fatalf("not logged: %v", hook.AllEntries())
	}
}

// lvmVolumes is a volume driver on the operator's LVM thin pool vg/lv (active, transaction id 3).
func lvmVolumes(t *testing.T, l logrus.FieldLogger) (*volumeDriver, *fakeVolKernel) {
	t.Helper()
	d, k := newVolumes(t, "vg/lv", l)
	run := func(args ...string) (string, error) { return "  twi-aotz--,3\n", nil }
	lp, err := vol.OpenLVMPool(&fakeThinPool{name: "vg-lv-tpool", blocks: 16384, tid: 3}, "vg", "lv", run)
	if err != nil {
		t.Fatal(err)
	}
	d.lvm.Store(lp)
	return d, k
}

// dmsize volume status and dmsize volume grow through the control API: every volume or the
// ones named, with the filesystem's use while mounted; an LVM pool's volumes named as lvs
// names them; a grow's answer and each refusal and failure, naming the volume and the size.
func TestControlVolumes(t *testing.T) {
	l, _ := test.NewNullLogger()
	d, k := lvmVolumes(t, l)
	a := &app{log: l, vols: d}
	for _, name := range []string{"logs", "data"} {
		if err := d.Create(&volume.CreateRequest{Name: name, Options: map[string]string{"size": "2G"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Mount(&volume.MountRequest{Name: "data", ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if g, _ := d.Get(&volume.GetRequest{Name: "data"}); g.Volume.Status["pool"] != "vg/lv" || g.Volume.Status["device"] != "vg/dmsize-vol-2" {
		t.Fatalf("inspect of a volume in an LVM pool: %v", g.Volume.Status)
	}

	var list []controlapi.Volume
	callOK(t, a, "GET", controlapi.PathVolumes, "", &list)
	if len(list) != 2 || list[0].Name != "data" || list[1].Name != "logs" {
		t.Fatalf("volumes: %+v", list)
	}
	data, logs := list[0], list[1]
	if data.Device != "vg/dmsize-vol-2" || data.SizeBytes != 2<<30 || data.FS != "ext4" || data.State != "ready" || data.Mounts != 1 ||
		data.FSSizeBytes <= 0 || data.FSUsedBytes <= 0 || data.FSUsedBytes > data.FSSizeBytes {
		t.Fatalf("data: %+v", data)
	}
	if logs.Device != "vg/dmsize-vol-1" || logs.Mounts != 0 || logs.FSSizeBytes != 0 || logs.FSUsedBytes != 0 {
		t.Fatalf("logs (not mounted): %+v", logs)
	}
	list = nil
	callOK(t, a, "GET", controlapi.PathVolumes+"?name=logs", "", &list)
	if len(list) != 1 || list[0].Name != "logs" {
		t.Fatalf("volumes logs: %+v", list)
	}
	callFails(t, a, "GET", controlapi.PathVolumes+"?name=logs&name=nosuch", "", http.StatusNotFound, controlapi.KindNotFound, "volume nosuch: no such volume of dmsize's")

	grow := controlapi.PathVolumeGrow
	var res controlapi.VolumeGrowResult
	callOK(t, a, "POST", grow, `{"name":"data","size":"4G"}`, &res)
	node := "/dev/mapper/dmsize-vol-2"
	if res.Action != controlapi.ActionGrown || res.BeforeBytes != 2<<30 || res.Volume.SizeBytes != 4<<30 || res.Volume.Name != "data" || res.DurationMs < 0 ||
		k.active[node] != 4<<30 || k.fs[node] != 4<<30 {
		t.Fatalf("grow to 4G: %+v; device %d, filesystem %d", res, k.active[node], k.fs[node])
	}
	res = controlapi.VolumeGrowResult{}
	callOK(t, a, "POST", grow, `{"name":"data","size":"4G"}`, &res)
	if res.Action != controlapi.ActionUnchanged || res.BeforeBytes != 4<<30 || res.Volume.SizeBytes != 4<<30 {
		t.Fatalf("grow to the same size: %+v", res)
	}
	callRefused(t, a, "POST", grow, []refusal{
		{`{"name":"data","size":"1G"}`, http.StatusConflict, controlapi.KindRefused, "volume data is 4GiB; dmsize never shrinks a volume (asked 1GiB)"},
		{`{"name":"data","size":"60G"}`, http.StatusConflict, controlapi.KindRefused, "volume data to 60GiB: above the plugin's maximum 50GiB (MAX_SIZE)"},
		{`{"name":"nosuch","size":"8G"}`, http.StatusNotFound, controlapi.KindNotFound, "volume nosuch: no such volume"},
		{`{"name":"data","size":"8X"}`, http.StatusBadRequest, controlapi.KindInvalid, `volume data: `},
		{`{"size":"8G"}`, http.StatusBadRequest, controlapi.KindInvalid, `want {"name": NAME, "size": SIZE}`},
		{`{"name":`, http.StatusBadRequest, controlapi.KindInvalid, `want {"name": NAME, "size": SIZE}`},
	})
	k.fail["grow"] = errors.New("xfs_growfs: exit status 1")
	callFails(t, a, "POST", grow, `{"name":"data","size":"8G"}`, http.StatusInternalServerError, controlapi.KindFailed,
		"volume data: growing its filesystem (the next start retries): xfs_growfs: exit status 1")
}

// The volume endpoints before the volumes are open: 503 with the reason.
func TestControlVolumesNotOpen(t *testing.T) {
	l, _ := test.NewNullLogger()
	a := &app{log: l, vols: &volumeDriver{}}
	callFails(t, a, "GET", controlapi.PathVolumes, "", http.StatusServiceUnavailable, controlapi.KindUnavailable, "dmsize: the volume driver is starting")
	callFails(t, a, "POST", controlapi.PathVolumeGrow, `{"name":"data","size":"8G"}`, http.StatusServiceUnavailable, controlapi.KindUnavailable, "dmsize: the volume driver is starting")
}

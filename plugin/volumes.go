package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/docker/go-plugins-helpers/volume"
	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/engine"
	"github.com/dmsize/dmsize/internal/crashpoint"
	"github.com/dmsize/dmsize/kernel/lvm"
	"github.com/dmsize/dmsize/size"
	vol "github.com/dmsize/dmsize/volume"
)

// volumeMountRoot is the plugin's propagatedMount (config.json): mounts under it reach the
// host, where dockerd binds them into containers.
const volumeMountRoot = "/mnt/volumes"

// volumeDriver is docker.volumedriver/1.0 over the volume package. Until the volumes are open
// (or when opening them failed) every call says why.
type volumeDriver struct {
	v       atomic.Pointer[vol.Volumes]
	pool    atomic.Pointer[vol.LazyPool] // dmsize's own pool, or
	lvm     atomic.Pointer[vol.LVMPool]  // the operator's LVM thin pool (VOLUME_POOL)
	failed  atomic.Pointer[string]
	eng     *engine.Client
	log     logrus.FieldLogger
	timeout time.Duration
}

var _ volume.Driver = (*volumeDriver)(nil)

// openVolumes assembles the volume pool and repairs the volumes, before the plugin answers
// dockerd: dockerd asks for volumes (Get) before containers start.
func openVolumes(cfg config, log logrus.FieldLogger) *volumeDriver {
	d := &volumeDriver{log: log, timeout: 10 * time.Second}
	eng, err := engine.New(cfg.DockerHost)
	if err != nil {
		// Remove then refuses what it cannot check: a volume a running container uses.
		log.WithError(err).Error("volumes: no client of the engine's API; docker volume rm of a mounted volume is refused until the plugin restarts")
	}
	d.eng = eng
	err = func() error {
		ctl, err := openDM()
		if err != nil {
			return err
		}
		if err := vol.Isolate(dataRootMount, volumeMountRoot, log); err != nil {
			// Volumes still work; only a copy left from before a crash can hold one open, and
			// its removal then says so.
			log.WithError(err).Warn("volumes: the plugin's namespace keeps the host's copies of volume mounts")
		}
		c := vol.Config{Dir: filepath.Join(cfg.StateDir, "volumes"), Pool: cfg.VolumePool, PoolSize: cfg.VolumePoolSize, DefaultSize: cfg.VolumeSize,
			DefaultFS: cfg.VolumeFS, MaxSize: cfg.MaxSize, MountRoot: volumeMountRoot}
		start := time.Now()
		var p vol.Pool
		if cfg.VolumePool != "" {
			vg, lv, err := vol.ParseLVMPool(cfg.VolumePool)
			if err != nil {
				return err
			}
			lp, err := vol.OpenLVMPool(ctl, vg, lv, lvm.Host(cfg.HostRoot))
			if err != nil {
				return err
			}
			d.lvm.Store(lp)
			p = lp
		} else {
			lp, err := vol.NewLazyPool(ctl, c.Dir, c.PoolSize)
			if err != nil {
				return err
			}
			d.pool.Store(lp)
			p = lp
		}
		v, err := vol.Open(c, p, vol.Kernel{}, log, crashpoint.Here)
		if err != nil {
			return err
		}
		d.v.Store(v)
		log.WithFields(logrus.Fields{"volumes": len(v.List()), "pool": d.poolName(), "ms": time.Since(start).Milliseconds()}).Info("volumes: ready")
		return nil
	}()
	if err != nil {
		why := "volumes: " + err.Error()
		d.failed.Store(&why)
		log.WithError(err).Error("volumes: the volume driver cannot work; volume calls say why")
	}
	return d
}

// poolName is the volume pool's name: dmsize's own, or the VG/LV of VOLUME_POOL.
func (d *volumeDriver) poolName() string {
	if lp := d.lvm.Load(); lp != nil {
		return lp.Name()
	}
	return vol.PoolName
}

func (d *volumeDriver) volumes() (*vol.Volumes, error) {
	if v := d.v.Load(); v != nil {
		return v, nil
	}
	if why := d.failed.Load(); why != nil {
		return nil, errors.New("dmsize: " + *why)
	}
	return nil, errors.New("dmsize: the volume driver is starting")
}

func (d *volumeDriver) Create(r *volume.CreateRequest) error {
	v, err := d.volumes()
	if err != nil {
		return err
	}
	if err := v.Create(r.Name, r.Options); err != nil {
		return fmt.Errorf("dmsize: %w", err)
	}
	return nil
}

func (d *volumeDriver) Remove(r *volume.RemoveRequest) error {
	v, err := d.volumes()
	if err != nil {
		return err
	}
	inUse := func(name string) (bool, error) {
		if d.eng == nil {
			return true, errors.New("no client of the engine's API (see the plugin's log)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
		defer cancel()
		n, err := d.eng.RunningWithVolume(ctx, name)
		return n > 0, err
	}
	if err := v.Remove(r.Name, inUse); err != nil {
		return fmt.Errorf("dmsize: %w", err)
	}
	return nil
}

func (d *volumeDriver) Mount(r *volume.MountRequest) (*volume.MountResponse, error) {
	v, err := d.volumes()
	if err != nil {
		return nil, err
	}
	p, err := v.Mount(r.Name, r.ID)
	if err != nil {
		return nil, fmt.Errorf("dmsize: %w", err)
	}
	return &volume.MountResponse{Mountpoint: p}, nil
}

func (d *volumeDriver) Unmount(r *volume.UnmountRequest) error {
	v, err := d.volumes()
	if err != nil {
		return err
	}
	if err := v.Unmount(r.Name, r.ID); err != nil {
		return fmt.Errorf("dmsize: %w", err)
	}
	return nil
}

func (d *volumeDriver) Path(r *volume.PathRequest) (*volume.PathResponse, error) {
	v, err := d.volumes()
	if err != nil {
		return nil, err
	}
	if _, ok := v.Get(r.Name); !ok {
		return nil, fmt.Errorf("dmsize: volume %s: %w", r.Name, vol.ErrNotFound)
	}
	return &volume.PathResponse{Mountpoint: v.Path(r.Name)}, nil
}

func (d *volumeDriver) Get(r *volume.GetRequest) (*volume.GetResponse, error) {
	v, err := d.volumes()
	if err != nil {
		return nil, err
	}
	rec, ok := v.Get(r.Name)
	if !ok {
		return nil, fmt.Errorf("dmsize: volume %s: %w", r.Name, vol.ErrNotFound)
	}
	return &volume.GetResponse{Volume: d.describe(v, rec)}, nil
}

func (d *volumeDriver) List() (*volume.ListResponse, error) {
	v, err := d.volumes()
	if err != nil {
		return nil, err
	}
	var out []*volume.Volume
	for _, rec := range v.List() {
		out = append(out, &volume.Volume{Name: rec.Name, Mountpoint: v.Path(rec.Name)})
	}
	return &volume.ListResponse{Volumes: out}, nil
}

func (d *volumeDriver) Capabilities() *volume.CapabilitiesResponse {
	return &volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "local"}}
}

// describe is a volume as `docker volume inspect` shows it: Status has the size, the
// filesystem, the state, and the use while it is mounted.
func (d *volumeDriver) describe(v *vol.Volumes, r vol.Record) *volume.Volume {
	cv := volumeOf(v, r)
	st := map[string]interface{}{
		"size": size.Format(cv.SizeBytes), "sizeBytes": cv.SizeBytes, "fs": cv.FS, "state": cv.State,
		"device": cv.Device, "pool": d.poolName(), "mounts": cv.Mounts,
	}
	if cv.FSSizeBytes > 0 {
		st["used"], st["usedBytes"] = size.Short(cv.FSUsedBytes), cv.FSUsedBytes
	}
	return &volume.Volume{Name: r.Name, Mountpoint: v.Path(r.Name), CreatedAt: cv.Created, Status: st}
}

// pluginHandler is the plugin socket's one handler: the volume driver's routes, and the
// authorization plugin's two on the same mux (go-plugins-helpers has no way to compose
// handlers). The handshake names both: a POST pattern is more specific than the sdk's own.
func pluginHandler(vd volume.Driver, az authorization.Plugin) *volume.Handler {
	h := volume.NewHandler(vd)
	h.HandleFunc("POST /Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
		fmt.Fprintln(w, `{"Implements": ["authz", "VolumeDriver"]}`)
	})
	for path, call := range map[string]func(authorization.Request) authorization.Response{
		"/AuthZPlugin.AuthZReq": az.AuthZReq,
		"/AuthZPlugin.AuthZRes": az.AuthZRes,
	} {
		h.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			var req authorization.Request
			dec := json.NewDecoder(r.Body)
			dec.UseNumber()
			if err := dec.Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			res := call(req)
			sdk.EncodeResponse(w, res, res.Err != "")
		})
	}
	return h
}

// handleVolumes answers the CLI's `dmsize volume status`.
func (a *app) handleVolumes(w http.ResponseWriter, r *http.Request) {
	v, err := a.vols.volumes()
	if err != nil {
		fail(w, http.StatusServiceUnavailable, controlapi.KindUnavailable, err.Error())
		return
	}
	names := r.URL.Query()["name"]
	var recs []vol.Record
	if len(names) == 0 {
		recs = v.List()
	}
	for _, n := range names {
		rec, ok := v.Get(n)
		if !ok {
			fail(w, http.StatusNotFound, controlapi.KindNotFound, fmt.Sprintf("volume %s: no such volume of dmsize's", n))
			return
		}
		recs = append(recs, rec)
	}
	out := make([]controlapi.Volume, 0, len(recs))
	for _, rec := range recs {
		out = append(out, volumeOf(v, rec))
	}
	reply(w, out)
}

// volumeOf is what the control API and `docker volume inspect` say of a volume: the filesystem's
// size and use only while it is mounted.
func volumeOf(v *vol.Volumes, r vol.Record) controlapi.Volume {
	dev := r.Device()
	if vg, _, ok := strings.Cut(r.Pool, "/"); ok {
		dev = vg + "/" + dev // the LV, as lvs names it
	}
	cv := controlapi.Volume{Name: r.Name, SizeBytes: r.Size, FS: r.FS, State: string(r.State), Device: dev,
		Mounts: len(r.Mounts), Created: r.Created.Format(time.RFC3339)}
	if len(r.Mounts) > 0 {
		cv.FSSizeBytes, cv.FSUsedBytes, _ = v.Usage(r.Name)
	}
	return cv
}

// handleVolumeGrow answers `dmsize volume grow NAME SIZE`.
func (a *app) handleVolumeGrow(w http.ResponseWriter, r *http.Request) {
	v, err := a.vols.volumes()
	if err != nil {
		fail(w, http.StatusServiceUnavailable, controlapi.KindUnavailable, err.Error())
		return
	}
	var req controlapi.VolumeGrowRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.Name == "" {
		fail(w, http.StatusBadRequest, controlapi.KindInvalid, "want {\"name\": NAME, \"size\": SIZE}")
		return
	}
	want, err := size.Parse(req.Size)
	if err != nil {
		fail(w, http.StatusBadRequest, controlapi.KindInvalid, fmt.Sprintf("volume %s: %v", req.Name, err))
		return
	}
	start := time.Now()
	before, err := v.Grow(req.Name, want)
	if err != nil {
		failWith(w, "", err)
		return
	}
	rec, _ := v.Get(req.Name)
	res := controlapi.VolumeGrowResult{Volume: volumeOf(v, rec), Action: controlapi.ActionGrown, BeforeBytes: before, DurationMs: time.Since(start).Milliseconds()}
	if before == rec.Size {
		res.Action = controlapi.ActionUnchanged
	}
	reply(w, res)
}

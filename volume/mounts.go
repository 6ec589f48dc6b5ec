package volume

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// unmountCopies unmounts every mount of r's device dev in the plugin's namespace but keep
// (with unsharedOnly, every unshared one). Isolate detaches, at start, the copies a restarted
// plugin gets through its bind of the data root; this is the fallback when it could not, and
// for any other copy a mount by path still reaches. At start a shared copy is left alone (its
// unmount would reach the host's); a removal unmounts every copy.
func (v *Volumes) unmountCopies(r Record, dev, keep string, unsharedOnly bool) error {
	points, err := v.fs.MountPoints(dev, unsharedOnly)
	if err != nil {
		return err
	}
	for _, p := range points {
		if p == keep {
			continue
		}
		if err := v.fs.Unmount(p); err != nil {
			return fmt.Errorf("unmounting a stray mount of %s at %s: %w", r.Device(), p, err)
		}
		v.log.WithFields(logrus.Fields{"volume": r.Name, "dir": p}).Info("volumes: unmounted a stray copy of the volume's mount")
	}
	return nil
}

func (v *Volumes) mountPoint(name string) string { return filepath.Join(v.cfg.MountRoot, name) }

func (v *Volumes) ensureMounted(r Record, dev string) error {
	dir := v.mountPoint(r.Name)
	if m, err := v.fs.Mounted(dir); err != nil || m {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := v.fs.Mount(dev, dir, r.FS); err != nil {
		return err
	}
	v.log.WithFields(logrus.Fields{"volume": r.Name, "device": dev, "dir": dir}).Info("volumes: mounted")
	return nil
}

// Mount makes sure volume name is mounted, then records mount ID id on it, and returns where.
// The same ID twice counts once (dockerd repeats mounts after its own restart). A mount that
// fails records no ID: dockerd never unmounts a mount that failed, so an ID kept for it would
// keep the volume mounted after the last real unmount.
func (v *Volumes) Mount(name, id string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := v.recs[name]
	if !ok {
		return "", fmt.Errorf("volume %s: %w", name, ErrNotFound)
	}
	if r.State != Ready {
		return "", fmt.Errorf("volume %s is %s", name, r.State)
	}
	if r.Pool != v.cfg.Pool {
		return "", fmt.Errorf("volume %s is in %s, but the volume pool is now %s: set VOLUME_POOL back to reach it", name, poolLabel(r.Pool), poolLabel(v.cfg.Pool))
	}
	dev, err := v.pool.Activate(r)
	if err == nil {
		err = v.ensureMounted(r, dev)
	}
	if err != nil {
		return "", fmt.Errorf("volume %s: mounting: %w", name, err)
	}
	v.step(StepMounted)
	// A SIGKILL here leaves the volume mounted without this ID, and dockerd, which got no
	// answer, sends no unmount for it. With no other ID the next start unmounts the volume
	// (ready: no mount ID, not mounted); with others it stays mounted for them, and the last
	// one's unmount unmounts it. A record that cannot be written is the same: no ID, and the
	// volume unmounted if no other holds it.
	if !slices.Contains(r.Mounts, id) {
		alone := len(r.Mounts) == 0
		r.Mounts = append(r.Mounts, id)
		if err := v.put(r); err != nil {
			if alone {
				v.fs.Unmount(v.mountPoint(name))
			}
			return "", err
		}
	}
	v.step(StepMountRecorded)
	return v.mountPoint(name), nil
}

// Unmount forgets mount ID id; the last one unmounts the volume. An unknown ID is not an error:
// dockerd's stop paths cannot act on one.
func (v *Volumes) Unmount(name, id string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := v.recs[name]
	if !ok {
		return fmt.Errorf("volume %s: %w", name, ErrNotFound)
	}
	if i := slices.Index(r.Mounts, id); i >= 0 {
		r.Mounts = slices.Delete(r.Mounts, i, i+1)
		if err := v.put(r); err != nil {
			return err
		}
	}
	if len(r.Mounts) > 0 {
		return nil
	}
	if err := v.fs.Unmount(v.mountPoint(name)); err != nil {
		v.log.WithError(err).WithField("volume", name).Warn("volumes: unmounting failed; the next start unmounts it")
	}
	return nil
}

// ForgetStaleMounts drops the mount IDs of every volume no container refers to any more, and
// unmounts it: dockerd's unmount of a container that went while the plugin was down (disabled,
// crashed) never arrived. referenced says whether any container, in any state, refers to a
// volume; a container refers to it from its create on, before it mounts it. Only the IDs
// recorded before the question are dropped: a mount that comes meanwhile is kept. It returns
// how many volumes it unmounted.
func (v *Volumes) ForgetStaleMounts(referenced func(name string) (bool, error)) int {
	v.mu.Lock()
	asked := map[string][]string{}
	for name, r := range v.recs {
		if r.State == Ready && len(r.Mounts) > 0 {
			asked[name] = slices.Clone(r.Mounts)
		}
	}
	v.mu.Unlock()
	n := 0
	for name, ids := range asked {
		ref, err := referenced(name)
		if err != nil {
			v.log.WithError(err).WithField("volume", name).Warn("volumes: cannot tell whether the volume's mount IDs are stale; kept")
			continue
		}
		if !ref && v.forgetMounts(name, ids) {
			n++
		}
	}
	return n
}

// forgetMounts drops mount IDs ids of volume name and unmounts it if none is left; it says
// whether it unmounted it.
func (v *Volumes) forgetMounts(name string, ids []string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := v.recs[name]
	if !ok || r.State != Ready {
		return false
	}
	keep := slices.DeleteFunc(slices.Clone(r.Mounts), func(id string) bool { return slices.Contains(ids, id) })
	if len(keep) == len(r.Mounts) {
		return false
	}
	log := v.log.WithFields(logrus.Fields{"volume": name, "mounts": len(r.Mounts) - len(keep)})
	r.Mounts = keep
	// The record first: a crash before the unmount leaves a volume with no mount ID, which
	// the next start unmounts.
	if err := v.put(r); err != nil {
		log.WithError(err).Warn("volumes: recording the volume without its stale mount IDs failed; kept")
		return false
	}
	log.Warn("volumes: forgot mount IDs of containers that are gone (their unmount never reached dmsize)")
	v.step(StepMountsForgotten)
	if len(keep) > 0 {
		return false
	}
	if err := v.fs.Unmount(v.mountPoint(name)); err != nil {
		log.WithError(err).Warn("volumes: unmounting failed; the next start unmounts it")
		return false
	}
	return true
}

// Path is where volume name is mounted (whether or not it is now).
func (v *Volumes) Path(name string) string { return v.mountPoint(name) }

// Usage is the size of volume name's filesystem and the bytes used in it, read where it is
// mounted. ok is false when nothing is mounted there: a statfs of the bare directory would
// answer for the filesystem under it.
func (v *Volumes) Usage(name string) (size, used int64, ok bool) {
	dir := v.mountPoint(name)
	if m, err := v.fs.Mounted(dir); err != nil || !m {
		return 0, 0, false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, false
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Blocks-st.Bfree) * st.Bsize, true
}

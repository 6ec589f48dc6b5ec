package volume

import (
	"fmt"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/kernel/fs"
)

// Isolate keeps copies of the host's volume mounts out of the plugin's mount namespace.
//
// dockerd binds the engine's data root into the plugin (config.json, rbind), and under it lie
// the plugins' propagated-mount directories. A plugin that dockerd starts again after a crash
// gets, in its new namespace, a copy of every volume the host still has mounted there, stacked
// where no unmount by path reaches it (umount gets EINVAL); the copy keeps the volume's device
// open, and `docker volume rm` then refuses (seen in the VM). So: first the data root becomes a
// slave here, so that nothing done under it in this namespace reaches the host, then every
// propagated-mount directory under it is detached here. The plugin's own mounts go through
// mountRoot (its propagatedMount), outside the data root, and stay shared with the host.
//
// It acts only inside the plugin, where mountRoot is a mount point; run on a host, it changes
// nothing.
func Isolate(dataRoot, mountRoot string, log logrus.FieldLogger) error {
	if in, err := fs.IsMountPoint(mountRoot); err != nil || !in {
		if err != nil {
			return err
		}
		log.WithField("dir", mountRoot).Info("volumes: not a mount point, so not in the plugin; the data root's mounts are left as they are")
		return nil
	}
	if err := fs.MakeRSlave(dataRoot); err != nil {
		// Without it a detach would reach the host: detach nothing.
		return fmt.Errorf("isolating the data root: %w", err)
	}
	dirs, err := filepath.Glob(filepath.Join(dataRoot, "plugins", "*", "propagated-mount"))
	if err != nil {
		return err
	}
	for _, d := range dirs {
		n, err := fs.DetachUnshared(d)
		if err != nil {
			return fmt.Errorf("detaching the copy of %s: %w", d, err)
		}
		if n > 0 {
			log.WithFields(logrus.Fields{"dir": d, "mounts": n}).Info("volumes: detached the plugin namespace's copy of a propagated-mount directory")
		}
	}
	return nil
}

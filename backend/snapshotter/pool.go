package snapshotter

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/dmsize/dmsize/kernel/thin"
)

// LoopFiles finds the files behind a loop-backed pool (containerd's documentation makes its
// pool on loop files), for the pool guard to grow: through sysfs, and only where the plugin
// sees them at the path the kernel reports (under a mount of the same path, e.g. containerd's
// root). "" for a pool on block devices, or files the plugin cannot reach.
func (b *Backend) LoopFiles() (data, meta string) {
	p, err := thin.ReadPoolNoFlush(b.Ctl, b.Name)
	if err != nil {
		return "", ""
	}
	return backingFile(p.Table.DataDev), backingFile(p.Table.MetaDev)
}

func backingFile(majMin string) string {
	raw, err := os.ReadFile(filepath.Join("/sys/dev/block", majMin, "loop", "backing_file"))
	if err != nil {
		return ""
	}
	path := strings.TrimSpace(string(raw))
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}

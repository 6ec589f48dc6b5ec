package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dmsize/dmsize/backend/snapshotter"
	"github.com/dmsize/dmsize/internal/atomicfile"
	"github.com/dmsize/dmsize/size"
)

// Where the host keeps what containerd-sync reads, by default: dmsize's state directory under
// Docker's data root (the plugin's STATE_DIR), and the snapshotter's default root_path.
const (
	defaultStateDir = "/var/lib/docker/dmsize"
	defaultCtrdRoot = "/var/lib/containerd/io.containerd.snapshotter.v1.devmapper"
	dropIn          = "/etc/systemd/system/containerd.service.d/dmsize.conf"
)

// containerdSync writes the sizes dmsize gave snapshot devices into containerd's records,
// before containerd starts (snapshotter.Sync).
func (a *app) containerdSync(ctx context.Context, args []string) error {
	c := a.command("containerd-sync", "containerd-sync [--state DIR] [--root DIR] [--wait DURATION] [--install-unit]",
		"Docker 25+ on containerd's devmapper snapshotter: writes the sizes dmsize gave containers'\n"+
			"snapshot devices into containerd's own records, so that containerd re-creates them at\n"+
			"those sizes after a reboot, with or without the plugin. Run on the host while containerd\n"+
			"is stopped: a systemd ExecStartPre of containerd.service does it at every boot\n"+
			"(--install-unit writes that drop-in). While containerd runs it changes nothing and\n"+
			"exits 1: containerd holds its records locked. Sizes are only ever raised.")
	state := c.fs.String("state", defaultStateDir, "dmsize's state directory on the host (the plugin's STATE_DIR under docker-root.source)")
	root := c.fs.String("root", defaultCtrdRoot, "the devmapper snapshotter's root_path")
	wait := c.fs.Duration("wait", 5*time.Second, "how long to wait for containerd's lock")
	install := c.fs.Bool("install-unit", false, "write "+dropIn+" (then: systemctl daemon-reload)")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	if *install {
		return a.installDropIn(*state, *root)
	}
	pool, out, err := snapshotter.Sync(*root, *state, *wait)
	if err != nil {
		return fmt.Errorf("containerd-sync: %w", err)
	}
	raised := 0
	for _, s := range out {
		if s.Skipped != "" {
			fmt.Fprintf(a.stdout, "%-32s %-8s left: %s\n", s.Device, size.Format(s.From), s.Skipped)
			continue
		}
		raised++
		fmt.Fprintf(a.stdout, "%-32s %-8s -> %s\n", s.Device, size.Format(s.From), size.Format(s.To))
	}
	fmt.Fprintf(a.stdout, "pool %s: %d of %d sized devices raised in containerd's records\n", pool, raised, len(out))
	return nil
}

// installDropIn writes the systemd drop-in that runs containerd-sync before containerd. The
// leading "-" lets containerd start whatever containerd-sync says.
func (a *app) installDropIn(state, root string) error {
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return fmt.Errorf("containerd-sync: finding this dmsize binary: %w", err)
	}
	unit := fmt.Sprintf("# Written by dmsize containerd-sync --install-unit: containerd re-creates snapshot devices\n"+
		"# at the sizes dmsize gave them (dmsize containerd-sync -h).\n[Service]\n"+
		"ExecStartPre=-%s containerd-sync --state %s --root %s\n", self, state, root)
	if err := os.MkdirAll(filepath.Dir(dropIn), 0o755); err != nil {
		return fmt.Errorf("containerd-sync: %w", err)
	}
	if err := atomicfile.Write(dropIn, []byte(unit), 0o644); err != nil {
		return fmt.Errorf("containerd-sync: %w", err)
	}
	fmt.Fprintf(a.stdout, "wrote %s; run: systemctl daemon-reload\n", dropIn)
	return nil
}

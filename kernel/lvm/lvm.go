// Package lvm is what dmsize needs of the host's LVM: running its lvm binary, and LVM's
// device-mapper names. dmsize changes LVM's thin pools and LVs only through lvm itself: lvm2
// refuses a pool whose transaction id it did not set.
package lvm

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
)

// Runner runs the host's lvm with args and returns its standard output.
type Runner func(args ...string) (string, error)

// Host runs the host's own lvm binary inside the host's root (root is the host's / as the
// plugin sees it: /proc/1/root with the host's pid namespace, or "/" on the host itself). The
// host's lvm.conf, locks and udev rules then apply exactly as for an administrator's command;
// the plugin needs CAP_SYS_CHROOT, CAP_SYS_PTRACE (to enter /proc/1/root) and the host's IPC
// namespace (libdevmapper's udev cookies are semaphores).
func Host(root string) Runner {
	return func(args ...string) (string, error) {
		// An absolute path: exec looks a bare name up in the plugin's rootfs, before the chroot.
		// No timeout: lvm killed while it holds a pool suspended would leave every user's I/O
		// hanging; lvm has its own timeouts.
		cmd := exec.Command("/sbin/lvm", args...)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LVM_SUPPRESS_FD_WARNINGS=1", "LC_ALL=C"}
		if root != "/" {
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out), fmt.Errorf("lvm %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return string(out), nil
	}
}

// Split splits a device-mapper name made by LVM ("vg-lv", with dashes inside either name
// doubled) into the volume group and the logical volume. A thin pool's "-tpool" layer is the
// pool LV itself.
func Split(dmName string) (vg, lv string, ok bool) {
	name := strings.TrimSuffix(dmName, "-tpool")
	for i := 0; i < len(name); i++ {
		if name[i] != '-' {
			continue
		}
		if i+1 < len(name) && name[i+1] == '-' {
			i++ // an escaped dash
			continue
		}
		vg = strings.ReplaceAll(name[:i], "--", "-")
		lv = strings.ReplaceAll(name[i+1:], "--", "-")
		return vg, lv, vg != "" && lv != ""
	}
	return "", "", false
}

// DMName is the device-mapper name LVM gives LV lv of volume group vg: Split's inverse.
func DMName(vg, lv string) string {
	return strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lv, "-", "--")
}

// Unchanged is lvextend refusing a size the LV already has (a repeat after a crash).
func Unchanged(err error) bool {
	s := err.Error()
	return strings.Contains(s, "matches existing size") || strings.Contains(s, "No size change") || strings.Contains(s, "not larger than existing size")
}

package guard

import (
	"fmt"
	"github.com/dmsize/dmsize/driver/size"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dmsize/dmsize/driver/thin"
)

// Runner runs the host's lvm with args and returns its standard output.
type Runner func(args ...string) (string, error)

// HostLVM runs the host's own lvm binary inside the host's root (root is the host's / as the
// plugin sees it: /proc/1/root with the host's pid namespace, or "/" on the host itself). The
// host's lvm.conf, locks and udev rules then apply exactly as for an administrator's lvextend;
// the plugin needs CAP_SYS_CHROOT, CAP_SYS_PTRACE (to enter /proc/1/root) and the host's IPC
// namespace (libdevmapper's udev cookies are semaphores).
func HostLVM(root string) Runner {
	return func(args ...string) (string, error) {
		// An absolute path: exec looks a bare name up in the plugin's rootfs, before the chroot.
		// No timeout: lvm killed while it holds the pool suspended would leave every
		// container's I/O hanging; lvm has its own timeouts.
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

// LVMNames splits a device-mapper name made by LVM ("vg-lv", with dashes inside either name
// doubled) into the volume group and the logical volume. A thin pool's "-tpool" layer is the
// pool LV itself.
func LVMNames(dmName string) (vg, lv string, ok bool) {
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

// lvmExtender extends an LVM thin pool LV (direct-lvm) with the host's lvextend, which reloads
// and resumes the pool itself.
type lvmExtender struct {
	run    Runner
	vg, lv string
}

func (l *lvmExtender) Kind() string { return "direct-lvm" }

// Room is the volume group's free space.
func (l *lvmExtender) Room() (int64, string, error) {
	out, err := l.run("vgs", "--noheadings", "--nosuffix", "--units", "b", "-o", "vg_free", l.vg)
	if err != nil {
		return 0, "", err
	}
	free, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("guard: vgs %s: unexpected output %q", l.vg, out)
	}
	return free, fmt.Sprintf("volume group %s has %s free (vgextend %s with another disk)", l.vg, size.Decimal(free), l.vg), nil
}

// Extend asks for absolute sizes, so a repeat after a crash asks for what is already there
// (lvextend then says so, and that is not an error here).
func (l *lvmExtender) Extend(p thin.Pool, data, meta int64) (time.Duration, error) {
	_, dataNow := p.DataBytes()
	_, metaNow := p.MetaBytes()
	lv := l.vg + "/" + l.lv
	start := time.Now()
	if data > dataNow {
		if _, err := l.run("lvextend", "-L", strconv.FormatInt(data, 10)+"b", lv); err != nil && !unchanged(err) {
			return time.Since(start), err
		}
	}
	if meta > metaNow {
		if _, err := l.run("lvextend", "--poolmetadatasize", strconv.FormatInt(meta, 10)+"b", lv); err != nil && !unchanged(err) {
			return time.Since(start), err
		}
	}
	return 0, nil // lvextend suspends the pool for a time it does not report
}

// unchanged is lvextend refusing a size the LV already has.
func unchanged(err error) bool {
	s := err.Error()
	return strings.Contains(s, "matches existing size") || strings.Contains(s, "No size change") || strings.Contains(s, "not larger than existing size")
}

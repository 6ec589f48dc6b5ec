package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DeviceUsers says who keeps device-mapper device name in place, for a failure message: its
// dmsetup info, and every process that has it mounted (in any mount namespace) or open.
func DeviceUsers(name string) string {
	info, err := Run("dmsetup", "info", name)
	if err != nil {
		return info
	}
	mm, _ := Run("dmsetup", "info", "-c", "--noheadings", "-o", "major,minor", "--separator", ":", name)
	var b strings.Builder
	b.WriteString(info)
	procs, _ := filepath.Glob("/proc/[0-9]*")
	seen := map[string]bool{} // mount namespaces already listed: one process of each
	for _, p := range procs {
		comm, _ := os.ReadFile(p + "/comm")
		ns, _ := os.Readlink(p + "/ns/mnt")
		who := fmt.Sprintf("%s (%s, %s)", filepath.Base(p), strings.TrimSpace(string(comm)), ns)
		if mi, err := os.ReadFile(p + "/mountinfo"); err == nil && !seen[ns] {
			seen[ns] = true
			for _, l := range strings.Split(string(mi), "\n") {
				// The whole line: mount and parent IDs, and the propagation (shared:N, master:N).
				if f := strings.Fields(l); len(f) > 4 && f[2] == mm {
					fmt.Fprintf(&b, "\nmounted by %s: %s", who, l)
				}
			}
		}
		fds, _ := filepath.Glob(p + "/fd/*")
		for _, fd := range fds {
			if l, err := os.Readlink(fd); err == nil && (l == "/dev/mapper/"+name || strings.HasPrefix(l, "/dev/dm-") && devNumber(l) == mm) {
				fmt.Fprintf(&b, "\nopen in %s as %s", who, l)
			}
		}
	}
	return b.String()
}

// devNumber is a device node's major:minor, "" if it is not one.
func devNumber(path string) string {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
}

// DebugDevmapper is for a failure message about the graph driver: it turns dockerd's debug log
// on (daemon.json, SIGHUP; debug is reloadable), lets the driver's deferred-deletion worker run
// once more (it ticks every 30 s), and returns the driver's debug lines since, and the
// goroutines of a stack dump (SIGUSR1) that are in the driver.
func (e *Engine) DebugDevmapper() string {
	var b strings.Builder
	pidText, err := os.ReadFile("/run/dmsize-engine/dockerd.pid")
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil || pid == 0 {
		return fmt.Sprintf("dockerd's pid: %v", err)
	}
	cfg := map[string]any{}
	if raw, err := os.ReadFile("/etc/docker/daemon.json"); err == nil {
		json.Unmarshal(raw, &cfg)
	}
	cfg["debug"] = true
	raw, _ := json.Marshal(cfg)
	if err := os.WriteFile("/etc/docker/daemon.json", raw, 0o644); err != nil {
		return err.Error()
	}
	mark := len(e.DaemonLog())
	syscall.Kill(pid, syscall.SIGHUP)
	time.Sleep(35 * time.Second)
	syscall.Kill(pid, syscall.SIGUSR1)
	time.Sleep(3 * time.Second)
	log := e.DaemonLog()[mark:]
	b.WriteString("--- dockerd's devmapper debug lines over 35 s:\n")
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "devmapper") && n < 60 {
			b.WriteString(l + "\n")
			n++
		}
	}
	if m := regexp.MustCompile(`goroutine stacks written to ([^"\s]+)`).FindStringSubmatch(LastLines(log, 200)); m == nil {
		b.WriteString("--- no goroutine dump path in dockerd's log")
	} else if dump, err := os.ReadFile(m[1]); err != nil {
		b.WriteString("--- goroutine dump: " + err.Error())
	} else {
		b.WriteString("--- dockerd goroutines in the devmapper driver:\n")
		for _, g := range strings.Split(string(dump), "\n\n") {
			if strings.Contains(g, "devmapper") {
				b.WriteString(g + "\n\n")
			}
		}
	}
	return b.String()
}

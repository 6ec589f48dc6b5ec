package fs

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountPoints returns the mount points in a mountinfo text whose filesystem is on device
// major:minor. Matching the device number, not the source path, finds a device mounted under
// any of its names (/dev/dm-3, /dev/mapper/..., a node made elsewhere).
func mountPoints(mountinfo []byte, major, minor uint32) []string {
	return mountPointsOf(mountinfo, major, minor, false)
}

// unescapeOctal undoes the \ooo escapes (space, tab, newline, backslash) of mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// openMounted opens the root of a mount of device rdev visible in this mount namespace, or
// returns nil if there is none. A mount point can be hidden under a later mount, so each
// candidate is checked to really be on rdev: a resize ioctl on the wrong fd would resize
// another filesystem.
func openMounted(rdev uint64) (*os.File, error) {
	// This thread's view: /proc/self shows the main thread's, which need not be ours.
	info, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, err
	}
	for _, p := range mountPoints(info, unix.Major(rdev), unix.Minor(rdev)) {
		if f, err := openOn(p, rdev); err == nil {
			return f, nil
		}
	}
	return nil, nil
}

// openOn opens directory dir if it lies on the filesystem of device rdev.
func openOn(dir string, rdev uint64) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "fstat", Path: dir, Err: err}
	}
	if on := uint64(st.Dev); on != rdev { // Dev is narrower on some architectures
		f.Close()
		return nil, fmt.Errorf("%s is on device %d:%d, not %d:%d", dir,
			unix.Major(on), unix.Minor(on), unix.Major(rdev), unix.Minor(rdev))
	}
	return f, nil
}

// Package release is the kernel's release as dmsize weighs it: the floor it serves, and the
// running kernel's version.
package release

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Version is a mainline kernel release, major.minor.
type Version struct{ Major, Minor int }

// Floor is the oldest kernel dmsize serves: DM_DEV_ARM_POLL's dm ioctl 4.37 is its marker, and
// RHEL 8 (4.18), Ubuntu 20.04 (5.4) and Debian bullseye (5.10) are above it. The README's
// Kernels section gives what each interface needs.
var Floor = Mainline(4, 14)

// Mainline is the version major.minor.
func Mainline(major, minor int) Version { return Version{Major: major, Minor: minor} }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Before says whether v is older than o.
func (v Version) Before(o Version) bool {
	return v.Major < o.Major || v.Major == o.Major && v.Minor < o.Minor
}

// Parse reads the major.minor of a release string ("4.18.0-513.el8.x86_64").
func Parse(release string) (Version, error) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("kernel release %q: want major.minor", release)
	}
	major, err := strconv.Atoi(parts[0])
	if err != nil {
		return Version{}, fmt.Errorf("kernel release %q: %w", release, err)
	}
	minor := parts[1]
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i]
	}
	m, err := strconv.Atoi(minor)
	if err != nil {
		return Version{}, fmt.Errorf("kernel release %q: %w", release, err)
	}
	return Mainline(major, m), nil
}

// Running is the running kernel's release string (uname -r).
func Running() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

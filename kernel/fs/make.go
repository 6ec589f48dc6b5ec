package fs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mkfs is each filesystem's maker and its options: no discard of a thin device that is all
// unmapped anyway (a discard of a large thin device takes long and maps nothing), and lazy
// ext4 inode tables (the kernel zeroes them in the background).
//
// The features are named, not left to the defaults of whichever mkfs the plugin was built
// with: every kernel from release.Floor up must mount what dmsize makes (a newer mkfs.xfs turns on
// bigtime and inobtcount, which no kernel before 5.10 mounts; a newer mke2fs orphan_file).
// TestMadeFilesystemsMountOnTheFloor reads the feature bits back. An older mkfs.xfs refuses
// the options of features it does not know (and never turns them on): xfsOptions drops them.
var mkfs = map[Type][]string{
	Ext4: {"mke2fs", "-q", "-F", "-t", "ext4", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
		"-O", "none,has_journal,ext_attr,resize_inode,dir_index,filetype,extent,64bit,flex_bg,sparse_super,large_file,huge_file,dir_nlink,extra_isize,metadata_csum"},
	XFS: {"mkfs.xfs", "-q", "-f", "-K", "-m", "crc=1,finobt=1,reflink=1,rmapbt=0,bigtime=0,inobtcount=0",
		"-i", "sparse=1,nrext64=0", "-n", "ftype=1"},
}

// xfsNewOptions are mkfs.xfs options of features newer than some xfsprogs dmsize may be built
// with, and the first xfsprogs that knows each (bullseye's 5.10.0 has bigtime and inobtcount,
// not nrext64).
var xfsNewOptions = map[string][2]int{
	"bigtime=0":    {5, 10},
	"inobtcount=0": {5, 10},
	"nrext64=0":    {5, 19},
}

// xfsVersionRE reads `mkfs.xfs -V`: "mkfs.xfs version 5.10.0".
var xfsVersionRE = regexp.MustCompile(`version (\d+)\.(\d+)`)

// xfsOptions is mkfs's XFS command line for the mkfs.xfs whose -V printed version: without the
// options of features that mkfs.xfs predates. An unreadable version keeps every option (mkfs
// then says what it refuses).
func xfsOptions(version string) []string {
	m := xfsVersionRE.FindStringSubmatch(version)
	if m == nil {
		return mkfs[XFS]
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	argv := slices.Clone(mkfs[XFS])
	for i, a := range argv {
		opts := strings.Split(a, ",")
		kept := opts[:0]
		for _, o := range opts {
			if since, ok := xfsNewOptions[o]; ok && (major < since[0] || major == since[0] && minor < since[1]) {
				continue
			}
			kept = append(kept, o)
		}
		argv[i] = strings.Join(kept, ",")
	}
	return argv
}

// Make makes a filesystem of type t on dev, with the mke2fs or mkfs.xfs the plugin's rootfs
// carries (rootfs/assemble.sh copies the build host's, with their libraries).
func Make(dev string, t Type) error {
	argv, ok := mkfs[t]
	if !ok {
		return fmt.Errorf("make filesystem on %s: unknown type %q", dev, t)
	}
	if t == XFS {
		out, _ := exec.Command(argv[0], "-V").CombinedOutput()
		argv = xfsOptions(string(out))
	}
	cmd := exec.Command(argv[0], append(argv[1:], dev)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s on %s: %w: %s", argv[0], dev, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Mount mounts the filesystem of type t on dev at dir.
func Mount(dev, dir string, t Type) error {
	if err := unix.Mount(dev, dir, string(t), unix.MS_NOATIME, ""); err != nil {
		return &os.PathError{Op: "mount " + dev, Path: dir, Err: err}
	}
	return nil
}

// Unmount unmounts dir; a dir that is no mount point, or absent, is not an error.
func Unmount(dir string) error {
	err := unix.Unmount(dir, 0)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return &os.PathError{Op: "umount", Path: dir, Err: err}
}

// IsMountPoint says whether dir is a mount point in this thread's mount namespace.
func IsMountPoint(dir string) (bool, error) {
	info, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return false, err
	}
	want := filepath.Clean(dir)
	for _, l := range strings.Split(string(info), "\n") {
		if f := strings.Fields(l); len(f) >= 5 && unescapeOctal(f[4]) == want {
			return true, nil
		}
	}
	return false, nil
}

// MountPointsOf lists where block device dev is mounted in this thread's mount namespace;
// with unsharedOnly, only by mounts in no peer group (unmounting one of those changes no
// other namespace's mounts).
func MountPointsOf(dev string, unsharedOnly bool) ([]string, error) {
	rdev, err := blockDevice(dev)
	if err != nil {
		return nil, err
	}
	info, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, err
	}
	return mountPointsOf(info, unix.Major(rdev), unix.Minor(rdev), unsharedOnly), nil
}

// mountPointsOf: the mount points in a mountinfo text of device major:minor; with
// unsharedOnly, of the mounts without a shared:N tag.
func mountPointsOf(info []byte, major, minor uint32, unsharedOnly bool) []string {
	want := fmt.Sprintf("%d:%d", major, minor)
	var points []string
	for _, l := range strings.Split(string(info), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
		f := strings.Fields(l)
		if len(f) < 7 || f[2] != want {
			continue
		}
		if !inPeerGroup(f) || !unsharedOnly {
			points = append(points, unescapeOctal(f[4]))
		}
	}
	return points
}

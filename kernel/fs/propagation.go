package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// MakeRSlave makes the mount at dir and every mount under it slaves in this mount namespace:
// they still receive the mounts and unmounts of the namespaces they came from, and nothing
// mounted or unmounted under dir here reaches those.
func MakeRSlave(dir string) error {
	if err := unix.Mount("", dir, "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return &os.PathError{Op: "make rslave", Path: dir, Err: err}
	}
	return nil
}

// DetachUnshared lazily unmounts, in this thread's mount namespace, every mount stacked at dir
// (and with each, the mounts under it), and returns how many. It refuses if one of them is in
// a peer group: its unmount would reach the peers' namespaces.
func DetachUnshared(dir string) (int, error) {
	dir = filepath.Clean(dir)
	// A bound: each round removes the top mount, so a stack deeper than this is not ours.
	for n := 0; n < 16; n++ {
		info, err := os.ReadFile("/proc/thread-self/mountinfo")
		if err != nil {
			return n, err
		}
		count, shared := mountsAt(info, dir)
		if count == 0 {
			return n, nil
		}
		if shared {
			return n, fmt.Errorf("%s is a shared mount here: detaching it would unmount it elsewhere too", dir)
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			return n, &os.PathError{Op: "umount (detach)", Path: dir, Err: err}
		}
	}
	return 16, fmt.Errorf("%s: more than 16 mounts stacked there", dir)
}

// mountsAt counts the mounts at dir in a mountinfo text, and says whether any is in a peer
// group (a shared:N tag).
func mountsAt(info []byte, dir string) (n int, shared bool) {
	for _, l := range strings.Split(string(info), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
		f := strings.Fields(l)
		if len(f) < 7 || unescapeOctal(f[4]) != dir {
			continue
		}
		n++
		shared = shared || inPeerGroup(f)
	}
	return n, shared
}

// inPeerGroup says whether a mountinfo line, split into fields, has a shared:N tag among its
// optional fields (those between the options and the "-").
func inPeerGroup(f []string) bool {
	for _, o := range f[6:] {
		if o == "-" {
			return false
		}
		if strings.HasPrefix(o, "shared:") {
			return true
		}
	}
	return false
}

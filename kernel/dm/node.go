//go:build linux

package dm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// mapperDir is where device nodes live; tests point it elsewhere.
var mapperDir = "/dev/mapper"

// Node is the path of device name's node: /dev/mapper/NAME.
func Node(name string) string { return filepath.Join(mapperDir, name) }

// nodePoll is how often EnsureNode looks for udev's work while it waits.
const nodePoll = 10 * time.Millisecond

// nodeRemoveWait is how long Remove leaves a plain node to whoever else might remove it.
const nodeRemoveWait = 100 * time.Millisecond

var tmpSeq atomic.Uint64

// EnsureNode makes sure /dev/mapper/NAME opens the block device dev, as libdevmapper's
// fallback does when udev is slow or absent. It first gives udev up to wait to provide it
// (udev makes a symlink to ../dm-N, which is fine); after that it makes a 0600 block node
// itself, atomically (mknod under a temporary name, then rename), replacing a node or symlink
// of the wrong device.
func EnsureNode(name string, dev Dev, wait time.Duration) error {
	if err := checkName(name); err != nil {
		return err
	}
	path := Node(name)
	deadline := time.Now().Add(wait)
	for {
		ok, err := nodeIs(path, dev)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if !time.Now().Before(deadline) {
			break
		}
		time.Sleep(min(nodePoll, time.Until(deadline)))
	}
	return makeNode(path, dev)
}

// nodeIs tells whether path, followed through symlinks, is the block device dev. A missing or
// wrong node is no error: EnsureNode replaces it.
func nodeIs(path string, dev Dev) (bool, error) {
	var st unix.Stat_t
	err := unix.Stat(path, &st)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("node %s: %w", path, err)
	}
	return st.Mode&unix.S_IFMT == unix.S_IFBLK && decodeDev(st.Rdev) == dev, nil
}

func makeNode(path string, dev Dev) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("node %s: %w", path, err)
	}
	tmp := filepath.Join(dir, ".dmsize-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatUint(tmpSeq.Add(1), 10))
	if err := unix.Mknod(tmp, unix.S_IFBLK|0o600, int(unix.Mkdev(dev.Major, dev.Minor))); err != nil {
		return fmt.Errorf("node %s: mknod: %w", path, err)
	}
	// mknod honours the umask; the node must be exactly 0600.
	if err := unix.Chmod(tmp, 0o600); err != nil {
		unix.Unlink(tmp)
		return fmt.Errorf("node %s: %w", path, err)
	}
	if err := unix.Rename(tmp, path); err != nil {
		unix.Unlink(tmp)
		return fmt.Errorf("node %s: rename: %w", path, err)
	}
	return nil
}

// removeNode removes /dev/mapper/NAME after its device is gone, if it is a plain block node of
// dev: such a node is ours (or libdevmapper's fallback's) and nobody else will remove it.
// Symlinks are udev's, and a node of another device is not ours to touch.
func removeNode(name string, dev Dev) error {
	path := Node(name)
	deadline := time.Now().Add(nodeRemoveWait)
	for {
		var st unix.Stat_t
		err := unix.Lstat(path, &st)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("node %s: %w", path, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFBLK || decodeDev(st.Rdev) != dev {
			return nil
		}
		if !time.Now().Before(deadline) {
			break
		}
		time.Sleep(nodePoll)
	}
	if err := unix.Unlink(path); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("node %s: %w", path, err)
	}
	return nil
}

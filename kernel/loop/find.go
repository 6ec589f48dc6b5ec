// Package loop finds the loop devices behind a file and makes them see the file grow.
package loop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// sysBlock is where attached loop devices are listed; a var so tests could point it elsewhere.
var sysBlock = "/sys/block"

// FindByFile returns every attached loop device (e.g. "/dev/loop0") whose backing file is path,
// in device-number order; none is not an error.
//
// It matches by device and inode rather than by name: the plugin sees the file at another path
// than the one the host attached (and that /sys/.../backing_file shows).
func FindByFile(path string) ([]string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("find loop devices of %s: %w", path, &os.PathError{Op: "stat", Path: path, Err: err})
	}
	names, err := attached()
	if err != nil {
		return nil, fmt.Errorf("find loop devices of %s: %w", path, err)
	}
	var devs []string
	for _, name := range names {
		dev := filepath.Join(devDir, name)
		info, err := status(dev)
		if errors.Is(err, unix.ENXIO) {
			continue // detached since we listed it
		}
		if err != nil {
			return nil, fmt.Errorf("find loop devices of %s: %w", path, err)
		}
		if info.Device == uint64(st.Dev) && info.Inode == st.Ino {
			devs = append(devs, dev)
		}
	}
	return devs, nil
}

// attached lists the names ("loop0", ...) of the loop devices that have a backing file: only
// those have a loop/ directory in sysfs.
func attached() ([]string, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "loop")
		if !ok {
			continue
		}
		if _, err := strconv.Atoi(n); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(sysBlock, e.Name(), "loop")); err != nil {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Slice(names, func(i, j int) bool { return number(names[i]) < number(names[j]) })
	return names, nil
}

func number(name string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(name, "loop"))
	return n
}

// status returns the device's LOOP_GET_STATUS64; an unattached device fails with ENXIO.
func status(dev string) (*unix.LoopInfo64, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := ioctls.getStatus(int(f.Fd()))
	if err != nil {
		return nil, &os.PathError{Op: "LOOP_GET_STATUS64", Path: dev, Err: err}
	}
	return info, nil
}

// Package devmeta reads and rewrites the per-device metadata files of Docker's devicemapper
// graph driver (<home>/metadata/<hash>), where the daemon records each thin device's size.
//
// The daemon reads these files only when it starts; a rewritten size is what the next daemon
// activates the device with. Only "size" is ever changed: every other field, known or not, is
// written back byte-for-byte equal in meaning. deviceset-metadata and transaction-metadata are
// never touched, and neither is the pool's transaction id.
package devmeta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/internal/atomicfile"
)

// Device is what dmsize needs from a metadata file.
type Device struct {
	DeviceID    int   `json:"device_id"`
	Size        int64 `json:"size"`
	Initialized bool  `json:"initialized"`
	Deleted     bool  `json:"deleted"`
}

// hashRE is what the daemon names the files after: a layer's mount id (64 hex digits),
// optionally with -init, or "base".
var hashRE = regexp.MustCompile(`^([0-9a-f]{64}(-init)?|base)$`)

// Path returns the metadata file of device hash under the driver home (e.g.
// /var/lib/docker/devicemapper). Hashes that are not the daemon's own are refused, so that
// nothing outside the directory, and none of the pool-wide files, can be named.
func Path(home, hash string) (string, error) {
	if !hashRE.MatchString(hash) {
		return "", fmt.Errorf("devmeta: %q is not a device hash of the devicemapper driver", hash)
	}
	return filepath.Join(home, "metadata", hash), nil
}

// HashFromDeviceName returns the device hash from a thin device name as `docker inspect` shows
// it in GraphDriver.Data.DeviceName ("docker-254:0-131101-<hash>").
func HashFromDeviceName(name string) (string, error) {
	i := strings.LastIndex(name, "-")
	for i > 0 && !hashRE.MatchString(name[i+1:]) {
		i = strings.LastIndex(name[:i], "-")
	}
	if i <= 0 {
		return "", fmt.Errorf("devmeta: %q is not a devicemapper thin device name", name)
	}
	return name[i+1:], nil
}

// Read reads a metadata file.
func Read(path string) (Device, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Device{}, fmt.Errorf("devmeta: %w", err)
	}
	var d Device
	if err := json.Unmarshal(b, &d); err != nil {
		return Device{}, fmt.Errorf("devmeta: %s: %w", path, err)
	}
	return d, nil
}

// attempts bounds the read-modify-write rounds SetSize may lose to the engine's own rewrites.
const attempts = 3

// beforeExchange, when set (tests), runs between SetSize's read and its swap: the window in
// which the engine may rewrite or delete the file.
var beforeExchange func()

// SetSize rewrites the file's size to newSize, keeping every other field. It refuses to lower
// the size and a device marked deleted, and does nothing when the size is already newSize, so
// it is safe to repeat.
//
// The new content is written to a temp file and swapped in with renameat2(RENAME_EXCHANGE),
// never renamed over the file: a file the engine deleted meanwhile stays deleted (an error
// wrapping os.ErrNotExist), and one it rewrote meanwhile gets its content back and is read
// again, up to attempts times.
func SetSize(path string, newSize int64) (old int64, err error) {
	for range attempts {
		var done bool
		if old, done, err = setSize(path, newSize); err != nil || done {
			return old, err
		}
	}
	return old, fmt.Errorf("devmeta: %s changed during each of %d attempts to set its size; giving up", path, attempts)
}

// setSize is one round of SetSize; done is false when the engine rewrote the file meanwhile.
func setSize(path string, newSize int64) (old int64, done bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false, fmt.Errorf("devmeta: %w", err)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return 0, false, fmt.Errorf("devmeta: %s: %w", path, err)
	}
	var deleted bool
	if raw, ok := fields["deleted"]; ok {
		if err := json.Unmarshal(raw, &deleted); err != nil {
			return 0, false, fmt.Errorf("devmeta: %s: deleted: %w", path, err)
		}
	}
	if deleted {
		return 0, false, fmt.Errorf("devmeta: %s: the device is marked deleted; refusing to change its size", path)
	}
	raw, ok := fields["size"]
	if !ok {
		return 0, false, fmt.Errorf("devmeta: %s has no size", path)
	}
	if err := json.Unmarshal(raw, &old); err != nil {
		return 0, false, fmt.Errorf("devmeta: %s: size: %w", path, err)
	}
	if newSize < old {
		return old, false, fmt.Errorf("devmeta: refusing to lower the size in %s from %d to %d bytes", path, old, newSize)
	}
	if newSize == old {
		return old, true, nil
	}
	fields["size"] = json.RawMessage(fmt.Sprint(newSize))
	out, err := json.Marshal(fields)
	if err != nil {
		return old, false, err
	}
	tmp, err := atomicfile.WriteTemp(path, out, 0o600)
	if err != nil {
		return old, false, err
	}
	defer os.Remove(tmp)
	if beforeExchange != nil {
		beforeExchange()
	}
	if err := exchange(tmp, path); err != nil {
		return old, false, err
	}
	// tmp now holds what path held at the swap: if that is not what we read, the engine
	// rewrote it after our read, and its content goes back.
	was, err := os.ReadFile(tmp)
	if err != nil || !bytes.Equal(was, b) {
		if xerr := exchange(tmp, path); xerr != nil {
			return old, false, xerr
		}
		if err != nil {
			return old, false, fmt.Errorf("devmeta: %w", err)
		}
		return old, false, nil
	}
	return old, true, atomicfile.SyncDir(filepath.Dir(path))
}

// exchange swaps tmp and path atomically; ENOENT means the engine deleted path.
func exchange(tmp, path string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("devmeta: %s was deleted while its size was being set: %w", path, os.ErrNotExist)
	default:
		return fmt.Errorf("devmeta: swapping %s and %s (renameat2 RENAME_EXCHANGE): %w", tmp, path, err)
	}
}

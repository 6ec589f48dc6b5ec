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
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

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

// SetSize rewrites the file's size to newSize, atomically (temp file in the same directory,
// fsync, rename, fsync of the directory), keeping every other field. It refuses to lower the
// size, and does nothing when the size is already newSize, so it is safe to repeat.
func SetSize(path string, newSize int64) (old int64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("devmeta: %w", err)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return 0, fmt.Errorf("devmeta: %s: %w", path, err)
	}
	raw, ok := fields["size"]
	if !ok {
		return 0, fmt.Errorf("devmeta: %s has no size", path)
	}
	if err := json.Unmarshal(raw, &old); err != nil {
		return 0, fmt.Errorf("devmeta: %s: size: %w", path, err)
	}
	if newSize < old {
		return old, fmt.Errorf("devmeta: refusing to lower the size in %s from %d to %d bytes", path, old, newSize)
	}
	if newSize == old {
		return old, nil
	}
	fields["size"] = json.RawMessage(fmt.Sprint(newSize))
	out, err := json.Marshal(fields)
	if err != nil {
		return old, err
	}
	return old, atomicfile.Write(path, out, 0o600)
}

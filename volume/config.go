// Package volume is dmsize's volume driver (docker.volumedriver/1.0): thin volumes with a size
// in a thin pool dmsize creates and owns, never in the engine's pool. Model: containerd's
// devmapper snapshotter (a record per device with explicit states) and moby's devicemapper
// transactions (an intent recorded before each pool message, the pool's transaction id moved
// after it), so that a SIGKILL after any step leaves what the next start repairs.
package volume

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/dmsize/dmsize/size"
)

// Config is the volume driver's settings.
type Config struct {
	Dir         string // dmsize's volume records and the pool's files (STATE_DIR/volumes)
	Pool        string // VOLUME_POOL: the LVM thin pool VG/LV the volumes are in; "": dmsize's own
	PoolSize    int64  // VOLUME_POOL_SIZE: the data file's (sparse) size at creation
	DefaultSize int64  // VOLUME_SIZE: a volume's size when the create names none
	DefaultFS   string // VOLUME_FS: ext4 or xfs
	MaxSize     int64  // MAX_SIZE: the largest size a volume may have
	MountRoot   string // where volumes are mounted: the plugin's propagatedMount
}

// Options is what one `docker volume create -o` asks for.
type Options struct {
	Size int64
	FS   string
}

// filesystems are the filesystems a volume may have.
var filesystems = []string{"ext4", "xfs"}

// minSize: smaller filesystems are refused by mkfs.xfs (300 MiB) or are of no use.
const minSize = 512 << 20

// ParseOptions checks every option before anything is made: an unknown key or a bad value
// fails the create with a message naming it.
func (c Config) ParseOptions(opts map[string]string) (Options, error) {
	o := Options{Size: c.DefaultSize, FS: c.DefaultFS}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := opts[k]
		switch k {
		case "size":
			n, err := size.Parse(v)
			if err != nil {
				return o, fmt.Errorf("option size=%s: %v", v, err)
			}
			o.Size = n
		case "fs":
			if !validFS(v) {
				return o, fmt.Errorf("option fs=%s: not one of %s", v, strings.Join(filesystems, ", "))
			}
			o.FS = v
		default:
			return o, fmt.Errorf("unknown option %q (known: size, fs)", k)
		}
	}
	if o.Size < minSize {
		return o, fmt.Errorf("size %s: below the smallest volume, %s", size.Format(o.Size), size.Format(minSize))
	}
	if c.MaxSize > 0 && o.Size > c.MaxSize {
		return o, fmt.Errorf("size %s: above the plugin's maximum %s (MAX_SIZE)", size.Format(o.Size), size.Format(c.MaxSize))
	}
	// The table length is in 512-byte sectors and the filesystems grow in 4 KiB blocks.
	o.Size = o.Size &^ 4095
	return o, nil
}

func validFS(fs string) bool {
	for _, f := range filesystems {
		if f == fs {
			return true
		}
	}
	return false
}

// nameRE is Docker's own rule for volume names ([a-zA-Z0-9][a-zA-Z0-9_.-]+): the name becomes
// a file name and a directory name here.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$`)

// CheckName refuses a name that could not be a file name, before anything is made.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("volume name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	return nil
}

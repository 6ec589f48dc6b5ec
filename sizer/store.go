package sizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/dmsize/dmsize/internal/atomicfile"
)

// Record is dmsize's own account of one container it sized, kept on the host so that a
// restarted plugin can tell what it did and finish what a crash interrupted.
type Record struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Device   string    `json:"device"`    // thin device name
	DeviceID int       `json:"device_id"` // thin id in the pool
	Label    string    `json:"label"`     // the dm.size label as given
	Want     int64     `json:"want"`      // bytes the label asks for
	Applied  int64     `json:"applied"`   // bytes the device and filesystem are known to have
	Rejected string    `json:"rejected,omitempty"`
	Updated  time.Time `json:"updated"`
}

// Store keeps one JSON file per container in a directory, written atomically.
type Store struct {
	dir string
	mu  sync.Mutex
}

var idRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// OpenStore creates dir if needed.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(id string) (string, error) {
	if !idRE.MatchString(id) {
		return "", fmt.Errorf("state: %q is not a container id", id)
	}
	return filepath.Join(s.dir, id+".json"), nil
}

// Get returns the record of container id; ok is false when there is none.
func (s *Store) Get(id string) (r Record, ok bool, err error) {
	p, err := s.path(id)
	if err != nil {
		return Record{}, false, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("state: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, false, fmt.Errorf("state: %s: %w", p, err)
	}
	return r, true, nil
}

// Put writes the record of r.ID.
func (s *Store) Put(r Record) error {
	p, err := s.path(r.ID)
	if err != nil {
		return err
	}
	r.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return atomicfile.Write(p, append(b, '\n'), 0o600)
}

// Delete removes the record of container id, if any.
func (s *Store) Delete(id string) error {
	p, err := s.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// All returns every record.
func (s *Store) All() ([]Record, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var out []Record
	for _, e := range ents {
		name := e.Name()
		if filepath.Ext(name) != ".json" || !idRE.MatchString(name[:len(name)-5]) {
			continue
		}
		r, ok, err := s.Get(name[:len(name)-5])
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, nil
}

package sizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dmsize/dmsize/internal/atomicfile"
)

// Record is dmsize's own account of one container it sized, kept on the host so that a
// restarted plugin can tell what it did and finish what a crash interrupted.
type Record struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Device   string    `json:"device"`          // thin device name
	DeviceID int       `json:"device_id"`       // thin id in the pool
	Label    string    `json:"label"`           // the dm.size label as given
	Grown    int64     `json:"grown,omitempty"` // bytes dmsize grow asked: a smaller label never undoes it
	Want     int64     `json:"want"`            // bytes admitted: the size being given
	Applied  int64     `json:"applied"`         // bytes the device and filesystem are known to have
	Rejected string    `json:"rejected,omitempty"`
	Updated  time.Time `json:"updated"`
}

// Granted is what the record counts against the pool: the larger of admitted and applied.
func (r Record) Granted() int64 { return max(r.Want, r.Applied) }

// Store keeps one JSON file per container in a directory, written atomically, and an index
// of them in memory: the over-commit check reads every record on each growth.
type Store struct {
	dir string
	log logrus.FieldLogger
	mu  sync.Mutex
	idx map[string]Record
}

var idRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// OpenStore creates dir if needed and loads its records. A record that cannot be read is
// logged once and left out (and left on disk, for the operator): one bad file must not stop
// every other container's sizing.
func OpenStore(dir string, log logrus.FieldLogger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	s := &Store{dir: dir, log: log, idx: map[string]Record{}}
	for _, e := range ents {
		name := e.Name()
		id := name[:max(0, len(name)-5)]
		if filepath.Ext(name) != ".json" || !idRE.MatchString(id) {
			continue
		}
		r, err := readRecord(filepath.Join(dir, name))
		if err == nil && r.ID != id {
			err = fmt.Errorf("the record is of container %q", r.ID)
		}
		if err != nil {
			log.WithError(err).Errorf("state: skipping the unreadable record %s", filepath.Join(dir, name))
			continue
		}
		s.idx[id] = r
	}
	return s, nil
}

func readRecord(path string) (Record, error) {
	var r Record
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}

func (s *Store) path(id string) (string, error) {
	if !idRE.MatchString(id) {
		return "", fmt.Errorf("state: %q is not a container id", id)
	}
	return filepath.Join(s.dir, id+".json"), nil
}

// Get returns the record of container id; ok is false when there is none.
func (s *Store) Get(id string) (r Record, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok = s.idx[id]
	return r, ok
}

// Put writes the record of r.ID; the index changes only once the file is written.
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
	if err := atomicfile.Write(p, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	s.idx[r.ID] = r
	return nil
}

// Delete removes the record of container id, if any.
func (s *Store) Delete(id string) error {
	p, err := s.path(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("state: %w", err)
	}
	delete(s.idx, id)
	return nil
}

// All returns every record, by container ID.
func (s *Store) All() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.idx))
	for _, r := range s.idx {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Granted is the sum of what the records other than id count against the pool.
func (s *Store) Granted(except string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, r := range s.idx {
		if id != except && r.Rejected == "" {
			n += r.Granted()
		}
	}
	return n
}

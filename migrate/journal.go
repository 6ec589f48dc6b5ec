package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/dmsize/dmsize/internal/atomicfile"
	"github.com/dmsize/dmsize/kernel/errs"
)

// The journal is migrate's record of every step, written before the step acts ("doing") and
// after it ("done"), atomically (temp file, fsync, rename, fsync of the directory), so that a
// kill at any point leaves a journal that says at most one step may be half done. A step's
// effect is then decided by facts (its Done), never by the journal alone.

// JournalFile is the journal's name in migrate's directory (STATE_DIR/migrate on the host).
const JournalFile = "journal.json"

// Journal states.
const (
	Migrating   = "migrating"
	Migrated    = "migrated"
	RollingBack = "rolling back"
	RolledBack  = "rolled back"
)

// Step states in the journal.
const (
	doing = "doing"
	done  = "done"
)

// Journal is the journal file's content.
type Journal struct {
	State string `json:"state"`
	// Steps is each forward step's state; Undone each step a rollback has undone.
	Steps  map[string]string `json:"steps"`
	Undone map[string]string `json:"undone,omitempty"`
}

func loadJournal(dir string) (Journal, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if errors.Is(err, os.ErrNotExist) {
		return Journal{Steps: map[string]string{}}, false, nil
	}
	if err != nil {
		return Journal{}, false, err
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return Journal{}, false, fmt.Errorf("%s: %w", filepath.Join(dir, JournalFile), err)
	}
	if j.Steps == nil {
		j.Steps = map[string]string{}
	}
	return j, true, nil
}

func (j Journal) save(dir string) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, JournalFile), append(b, '\n'), 0o600)
}

// Step is one row of a step table: what it makes, how to tell it is made, and how to remove it.
type Step struct {
	Name string
	// Done tells, from facts (an LV's tag and UUID, bytes, a status), whether the step's effect
	// is there: a step journalled "doing" may or may not have acted, and one journalled "done"
	// must still have it. nil: the step leaves nothing lasting (a check), and runs every time
	// it is not journalled done.
	Done func() (bool, error)
	// Do makes the effect. It is not called when Done says it is there.
	Do func() error
	// Undo removes what Do made, and only that; safe to repeat, and on what Do left half made.
	// nil: nothing to remove (a check, a read).
	Undo func() error
}

// Machine runs a step table forward, or back, under the journal in Dir. After each journal
// write it calls Crash with "STEP doing" or "STEP done" (crashpoint.Here in the command, a
// kill in the tests).
type Machine struct {
	Dir   string
	Steps []Step
	Crash func(point string)
}

func (m *Machine) save(j Journal, point string) error {
	if err := j.save(m.Dir); err != nil {
		return err
	}
	if m.Crash != nil {
		m.Crash(point)
	}
	return nil
}

// Forward runs every step not journalled done, in order. Run again after a kill, it goes on
// from where the journal and the facts say. It refuses while a rollback is under way or done.
func (m *Machine) Forward() error {
	j, _, err := loadJournal(m.Dir)
	if err != nil {
		return err
	}
	switch j.State {
	case RollingBack:
		return errs.Refuse("a rollback of the migration is under way: run migrate --rollback to finish it")
	case RolledBack:
		return errs.Refuse("this migration was rolled back; remove %s to start a new one", filepath.Join(m.Dir, JournalFile))
	case Migrated:
		return nil
	}
	j.State = Migrating
	for _, s := range m.Steps {
		there := false
		if s.Done != nil {
			if there, err = s.Done(); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
		}
		if j.Steps[s.Name] == done {
			if s.Done != nil && !there {
				return fmt.Errorf("%s: the journal says it was done, and what it made is gone (changed by hand?): run migrate --rollback", s.Name)
			}
			continue
		}
		j.Steps[s.Name] = doing
		if err := m.save(j, s.Name+" "+doing); err != nil {
			return err
		}
		if !there {
			if err := s.Do(); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
		}
		j.Steps[s.Name] = done
		if err := m.save(j, s.Name+" "+done); err != nil {
			return err
		}
	}
	j.State = Migrated
	return m.save(j, Migrated)
}

// Rollback undoes, in reverse order, every step the journal says began, then marks the
// journal rolled back. Run again after a kill, it undoes what is left (each Undo is safe to
// repeat). With no journal there is nothing to undo.
func (m *Machine) Rollback() error {
	j, ok, err := loadJournal(m.Dir)
	if err != nil || !ok || j.State == RolledBack {
		return err
	}
	j.State = RollingBack
	if j.Undone == nil {
		j.Undone = map[string]string{}
	}
	if err := m.save(j, RollingBack); err != nil {
		return err
	}
	steps := slices.Clone(m.Steps)
	slices.Reverse(steps)
	for _, s := range steps {
		if j.Steps[s.Name] == "" || j.Undone[s.Name] == done {
			continue
		}
		j.Undone[s.Name] = doing
		if err := m.save(j, "undo "+s.Name+" "+doing); err != nil {
			return err
		}
		if s.Undo != nil {
			if err := s.Undo(); err != nil {
				return fmt.Errorf("undoing %s: %w", s.Name, err)
			}
		}
		j.Undone[s.Name] = done
		if err := m.save(j, "undo "+s.Name+" "+done); err != nil {
			return err
		}
	}
	j.State = RolledBack
	return m.save(j, RolledBack)
}

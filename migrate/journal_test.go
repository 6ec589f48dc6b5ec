package migrate

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/kernel/errs"
)

// world is what the fake steps change: a set of effects, and every Do and Undo called.
type world struct {
	effects map[string]bool
	calls   []string
	fail    string // a Do or Undo that fails once ("do copy")
}

func (w *world) call(c string) error {
	w.calls = append(w.calls, c)
	if w.fail == c {
		w.fail = ""
		return errors.New("injected")
	}
	return nil
}

// steps is a step table like migrate's: three steps that make something, one check between.
func (w *world) steps(t *testing.T) []Step {
	var steps []Step
	for _, name := range []string{"lvs", "copy", "check", "pool"} {
		s := Step{Name: name}
		if name != "check" {
			s.Done = func() (bool, error) { return w.effects[name], nil }
		}
		s.Do = func() error {
			if err := w.call("do " + name); err != nil {
				return err
			}
			if w.effects[name] {
				t.Errorf("%s done twice", name)
			}
			if name != "check" {
				w.effects[name] = true
			}
			return nil
		}
		if name != "check" {
			s.Undo = func() error {
				if err := w.call("undo " + name); err != nil {
					return err
				}
				delete(w.effects, name)
				return nil
			}
		}
		steps = append(steps, s)
	}
	return steps
}

type killed struct{ point string }

// run runs fn; a Crash at point kill ends it as a SIGKILL would (nothing after it runs).
func run(m *Machine, kill string, fn func() error) (err error) {
	m.Crash = func(p string) {
		if p == kill {
			panic(killed{p})
		}
	}
	defer func() {
		if r := recover(); r != nil {
			if k, ok := r.(killed); ok {
				err = fmt.Errorf("killed at %s", k.point)
				return
			}
			panic(r)
		}
	}()
	return fn()
}

func state(t *testing.T, dir string) string {
	t.Helper()
	j, _, err := loadJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return j.State
}

// points lists the crash points of a run without a kill.
func points(t *testing.T, fn func(m *Machine) error, setup func(m *Machine)) []string {
	t.Helper()
	w := &world{effects: map[string]bool{}}
	m := &Machine{Dir: t.TempDir(), Steps: w.steps(t)}
	if setup != nil {
		setup(m)
	}
	var ps []string
	m.Crash = func(p string) { ps = append(ps, p) }
	if err := fn(m); err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestForwardSurvivesAKillAtEveryPoint(t *testing.T) {
	ps := points(t, (*Machine).Forward, nil)
	if len(ps) != 9 || ps[0] != "lvs doing" || ps[len(ps)-1] != Migrated {
		t.Fatalf("points %q", ps)
	}
	for _, kill := range ps {
		w := &world{effects: map[string]bool{}}
		m := &Machine{Dir: t.TempDir(), Steps: w.steps(t)}
		if err := run(m, kill, m.Forward); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("kill at %s: %v", kill, err)
		}
		if err := run(m, "", m.Forward); err != nil {
			t.Fatalf("after a kill at %s: %v", kill, err)
		}
		if want := map[string]bool{"lvs": true, "copy": true, "pool": true}; !maps.Equal(w.effects, want) || state(t, m.Dir) != Migrated {
			t.Fatalf("after a kill at %s: effects %v, journal %s", kill, w.effects, state(t, m.Dir))
		}
	}
}

// A kill anywhere, forward or back, then rollback (again after a kill, at each of its points):
// nothing the steps made is left.
func TestRollbackLeavesNothing(t *testing.T) {
	forward := append(points(t, (*Machine).Forward, nil), "")
	back := points(t, (*Machine).Rollback, func(m *Machine) {
		if err := m.Forward(); err != nil {
			t.Fatal(err)
		}
	})
	if back[0] != RollingBack || back[len(back)-1] != RolledBack || !slices.Contains(back, "undo pool doing") {
		t.Fatalf("rollback points %q", back)
	}
	for _, fk := range forward {
		for _, bk := range append(back, "") {
			w := &world{effects: map[string]bool{}}
			m := &Machine{Dir: t.TempDir(), Steps: w.steps(t)}
			run(m, fk, m.Forward)
			run(m, bk, m.Rollback)
			if err := run(m, "", m.Rollback); err != nil {
				t.Fatalf("forward kill %q, rollback kill %q: %v", fk, bk, err)
			}
			if len(w.effects) != 0 || state(t, m.Dir) != RolledBack {
				t.Fatalf("forward kill %q, rollback kill %q: effects %v, journal %s", fk, bk, w.effects, state(t, m.Dir))
			}
			for _, c := range w.calls {
				if c == "undo check" {
					t.Fatal("a step without Undo was undone")
				}
			}
		}
	}
}

func TestForwardAndRollbackRefuse(t *testing.T) {
	w := &world{effects: map[string]bool{}}
	m := &Machine{Dir: t.TempDir(), Steps: w.steps(t)}
	if err := m.Rollback(); err != nil || len(w.calls) != 0 {
		t.Fatalf("rollback with no journal: %v, calls %v", err, w.calls)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, JournalFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("rollback with no journal wrote one")
	}
	// A failing step stops the run, journalled doing; the next run goes on from it.
	w.fail = "do copy"
	if err := m.Forward(); err == nil || !strings.Contains(err.Error(), "copy: injected") {
		t.Fatalf("a failing step: %v", err)
	}
	if j, _, _ := loadJournal(m.Dir); j.Steps["copy"] != doing || j.State != Migrating {
		t.Fatalf("journal after a failed step: %+v", j)
	}
	if err := m.Forward(); err != nil || state(t, m.Dir) != Migrated {
		t.Fatal(err)
	}
	n := len(w.calls)
	if err := m.Forward(); err != nil || len(w.calls) != n {
		t.Fatalf("forward once migrated: %v, calls %v", err, w.calls[n:])
	}
	// An effect removed by hand behind a done step: forward stops and says so.
	delete(w.effects, "copy")
	j, _, _ := loadJournal(m.Dir)
	j.State = Migrating
	j.save(m.Dir)
	if err := m.Forward(); err == nil || !strings.Contains(err.Error(), "copy: the journal says it was done") {
		t.Fatalf("a done step's effect gone: %v", err)
	}
	w.effects["copy"] = true
	w.fail = "undo copy"
	if err := m.Rollback(); err == nil || state(t, m.Dir) != RollingBack {
		t.Fatalf("a failing undo: %v", err)
	}
	if err := m.Forward(); !errs.IsRefusal(err) || !strings.Contains(err.Error(), "--rollback") {
		t.Fatalf("forward during a rollback: %v", err)
	}
	if err := m.Rollback(); err != nil || len(w.effects) != 0 {
		t.Fatalf("rollback again: %v, effects %v", err, w.effects)
	}
	if err := m.Forward(); !errs.IsRefusal(err) || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("forward after a rollback: %v", err)
	}
	os.WriteFile(filepath.Join(m.Dir, JournalFile), []byte("{"), 0o600)
	if err := m.Forward(); err == nil || !strings.Contains(err.Error(), JournalFile) {
		t.Fatalf("a corrupted journal: %v", err)
	}
}

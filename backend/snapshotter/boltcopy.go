package snapshotter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// containerd holds its bolt databases under an exclusive flock for as long as it runs, and a
// read-only open waits for a shared one: dmsize reads a copy instead. A copy is consistent
// when no transaction committed while it was taken: a commit writes its pages first and one of
// the two meta pages last, and the pages the newest meta reaches are not reused before the
// transaction after next. So the copy is kept only when both meta pages read the same before
// and after it.

// errTorn is a copy during which a transaction committed.
var errTorn = errors.New("the database changed while it was copied")

// copyAttempts bounds the retries of a torn copy; containerd commits in milliseconds.
const copyAttempts = 20

// CopiesDir is where dmsize copies containerd's databases: a directory of its own under its
// state directory, so that a copy a kill (or a failed close) left is found and removed at the
// next start (copyDir.clear), never left in the plugin's /tmp.
func CopiesDir(stateDir string) string { return filepath.Join(stateDir, "containerd-copies") }

// copyDir is where one program makes its copies: CopiesDir, each copy named prefix*.db. The
// plugin and containerd-sync (a host command) have a prefix each, so that neither's start
// removes a copy the other is reading.
type copyDir struct{ dir, prefix string }

// pluginCopies is the plugin's copies, syncCopies containerd-sync's.
func pluginCopies(stateDir string) copyDir { return copyDir{CopiesDir(stateDir), "plugin-"} }
func syncCopies(stateDir string) copyDir   { return copyDir{CopiesDir(stateDir), "sync-"} }

// clear removes the copies a killed run of the program left: regular files named prefix*.db,
// and nothing else.
func (c copyDir) clear() error {
	ents, err := os.ReadDir(c.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, c.prefix) || !strings.HasSuffix(n, ".db") {
			continue
		}
		if err := os.Remove(filepath.Join(c.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// view runs fn in a read transaction on a consistent copy of the bolt database at path. An
// absent database is an error wrapping os.ErrNotExist.
func (c copyDir) view(path string, fn func(*bolt.Tx) error) error {
	var err error
	for i := 0; i < copyAttempts; i++ {
		if i > 0 {
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
		}
		var tmp string
		tmp, err = c.copy(path)
		if errors.Is(err, errTorn) {
			continue
		}
		if err != nil {
			return err
		}
		defer os.Remove(tmp) // whatever fn does
		return view(tmp, fn)
	}
	return fmt.Errorf("%s: %w (%d attempts)", path, err, copyAttempts)
}

// view reads the database at path. A corrupted database can make bbolt loop forever (checkTree
// refuses those first), panic or fault on its mapping; each is this read's error, never the
// plugin's end (TestBadInputRecords).
func view(path string, fn func(*bolt.Tx) error) (err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := checkTree(b); err != nil {
		return fmt.Errorf("%s: corrupted: %w", path, err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: corrupted: %v", path, p)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}

// copy copies the database into c, or fails with errTorn; a failed copy leaves no file.
func (c copyDir) copy(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	before, err := metaPages(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if c.dir != "" {
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			return "", err
		}
	}
	tmp, err := os.CreateTemp(c.dir, c.prefix+"*.db")
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", err
	}
	if _, err := io.Copy(tmp, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return fail(fmt.Errorf("copying %s: %w", path, err))
	}
	after, err := metaPages(f)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", path, err))
	}
	copied, err := metaPages(tmp)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", path, err))
	}
	if !bytes.Equal(before, after) || !bytes.Equal(before, copied) {
		return fail(errTorn)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("copying %s: %w", path, err)
	}
	return tmp.Name(), nil
}

// metaPages reads the two meta pages at the start of a bolt file. The page size is in the
// first meta (page header 16 bytes, then magic, version, page size).
func metaPages(f *os.File) ([]byte, error) {
	head := make([]byte, 32)
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("not a bolt database: %w", err)
	}
	const magic = 0xED0CDAED
	if binary.LittleEndian.Uint32(head[16:]) != magic {
		return nil, errors.New("not a bolt database")
	}
	pageSize := binary.LittleEndian.Uint32(head[24:])
	if pageSize < 512 || pageSize > 1<<20 {
		return nil, fmt.Errorf("not a bolt database: page size %d", pageSize)
	}
	buf := make([]byte, 2*pageSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("reading the meta pages: %w", err)
	}
	return buf, nil
}

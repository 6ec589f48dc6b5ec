package snapshotter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
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

// viewCopy runs fn in a read transaction on a consistent copy of the bolt database at path.
// An absent database is an error wrapping os.ErrNotExist.
func viewCopy(path string, fn func(*bolt.Tx) error) error {
	var err error
	for i := 0; i < copyAttempts; i++ {
		if i > 0 {
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
		}
		var tmp string
		tmp, err = copyDB(path)
		if errors.Is(err, errTorn) {
			continue
		}
		if err != nil {
			return err
		}
		err = view(tmp, fn)
		os.Remove(tmp)
		return err
	}
	return fmt.Errorf("%s: %w (%d attempts)", path, err, copyAttempts)
}

func view(path string, fn func(*bolt.Tx) error) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}

// copyDB copies the database to a temporary file, or fails with errTorn.
func copyDB(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	before, err := metaPages(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.CreateTemp("", "dmsize-bolt-*.db")
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
	return tmp.Name(), tmp.Close()
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

// Package atomicfile writes files so that a crash at any point leaves the old or the new
// content, never a mix: the rule for every metadata file dmsize writes, its own or the engine's.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write writes data to path so that a crash leaves either the old or the new file:
// a temp file in the same directory (WriteTemp), rename over path, fsync of the directory.
func Write(path string, data []byte, perm os.FileMode) error {
	tmp, err := WriteTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: %w", err)
	}
	return SyncDir(filepath.Dir(path))
}

// WriteTemp writes data to a new temp file next to path, dot-named (the daemon skips those
// when loading), with mode perm, and fsyncs it. It returns the temp file's name; the caller
// renames or removes it. On error nothing is left behind.
func WriteTemp(path string, data []byte, perm os.FileMode) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".dmsize-")
	if err != nil {
		return "", fmt.Errorf("atomicfile: %w", err)
	}
	// Any failed step (a short write: EFBIG, ENOSPC, EIO) stops before the caller's rename.
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("atomicfile: writing %s: %w", path, err)
	}
	return tmp.Name(), nil
}

// SyncDir fsyncs a directory, so that renames in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("atomicfile: fsync %s: %w", dir, err)
	}
	return nil
}

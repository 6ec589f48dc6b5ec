package loop

import (
	"fmt"
	"os"

	"github.com/dmsize/dmsize/kernel/errs"
)

// GrowFile makes the file at path newSize bytes long. The new tail is a hole, so it costs no
// space until written. Growing to the current size does nothing; shrinking is refused with an
// *errs.Refusal and the file left as it was.
func GrowFile(path string, newSize int64) error {
	if newSize < 0 {
		return fmt.Errorf("grow %s: negative size %d", path, newSize)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0) // never create: a missing file is a wrong path
	if err != nil {
		return fmt.Errorf("grow %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("grow %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("grow %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	cur := fi.Size()
	switch {
	case newSize < cur:
		return errs.Shrink("file "+path, cur, newSize)
	case newSize == cur:
		return nil
	}
	if err := f.Truncate(newSize); err != nil {
		return fmt.Errorf("grow %s from %d to %d bytes: %w", path, cur, newSize, err)
	}
	// The size must be durable before the loop device and the pool are told about it.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("grow %s from %d to %d bytes: %w", path, cur, newSize, err)
	}
	return f.Close()
}

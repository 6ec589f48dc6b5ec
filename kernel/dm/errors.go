package dm

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is wrapped in the error of any operation on a device the kernel does not know
// (ENXIO). The errno stays reachable too: errors.Is(err, unix.ENXIO) holds as well.
var ErrNotFound = errors.New("no such device-mapper device")

// ErrInvalidName is wrapped when a device name or uuid is refused before any ioctl.
var ErrInvalidName = errors.New("invalid device name")

// ErrRefused is wrapped when Message refuses a message that is not on its allowlist.
var ErrRefused = errors.New("message refused")

// Error is the error of every operation: which one, on which device, and why.
type Error struct {
	Op   string // "suspend", "load", ...
	Name string // device name; empty for operations on the control device itself
	Err  error
}

func (e *Error) Error() string {
	if e.Name == "" {
		return "dm: " + e.Op + ": " + e.Err.Error()
	}
	return "dm: " + e.Op + " " + e.Name + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// notFound reads as ErrNotFound but also unwraps to the errno the kernel gave.
type notFound struct{ errno error }

func (e notFound) Error() string   { return ErrNotFound.Error() }
func (e notFound) Unwrap() []error { return []error{ErrNotFound, e.errno} }

// Kernel limits: DM_NAME_LEN and DM_UUID_LEN, each including the terminating NUL.
const (
	nameLen = 128
	uuidLen = 129
)

// checkName refuses names the kernel would refuse, and names that would make /dev/mapper/NAME
// point elsewhere ("." and "..").
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) >= nameLen:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidName, len(name), nameLen-1)
	case strings.ContainsRune(name, '/'):
		return fmt.Errorf("%w: contains '/'", ErrInvalidName)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: contains NUL", ErrInvalidName)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}

func checkUUID(uuid string) error {
	switch {
	case len(uuid) >= uuidLen:
		return fmt.Errorf("%w: uuid of %d bytes, at most %d", ErrInvalidName, len(uuid), uuidLen-1)
	case strings.IndexByte(uuid, 0) >= 0:
		return fmt.Errorf("%w: uuid contains NUL", ErrInvalidName)
	}
	return nil
}

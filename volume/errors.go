package volume

import (
	"errors"
)

var (
	ErrExists = errors.New("exists")
	ErrBusy   = errors.New("in use")
	// ErrNotFound: no such volume (dockerd's message for it is its own).
	ErrNotFound = errors.New("no such volume")
)

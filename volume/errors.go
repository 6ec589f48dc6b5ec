package volume

import (
	"errors"
	"fmt"
)

// Refusal is a request dmsize will not carry out (a shrink, a size over the policy, a volume
// in the wrong state): nothing was changed.
type Refusal struct{ Msg string }

func (r *Refusal) Error() string { return r.Msg }

func refuse(format string, a ...any) error { return &Refusal{Msg: fmt.Sprintf(format, a...)} }

var (
	ErrExists = errors.New("exists")
	ErrBusy   = errors.New("in use")
	// ErrNotFound: no such volume (dockerd's message for it is its own).
	ErrNotFound = errors.New("no such volume")
)

// Package errs holds the error types shared by the kernel packages.
package errs

import "fmt"

// ShrinkError reports a request to make something smaller. dmsize only ever grows: shrinking a
// loop file or a filesystem under a live pool or container would destroy data, so the request is
// refused before anything is changed.
type ShrinkError struct {
	What      string // what would have shrunk, e.g. "filesystem on /dev/dm-3"
	Current   int64  // bytes
	Requested int64  // bytes
}

func (e *ShrinkError) Error() string {
	return fmt.Sprintf("refusing to shrink %s from %d to %d bytes (%s GiB to %s GiB)",
		e.What, e.Current, e.Requested, gib(e.Current), gib(e.Requested))
}

func gib(n int64) string { return fmt.Sprintf("%.2f", float64(n)/(1<<30)) }

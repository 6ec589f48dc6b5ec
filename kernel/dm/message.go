package dm

import (
	"fmt"
	"strings"
)

// allowedMessages are the only target messages Message sends. Both only pin or unpin a
// read-only snapshot of a pool's metadata (what thin_ls needs). Everything else that a pool
// understands (create_thin, create_snap, delete, set_transaction_id, ...) changes the pool's
// devices or its transaction id, which belong to dockerd or containerd, never to dmsize.
var allowedMessages = map[string]bool{
	"reserve_metadata_snap": true,
	"release_metadata_snap": true,
}

// checkMessage returns the exact text to send for an allowed message, and an error naming the
// message otherwise. Only surrounding white space is forgiven: arguments, escapes, NULs and
// anything else the kernel's argument splitter might read differently are refused.
func checkMessage(msg string) (string, error) {
	m := strings.TrimSpace(msg)
	if allowedMessages[m] {
		return m, nil
	}
	return "", fmt.Errorf("%w: %q is not one of reserve_metadata_snap, release_metadata_snap", ErrRefused, msg)
}

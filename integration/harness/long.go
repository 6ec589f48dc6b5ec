package harness

import "os"

// Long says whether this is `make test-long` (DMSIZE_LONG=1 in the payload's env): the long
// proofs (every crash step on every set-up, the 200-create burst, 200 volumes, long lifecycle
// loops) instead of the fast suite's one proof of each kind.
func Long() bool { return os.Getenv("DMSIZE_LONG") == "1" }

// Pick is fast in `make test` and long in `make test-long`.
func Pick[T any](fast, long T) T {
	if Long() {
		return long
	}
	return fast
}

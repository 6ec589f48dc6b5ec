// Package crashpoint lets the VM tests SIGKILL the plugin at a named step of a state change,
// to prove that the next start repairs whatever that step left. It is armed only by a file the
// test writes (one step name), read once at start; the file is removed before the kill, so the
// restarted plugin runs normally. Unarmed, Here costs one atomic load.
package crashpoint

import (
	"os"
	"strings"
	"sync/atomic"
	"syscall"
)

var armed atomic.Pointer[string]
var armFile string

// Arm reads the step name from path, if the file exists; a missing file arms nothing.
func Arm(path string) (string, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	step := strings.TrimSpace(string(b))
	if step == "" {
		return "", nil
	}
	armFile = path
	armed.Store(&step)
	return step, nil
}

// Here kills the process with SIGKILL if it is armed for step (as pid 1, it exits at once).
func Here(step string) {
	p := armed.Load()
	if p == nil || *p != step {
		return
	}
	// No sync(): dmsize's own writes are fsynced where they happen, and a host-wide sync under a
	// busy writer delayed the kill by seconds, past the step.
	os.Remove(armFile)
	if os.Getpid() == 1 {
		// The plugin is its pid namespace's init, which ignores a signal it sends itself that
		// it has no handler for, SIGKILL included. exit_group is the same death: no deferred
		// code, no flush, every file closed by the kernel.
		syscall.Exit(137)
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is not delivered synchronously; never return into the next step
}

package harness

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"time"
)

// CLI runs the dmsize command (in the payload's guest/, on PATH) and returns its stdout, its
// stderr and its exit code.
func CLI(args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "dmsize", args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var x *exec.ExitError
	switch {
	case errors.As(err, &x):
		code = x.ExitCode()
	case err != nil:
		code = -1
		e.WriteString(err.Error())
	}
	return strings.TrimSpace(o.String()), strings.TrimSpace(e.String()), code
}

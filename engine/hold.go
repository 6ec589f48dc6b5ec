package engine

import (
	"context"
	"fmt"
	"io"

	"github.com/docker/docker/api/types/container"
)

// Mounted is a container whose root filesystem the engine keeps mounted, and whose container
// lock it keeps held, until Release.
type Mounted struct {
	body *io.PipeWriter
	done chan struct{}
	err  error // the engine's answer; set before done is closed
}

// HoldMounted makes the engine activate and mount container id's root filesystem with its own
// code and under its own locks, and keep it so until Release: dmsize never creates a
// container's device itself, so it cannot race the engine's activation at `docker start`.
//
// It is an upload to the container's root (PUT /containers/{id}/archive) whose body dmsize
// holds back: the engine locks the container, mounts its rootfs, then waits to read the tar.
// Release sends an empty tar, so nothing in the container changes; a `docker start` that
// arrives meanwhile waits for the lock and then finds the device active. The engine emits an
// "extract-to-dir" event for it.
//
// The engine refuses a container with a read-only root filesystem right after mounting it, and
// unmounts at once (a container it does not know, before mounting anything); but dockerd's
// HTTP server sends that answer only once the request body is complete, so with dockerd Done
// closes only at Release, whose error carries the refusal (Done closes earlier only for a
// server that answers before reading the body). When ctx ends, the upload is abandoned (the
// engine reads a truncated body, extracts nothing and unmounts) and Done closes.
func (c *Client) HoldMounted(ctx context.Context, id string) *Mounted {
	pr, pw := io.Pipe()
	m := &Mounted{body: pw, done: make(chan struct{})}
	// The HTTP client does not return from a cancelled request while it is still reading the
	// body: end the body too.
	stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	go func() {
		m.err = c.api.CopyToContainer(ctx, id, "/", pr, container.CopyToContainerOptions{})
		stop()
		pr.CloseWithError(m.err)
		close(m.done)
	}()
	return m
}

// Done is closed once the engine has answered (see HoldMounted: with dockerd, after Release)
// or ctx ended.
func (m *Mounted) Done() <-chan struct{} { return m.done }

// Err is the engine's answer, once Done is closed.
func (m *Mounted) Err() error { return m.err }

// Release ends the hold: the empty tar lets the engine finish the request, unmount and unlock.
func (m *Mounted) Release() error {
	// Two zero blocks: the end-of-archive marker of an empty tar. A write after the engine
	// answered fails with the pipe's error, which says nothing more than m.err.
	m.body.Write(make([]byte, 1024))
	m.body.Close()
	<-m.done
	if m.err != nil {
		return fmt.Errorf("engine: holding the container's rootfs mounted: %w", m.err)
	}
	return nil
}

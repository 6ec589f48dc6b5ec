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
	done chan error
}

// HoldMounted makes the engine activate and mount container id's root filesystem with its own
// code and under its own locks, and keep it so until Release: dmsize never creates a
// container's device itself, so it cannot race the engine's activation at `docker start`.
//
// It is an upload to the container's root (PUT /containers/{id}/archive) whose body dmsize
// holds back: the engine locks the container, mounts its rootfs, then waits to read the tar.
// Release sends an empty tar, so nothing in the container changes; a `docker start` that
// arrives meanwhile waits for the lock and then finds the device active. The engine emits an
// "extract-to-dir" event for it. A container with a read-only root filesystem refuses the
// upload after mounting; Release then returns that error.
func (c *Client) HoldMounted(ctx context.Context, id string) *Mounted {
	pr, pw := io.Pipe()
	m := &Mounted{body: pw, done: make(chan error, 1)}
	go func() {
		err := c.api.CopyToContainer(ctx, id, "/", pr, container.CopyToContainerOptions{})
		pr.CloseWithError(err)
		m.done <- err
	}()
	return m
}

// Done is closed-over by callers that wait for the hold to fail early (e.g. a read-only
// rootfs): it yields the request's error once the engine answered.
func (m *Mounted) Done() <-chan error { return m.done }

// Release ends the hold: the empty tar lets the engine finish the request, unmount and unlock.
func (m *Mounted) Release() error {
	// Two zero blocks: the end-of-archive marker of an empty tar.
	_, werr := m.body.Write(make([]byte, 1024))
	m.body.Close()
	err := <-m.done
	m.done <- err // later Release or Done calls see the same answer
	if err != nil {
		return fmt.Errorf("engine: holding the container's rootfs mounted: %w", err)
	}
	if werr != nil && werr != io.ErrClosedPipe {
		return fmt.Errorf("engine: holding the container's rootfs mounted: %w", werr)
	}
	return nil
}

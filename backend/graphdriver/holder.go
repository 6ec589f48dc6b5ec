package graphdriver

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/dmsize/dmsize/kernel/dm"
)

// Holder keeps grown thin devices open. The engine caches every device's size for its whole
// life and re-creates an absent device at that cached size, which is too small for a grown
// filesystem. While dmsize holds the device open, the engine's deactivation at container stop
// becomes a deferred removal that never completes, and its next activation finds the grown
// device in place. The hold is let go at `destroy` (so `docker rm` can delete the device) and
// is unnecessary after the engine restarts (it then reads the rewritten size).
type Holder struct {
	mu    sync.Mutex
	files map[string]*os.File
}

// node is dm.Node (the unit tests hold files of their own).
var node = dm.Node

// NewHolder makes an empty Holder.
func NewHolder() *Holder { return &Holder{files: map[string]*os.File{}} }

// Hold opens device name, once; holding an already held device does nothing.
func (h *Holder) Hold(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.files[name]; ok {
		return nil
	}
	f, err := os.OpenFile(node(name), os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("holding device %s open: %w", name, err)
	}
	h.files[name] = f
	return nil
}

// Release closes device name if held.
func (h *Holder) Release(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.files[name]
	if ok {
		f.Close()
		delete(h.files, name)
	}
	return ok
}

// Held reports whether device name is held.
func (h *Holder) Held(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.files[name]
	return ok
}

// Count is the number of devices held.
func (h *Holder) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.files)
}

package sizer

import (
	"context"
	"errors"
	"time"
)

// The sizer reaches its storage through three small interfaces. A storage backend (Docker's
// devicemapper graph driver today, containerd's devmapper snapshotter next) implements them in
// its own package; the unit tests implement them with a fake kernel and a fake engine.

// Container is one container as its backend sees it.
type Container struct {
	ID, Name string
	Labels   map[string]string
	Running  bool
	State    string // created, running, exited, ...
	ReadOnly bool   // read-only root filesystem: the engine will not mount it for dmsize
	Device   string // thin device of its root filesystem; "" when not on this backend's storage
	DeviceID int    // its thin id in the pool
	// Cached is the size the engine activates the device at when it has to create it: the
	// graph driver's in-memory size, read at the engine's start and never again.
	Cached int64
}

// ErrNotFound is returned (wrapped) by Engine.Container for a container the engine does not know.
var ErrNotFound = errors.New("no such container")

// Engine is the container engine.
type Engine interface {
	// Container inspects a container by ID, short ID or name; the result has the full ID.
	Container(ctx context.Context, ref string) (Container, error)
	// SizedContainers lists the IDs of every container, running or not, with the size label.
	SizedContainers(ctx context.Context) ([]string, error)
	// MountRootfs has the engine activate and mount a stopped container's root filesystem
	// under its own locks, and keep it so until Release.
	MountRootfs(ctx context.Context, id string) Mount
}

// Mount is a root filesystem the engine keeps mounted for dmsize.
type Mount interface {
	Done() <-chan struct{} // closed when the engine let go (after Release, or early if it refused)
	Err() error            // the engine's answer, once Done is closed
	Release() error
}

// DeviceState is what the kernel says of a device.
type DeviceState struct {
	Exists bool  // a device of that name exists
	Active bool  // it has a live table and is not suspended
	Size   int64 // its live length in bytes, when Active
	Opens  int32 // open count: mounts and holders
	// Deferred: a removal is scheduled for the last close.
	Deferred bool
}

// Devices is device-mapper and the filesystems on its devices.
type Devices interface {
	State(name string) (DeviceState, error)
	// Grow makes an active device's table size bytes long; stall is how long its I/O waited.
	Grow(name string, size int64) (stall time.Duration, err error)
	// Activate brings up an absent device at size so that nobody can find it under its name
	// before it has a live table; it fails if the name exists.
	Activate(name string, deviceID int, size int64) error
	// GrowFS grows the filesystem on an active device to size (a no-op when it has it).
	GrowFS(name string, size int64) (time.Duration, error)
	// Hold keeps an active device open so that the engine's deferred removal at stop never
	// completes; Release lets go. Both are idempotent.
	Hold(name string) error
	Release(name string) bool
	Holds() int
	Held(name string) bool
	// FS reads the filesystem's size and use on an active device, without mounting it.
	FS(name string) (size, used int64, err error)
	// PoolData is the pool's data size in bytes, read without committing its metadata.
	PoolData() (int64, error)
}

// Sizes is what the engine will activate each device at after it restarts.
type Sizes interface {
	// Persisted is the device's size as the engine's next start will read it.
	Persisted(device string) (int64, error)
	// Persist sets it; never lower, a no-op when equal, an error wrapping os.ErrNotExist when
	// the engine deleted the device.
	Persist(device string, size int64) error
	// Provisioned is the sum of the virtual sizes of every device in the pool.
	Provisioned() (int64, error)
}

// Strategy is how a device is brought to its size.
type Strategy string

const (
	// GrowLive: the device is active (a running container, or held): grow it in place.
	GrowLive Strategy = "grow-live"
	// ViaEngine: a stopped container whose device is absent: the engine activates and mounts
	// it under its own locks (Engine.MountRootfs), then it is grown live.
	ViaEngine Strategy = "via-engine"
	// Reactivate: the device is absent and the engine would re-create it at its stale cached
	// size, smaller than the filesystem: dmsize activates it at the persisted size and holds it.
	Reactivate Strategy = "reactivate"
	// EngineHas: nothing to do on the device: the engine activates it at the right size.
	EngineHas Strategy = "engine-has"
)

// Action is what one Ensure did, as results, records and metrics name it.
type Action string

const (
	Grown     Action = "grown"      // the container got a larger root filesystem
	Repaired  Action = "repaired"   // an interrupted sizing was finished, or a lost hold restored
	Unchanged Action = "unchanged"  // it already had its size
	WouldGrow Action = "would-grow" // a dry run: it would be grown
	Rejected  Action = "rejected"   // the label is refused (bad, shrink, policy): it keeps its size
	Skipped   Action = "skipped"    // not dmsize's: no label, not on this storage, or gone
	Failed    Action = "failed"     // an error; a retry may succeed
)

//go:build linux

package dm

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ControlPath is the device-mapper control device.
const ControlPath = "/dev/mapper/control"

// DefaultNodeWait is how long Resume gives udev to create /dev/mapper/NAME before making the
// node itself.
const DefaultNodeWait = time.Second

// Control is an open device-mapper control device. Its methods may be called from several
// goroutines at once, except that a Control used for WaitEvent should be dedicated to it: the
// poll state that WaitEvent arms belongs to the open file, so two waiters on one Control would
// re-arm each other. Close waits for calls under way; it wakes a WaitEvent at once.
type Control struct {
	// NodeWait is how long Resume waits for udev's /dev/mapper/NAME before making the node
	// itself (DefaultNodeWait after Open). Where no udev serves /dev, 0 spares the wait.
	NodeWait time.Duration

	mu      sync.RWMutex // held shared by calls, exclusively by Close: the fd is never reused under a call
	fd      int          // -1 once closed
	wake    int          // eventfd that Close signals to end a WaitEvent's poll
	closing atomic.Bool
	byTimer atomic.Bool // the kernel has no DM_DEV_ARM_POLL: WaitEvent waits on its timer
}

// Open opens ControlPath.
func Open() (*Control, error) { return OpenPath(ControlPath) }

// OpenPath opens a control device at path (for tests) and checks that the kernel speaks
// version 4 of the dm ioctl interface.
func OpenPath(path string) (*Control, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &Error{Op: "open", Name: path, Err: err}
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, &Error{Op: "open", Name: path, Err: fmt.Errorf("eventfd: %w", err)}
	}
	c := &Control{NodeWait: DefaultNodeWait, fd: fd, wake: wake}
	v, err := c.Version()
	if err == nil && v[0] != ourVersion[0] {
		err = fmt.Errorf("kernel speaks dm ioctl %d.%d.%d, dmsize needs 4.x", v[0], v[1], v[2])
	}
	// DM_DEV_ARM_POLL came in 4.13 without a new minor; 4.37 (4.14) is the first that surely has it.
	c.byTimer.Store(err == nil && v[1] < 37)
	if err != nil {
		c.Close()
		var e *Error
		if errors.As(err, &e) { // "dm: open PATH: version: ...", not "...: dm: version: ..."
			err = fmt.Errorf("version: %w", e.Err)
		}
		return nil, &Error{Op: "open", Name: path, Err: err}
	}
	return c, nil
}

// Close closes the control device. On a nil Control (never opened) it does nothing.
func (c *Control) Close() error {
	if c == nil || c.closing.Swap(true) {
		return nil
	}
	var one [8]byte
	ne.PutUint64(one[:], 1)
	unix.Write(c.wake, one[:]) // wakes a WaitEvent; it then finds fd closed
	c.mu.Lock()
	defer c.mu.Unlock()
	err := unix.Close(c.fd)
	unix.Close(c.wake)
	c.fd = -1
	if err != nil {
		return &Error{Op: "close", Err: err}
	}
	return nil
}

// run makes one ioctl under the shared lock and wraps any error with op and name. Names are
// checked by named, the way in for every command on a device.
func (c *Control) run(op string, r request) (reply, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.fd < 0 {
		return reply{}, &Error{Op: op, Name: r.name, Err: os.ErrClosed}
	}
	rep, err := do(c.fd, r)
	if err != nil {
		return rep, &Error{Op: op, Name: r.name, Err: err}
	}
	return rep, nil
}

// named runs a command on one device; it refuses an empty name, which the kernel would read
// as "no device" or, for some commands, ignore.
func (c *Control) named(op, name string, r request) (reply, error) {
	if err := checkName(name); err != nil {
		return reply{}, &Error{Op: op, Name: name, Err: err}
	}
	r.name = name
	return c.run(op, r)
}

// Version returns the kernel's dm ioctl interface version.
func (c *Control) Version() (v [3]uint32, err error) {
	rep, err := c.run("version", request{cmd: cmdVersion})
	// A kernel of another major version refuses the call with EINVAL but still writes its
	// version back; Open reports the mismatch.
	if err != nil && !(errors.Is(err, unix.EINVAL) && rep.Version[0] != ourVersion[0] && rep.Version[0] != 0) {
		return v, err
	}
	return rep.Version, nil
}

// List returns every device-mapper device.
func (c *Control) List() ([]NameDev, error) {
	rep, err := c.run("list", request{cmd: cmdListDevices, room: defaultRoom, grow: true})
	if err != nil {
		return nil, err
	}
	list, err := decodeNameList(rep.data)
	if err != nil {
		return nil, &Error{Op: "list", Err: err}
	}
	return list, nil
}

// Info returns the state of one device.
func (c *Control) Info(name string) (Info, error) {
	rep, err := c.named("info", name, request{cmd: cmdDevStatus})
	if err != nil {
		return Info{}, err
	}
	return rep.info(), nil
}

// Table returns the live table (DM_TABLE_STATUS with DM_STATUS_TABLE_FLAG); empty when there is none.
func (c *Control) Table(name string) ([]Target, error) {
	return c.tableStatus("table", name, flagStatusTable)
}

// Status returns the live table's status lines. Without DM_NOFLUSH_FLAG, as with dmsetup
// status, a thin pool commits its metadata first, so the numbers are current.
func (c *Control) Status(name string) ([]Target, error) {
	return c.tableStatus("status", name, 0)
}

// StatusNoFlush is Status with DM_NOFLUSH_FLAG: a thin pool reports its in-core counts without
// committing its metadata, so a watcher may call it often without adding metadata writes.
func (c *Control) StatusNoFlush(name string) ([]Target, error) {
	return c.tableStatus("status", name, flagNoFlush)
}

func (c *Control) tableStatus(op, name string, flags uint32) ([]Target, error) {
	rep, err := c.named(op, name, request{cmd: cmdTableStatus, flags: flags, room: defaultRoom, grow: true})
	if err != nil {
		return nil, err
	}
	if rep.Flags&flagActivePresent == 0 {
		return nil, nil
	}
	targets, err := decodeTargets(rep.data, rep.TargetCount)
	if err != nil {
		return nil, &Error{Op: op, Name: name, Err: err}
	}
	return targets, nil
}

// Load loads table into the device's inactive slot; Resume makes it live.
func (c *Control) Load(name string, table []Target) error {
	if len(table) == 0 {
		return &Error{Op: "load", Name: name, Err: errors.New("empty table")}
	}
	payload, err := encodeTable(table)
	if err != nil {
		return &Error{Op: "load", Name: name, Err: err}
	}
	_, err = c.named("load", name, request{cmd: cmdTableLoad, targetCount: uint32(len(table)), payload: payload})
	return err
}

// ClearInactive drops the table waiting in the inactive slot, if any.
func (c *Control) ClearInactive(name string) error {
	_, err := c.named("clear", name, request{cmd: cmdTableClear})
	return err
}

// Suspend suspends the device. flush=false sets DM_NOFLUSH_FLAG: I/O in flight is requeued
// rather than completed, which a thin device on a full pool needs to suspend at all.
func (c *Control) Suspend(name string, flush bool) error {
	flags := uint32(flagSuspend)
	if !flush {
		flags |= flagNoFlush
	}
	_, err := c.named("suspend", name, request{cmd: cmdDevSuspend, flags: flags})
	return err
}

// Resume resumes the device, making a loaded inactive table live, then makes sure
// /dev/mapper/NAME is there (see EnsureNode), giving udev NodeWait to make it.
func (c *Control) Resume(name string) error {
	rep, err := c.named("resume", name, request{cmd: cmdDevSuspend})
	if err != nil {
		return err
	}
	if err := EnsureNode(name, decodeDev(rep.Dev), c.NodeWait); err != nil {
		return &Error{Op: "resume", Name: name, Err: err}
	}
	return nil
}

// Create creates a device with no table; Load and Resume activate it. No node is made here:
// without a table the device serves no I/O, and udev names it at the first Resume.
func (c *Control) Create(name, uuid string) (Dev, error) {
	if err := checkUUID(uuid); err != nil {
		return Dev{}, &Error{Op: "create", Name: name, Err: err}
	}
	rep, err := c.named("create", name, request{cmd: cmdDevCreate, uuid: uuid})
	if err != nil {
		return Dev{}, err
	}
	return decodeDev(rep.Dev), nil
}

// Rename renames device old to new, which must not exist. A device made under a temporary
// name, loaded and resumed, then renamed into place is never seen under its real name without
// a live table.
func (c *Control) Rename(old, new string) error {
	if err := checkName(new); err != nil {
		return &Error{Op: "rename", Name: old, Err: err}
	}
	info, err := c.Info(old)
	if err != nil {
		return err
	}
	if _, err := c.named("rename", old, request{cmd: cmdDevRename, payload: append([]byte(new), 0)}); err != nil {
		return err
	}
	if err := EnsureNode(new, info.Dev, c.NodeWait); err != nil {
		return &Error{Op: "rename", Name: new, Err: err}
	}
	if err := removeNode(old, info.Dev); err != nil {
		return &Error{Op: "rename", Name: old, Err: err}
	}
	return nil
}

// Remove removes the device. With deferred, an open device is removed at its last close
// instead of failing with EBUSY. Once the device is gone, a plain /dev/mapper/NAME node of its
// number (one EnsureNode made) is removed too; udev's symlinks are udev's to remove.
func (c *Control) Remove(name string, deferred bool) error {
	info, err := c.Info(name)
	if err != nil {
		return &Error{Op: "remove", Name: name, Err: errors.Unwrap(err)}
	}
	var flags uint32
	if deferred {
		flags = flagDeferredRemove
	}
	if _, err := c.named("remove", name, request{cmd: cmdDevRemove, flags: flags}); err != nil {
		return err
	}
	if deferred {
		// Removed now, or only scheduled? A scheduled removal leaves its node to the last close.
		if _, err := c.Info(name); !errors.Is(err, ErrNotFound) {
			return nil
		}
	}
	if err := removeNode(name, info.Dev); err != nil {
		return &Error{Op: "remove", Name: name, Err: err}
	}
	return nil
}

// CancelDeferredRemove takes back a deferred removal of device name: the device stays, and its
// last close no longer removes it. It is a message to device-mapper's core, not to a target
// (no pool sees it), and the text is fixed.
func (c *Control) CancelDeferredRemove(name string) error {
	_, err := c.named("cancel deferred remove", name, request{cmd: cmdTargetMsg, payload: encodeMessage(0, "@cancel_deferred_remove"), room: defaultRoom})
	return err
}

// Message sends a target message to the target at sector of the live table and returns the
// target's answer, if it gave one. Only allowlisted read-only messages are sent (see
// allowedMessages); anything else is refused with ErrRefused before any ioctl.
func (c *Control) Message(name string, sector uint64, msg string) (string, error) {
	m, err := checkMessage(msg)
	if err != nil {
		return "", &Error{Op: "message", Name: name, Err: err}
	}
	rep, err := c.named("message", name, request{cmd: cmdTargetMsg, payload: encodeMessage(sector, m), room: defaultRoom})
	if err != nil {
		return "", err
	}
	if rep.Flags&flagDataOut == 0 {
		return "", nil
	}
	return cstring(rep.data), nil
}

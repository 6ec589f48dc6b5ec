//go:build linux

package dm

import (
	"errors"
	"math"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// WaitEvent waits until the device's event counter differs from last, or until timeout, and
// returns the device's Info either way: a timeout is no error, callers compare EventNr.
//
// It sleeps in poll(2), not in a loop of sleeps: DM_DEV_ARM_POLL records the kernel's global
// dm event count on this open file, and the file polls readable once any dm device has had an
// event since. Arming comes before each look at the counter, so an event between the look and
// the poll still wakes the poll. Because the armed count belongs to the open file, a Control
// used for WaitEvent should be used by one waiter only.
//
// Where the kernel lacks DM_DEV_ARM_POLL (Linux 4.13: dm ioctl below 4.37, or the arm answered
// as a command it does not know), WaitEvent sleeps out the timeout and then looks: the guard's
// wait tightens while a pool fills, so only the wake-up at the event is lost. It never polls
// the control file there: without the arm it always polls readable. Close still ends the wait.
func (c *Control) WaitEvent(name string, last uint32, timeout time.Duration) (Info, error) {
	if err := checkName(name); err != nil {
		return Info{}, &Error{Op: "wait", Name: name, Err: err}
	}
	deadline := time.Now().Add(timeout)
	for {
		if !c.byTimer.Load() {
			_, err := c.run("wait", request{cmd: cmdDevArmPoll})
			switch {
			case errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL):
				c.byTimer.Store(true)
			case err != nil:
				return Info{}, &Error{Op: "wait", Name: name, Err: errors.Unwrap(err)}
			}
		}
		info, err := c.Info(name)
		if err != nil || info.EventNr != last {
			return info, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return info, nil
		}
		if err := c.poll(left); err != nil {
			return Info{}, &Error{Op: "wait", Name: name, Err: err}
		}
	}
}

// poll waits until the control file is readable (an event since the last arm; not on the
// timer), Close is called, or d passes. Which one it was does not matter: the caller looks again.
func (c *Control) poll(d time.Duration) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.fd < 0 {
		return os.ErrClosed
	}
	fds := []unix.PollFd{{Fd: int32(c.wake), Events: unix.POLLIN}}
	if !c.byTimer.Load() {
		fds = append(fds, unix.PollFd{Fd: int32(c.fd), Events: unix.POLLIN})
	}
	ms := int(min((d+time.Millisecond-1)/time.Millisecond, math.MaxInt32)) // round up: never spin on 0
	_, err := unix.Poll(fds, ms)
	if err != nil && err != unix.EINTR {
		return err
	}
	if fds[0].Revents != 0 {
		return os.ErrClosed
	}
	return nil
}

// EventsByTimer says whether WaitEvent waits on its timer: the kernel lacks DM_DEV_ARM_POLL.
func (c *Control) EventsByTimer() bool { return c.byTimer.Load() }

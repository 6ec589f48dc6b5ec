package fs

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// withPrivateMount mounts device dev (major:minor rdev, filesystem t) in a mount namespace of its
// own, runs fn on the mount's root and unmounts it. Nothing of the mount is ever visible to, or
// left behind in, the caller's namespace. If the device is mounted in another namespace, the
// kernel hands back that same filesystem instance, so fn then acts on the live filesystem.
func withPrivateMount(dev string, rdev uint64, t Type, fn func(root *os.File) error) error {
	return inPrivateNamespace(func() (err error) {
		dir, err := os.MkdirTemp("", "dmsize-grow-")
		if err != nil {
			return fmt.Errorf("mount %s privately: %w", dev, err)
		}
		defer os.Remove(dir)

		// Every Docker thin device is a snapshot of one base device, so all their xfs
		// filesystems carry the same UUID; xfs refuses a second one unless told not to check.
		data := ""
		if t == XFS {
			data = "nouuid"
		}
		if err := unix.Mount(dev, dir, string(t), unix.MS_NOATIME, data); err != nil {
			return fmt.Errorf("mount %s (%s) privately on %s: %w", dev, t, dir, err)
		}
		defer func() {
			if uerr := unmount(dir); uerr != nil && err == nil {
				err = fmt.Errorf("unmount %s (%s) from %s: %w", dev, t, dir, uerr)
			}
		}()
		root, err := openOn(dir, rdev)
		if err != nil {
			return fmt.Errorf("mount %s (%s) privately: %w", dev, t, err)
		}
		defer root.Close()
		return fn(root)
	})
}

// inPrivateNamespace runs fn on a thread of its own, in a new mount namespace where every mount
// is private. The thread exits when fn returns, and the namespace goes with it.
func inPrivateNamespace(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine returns its thread exits, rather than going back
		// to run other goroutines inside the namespace.
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread never exits: Go parks it for good instead, which would keep the
			// namespace, with a copy of every mount of the process, alive. Hold on to it so
			// that the retry lands elsewhere, and hand it back untouched.
			done <- inPrivateNamespace(fn)
			runtime.UnlockOSThread()
			return
		}
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			done <- fmt.Errorf("unshare mount namespace: %w", err)
			return
		}
		// Otherwise mounts under a shared "/" would propagate back to the host's namespace.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			done <- fmt.Errorf("make / private in a new mount namespace: %w", err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// unmount unmounts dir, detaching it if it is busy so that dir can still be removed; the
// filesystem then goes away with the namespace.
func unmount(dir string) error {
	err := unix.Unmount(dir, 0)
	if err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
	}
	return err
}

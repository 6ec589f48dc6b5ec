//go:build linux

package dm

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseDev(t *testing.T) {
	d, err := ParseDev("253:3")
	if err != nil || d != (Dev{253, 3}) || d.String() != "253:3" {
		t.Fatalf("%v %v", d, err)
	}
	for _, bad := range []string{"", "253", "253:", ":3", "a:b", "253:3:1", "-1:3", "253:4294967296", " 253:3"} {
		if _, err := ParseDev(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"docker-253:0-1-pool":    true,
		strings.Repeat("a", 127): true,
		strings.Repeat("a", 128): false,
		"":                       false,
		"a/b":                    false,
		"/":                      false,
		"a\x00b":                 false,
		".":                      false,
		"..":                     false,
		"...":                    true,
	} {
		if err := checkName(name); (err == nil) != ok {
			t.Errorf("%q: %v", name, err)
		} else if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: %v does not wrap ErrInvalidName", name, err)
		}
	}
	if checkUUID(strings.Repeat("u", 128)) != nil || checkUUID(strings.Repeat("u", 129)) == nil || checkUUID("") != nil {
		t.Error("uuid length limits")
	}
}

func TestCheckMessage(t *testing.T) {
	for msg, want := range map[string]string{
		"reserve_metadata_snap":             "reserve_metadata_snap",
		"release_metadata_snap":             "release_metadata_snap",
		" release_metadata_snap\n":          "release_metadata_snap",
		"create_thin 1":                     "",
		"create_snap 2 1":                   "",
		"delete 1":                          "",
		"set_transaction_id 4 5":            "",
		"trim 1 0":                          "",
		"@stats_create - /1":                "",
		"reserve_metadata_snap 1":           "",
		"reserve_metadata_snap\x00delete 1": "",
		"reserve\\_metadata_snap":           "",
		"RESERVE_METADATA_SNAP":             "",
		"":                                  "",
	} {
		got, err := checkMessage(msg)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%q: %q, %v", msg, got, err)
		}
		if err != nil && (!errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), strconv.Quote(msg))) {
			t.Errorf("%q: error %v does not name the message", msg, err)
		}
	}
}

// closedControl fails every ioctl: what reaches the kernel shows as os.ErrClosed.
func closedControl() *Control { return &Control{fd: -1, wake: -1} }

func TestRefusedBeforeAnyIoctl(t *testing.T) {
	c := closedControl()
	for _, msg := range []string{"create_thin 1", "create_snap 1 0", "delete 0", "set_transaction_id 0 1"} {
		_, err := c.Message("pool", 0, msg)
		if !errors.Is(err, ErrRefused) || errors.Is(err, os.ErrClosed) {
			t.Errorf("%q: %v", msg, err)
		}
		if !strings.HasPrefix(err.Error(), "dm: message pool: ") {
			t.Errorf("%q: %v", msg, err)
		}
	}
	if _, err := c.Message("pool", 0, "reserve_metadata_snap"); !errors.Is(err, os.ErrClosed) {
		t.Errorf("allowed message did not reach the ioctl: %v", err)
	}
	long := strings.Repeat("n", 128)
	for op, err := range map[string]error{
		"info":    func() error { _, err := c.Info("a/b"); return err }(),
		"table":   func() error { _, err := c.Table(long); return err }(),
		"status":  func() error { _, err := c.Status(""); return err }(),
		"load":    c.Load("..", []Target{{0, 1, "zero", ""}}),
		"suspend": c.Suspend("a/b", false),
		"resume":  c.Resume("a/b"),
		"create":  func() error { _, err := c.Create("a/b", ""); return err }(),
		"remove":  c.Remove(long, false),
		"message": func() error { _, err := c.Message("a/b", 0, "reserve_metadata_snap"); return err }(),
		"wait":    func() error { _, err := c.WaitEvent("a/b", 0, time.Second); return err }(),
		"clear":   c.ClearInactive(""),
	} {
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("%s: %v", op, err)
		} else if !strings.HasPrefix(err.Error(), "dm: "+op) {
			t.Errorf("%s: %q does not name the operation", op, err)
		}
	}
	if _, err := c.Create("ok", strings.Repeat("u", 129)); !errors.Is(err, ErrInvalidName) {
		t.Errorf("long uuid: %v", err)
	}
	if err := c.Load("ok", nil); err == nil || errors.Is(err, os.ErrClosed) {
		t.Errorf("empty table: %v", err)
	}
}

func TestOpenPathErrors(t *testing.T) {
	_, err := OpenPath("/nonexistent/control")
	if !errors.Is(err, unix.ENOENT) || !strings.HasPrefix(err.Error(), "dm: open /nonexistent/control: ") {
		t.Fatalf("%v", err)
	}
	// /dev/null takes no ioctls: the version check must fail, not pass by accident.
	if _, err := OpenPath("/dev/null"); !errors.Is(err, unix.ENOTTY) || err.Error() != "dm: open /dev/null: version: inappropriate ioctl for device" {
		t.Fatalf("/dev/null: %v", err)
	}
}

// pipeControl is a Control on a pipe's read end (every dm ioctl fails with ENOTTY on it), and
// the write end, which makes it poll readable.
func pipeControl(t *testing.T) (*Control, int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[1]) })
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	return &Control{fd: p[0], wake: wake}, p[1]
}

// Close must wake a WaitEvent's poll at once rather than wait for its timeout.
func TestCloseWakesPoll(t *testing.T) {
	c, _ := pipeControl(t)

	// Nothing readable: poll times out without error (or returns early on a signal).
	if err := c.poll(20 * time.Millisecond); err != nil {
		t.Fatalf("poll: %v", err)
	}

	// Like WaitEvent, go on polling until poll says the Control is closed.
	done := make(chan error, 1)
	go func() {
		for {
			if err := c.poll(time.Minute); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("poll after close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the poll")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := c.Info("x"); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("info after close: %v", err)
	}
}

// On the timer, poll leaves the control file alone (without DM_DEV_ARM_POLL it always polls
// readable) and sleeps out its time; Close still wakes it at once.
func TestPollByTimer(t *testing.T) {
	c, w := pipeControl(t)
	if _, err := unix.Write(w, []byte("x")); err != nil { // the control file polls readable
		t.Fatal(err)
	}
	c.byTimer.Store(true)
	// poll may return early on a signal (the Go runtime's preemption): WaitEvent then looks
	// and polls again, as this does.
	start := time.Now()
	for left := 100 * time.Millisecond; left > 0; left = 100*time.Millisecond - time.Since(start) {
		if err := c.poll(left); err != nil {
			t.Fatalf("poll on the timer: %v", err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("100ms on the timer took %v", d)
	}
	done := make(chan error, 1)
	go func() {
		for {
			if err := c.poll(time.Minute); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("poll after close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the poll on the timer")
	}
}

// A kernel that answers DM_DEV_ARM_POLL as an unknown command (ENOTTY) puts WaitEvent on the
// timer; a pipe answers every dm ioctl so.
func TestWaitEventFallsBackToTheTimer(t *testing.T) {
	c, _ := pipeControl(t)
	defer c.Close()
	if c.EventsByTimer() {
		t.Fatal("on the timer before any answer")
	}
	_, err := c.WaitEvent("pool", 0, time.Second) // the arm: ENOTTY; then Info fails the same way
	if !c.EventsByTimer() || !errors.Is(err, unix.ENOTTY) {
		t.Fatalf("WaitEvent = %v; by timer %v", err, c.EventsByTimer())
	}
}

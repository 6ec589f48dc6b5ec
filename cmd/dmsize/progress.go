package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress runs fn. On a terminal, once fn has run for a.spinAfter, a one-line spinner on
// stderr says what it is doing and for how long; it is erased before progress returns, so
// that the answer (or the error) stands alone.
func (a *app) progress(doing string, fn func() error) error {
	if !a.tty {
		return fn()
	}
	start := time.Now()
	done, erased := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(erased)
		select {
		case <-done:
			return
		case <-time.After(a.spinAfter):
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(a.stderr, "\r%c %s… %ds\x1b[K", `|/-\`[i%4], doing, int(time.Since(start).Seconds()))
			select {
			case <-done:
				fmt.Fprint(a.stderr, "\r\x1b[K")
				return
			case <-tick.C:
			}
		}
	}()
	err := fn()
	close(done)
	<-erased
	return err
}

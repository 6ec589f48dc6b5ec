package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// holdEngine is sizedEngine whose archive uploads run serve; each request's query and
// container are sent on the returned channel when it arrives, before serve runs.
func holdEngine(t *testing.T, serve func(w http.ResponseWriter, r *http.Request)) (*fakeEngine, chan *http.Request) {
	f := sizedEngine(t, "1.41")
	arrived := make(chan *http.Request, 1)
	f.locked(func() {
		f.archive = func(w http.ResponseWriter, r *http.Request, c fakeContainer) {
			arrived <- r
			serve(w, r)
		}
	})
	return f, arrived
}

func received[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s after 10 s", what)
	}
	panic("unreachable")
}

// stillHeld checks that the engine has not answered the hold for a while.
func stillHeld(t *testing.T, m *Mounted) {
	t.Helper()
	select {
	case <-m.Done():
		t.Fatalf("the hold ended before Release: %v", m.Err())
	case <-time.After(100 * time.Millisecond):
	}
}

func TestHoldMountedRelease(t *testing.T) {
	bodies := make(chan []byte, 1)
	f, arrived := holdEngine(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		bodies <- b
		if err != nil {
			apiError(w, http.StatusBadRequest, "%v", err)
		} else if _, err := tar.NewReader(bytes.NewReader(b)).Next(); err != io.EOF {
			apiError(w, http.StatusBadRequest, "not an empty archive: %v", err)
		}
	})
	m := f.client().HoldMounted(ctxFor(t), "web")
	r := received(t, arrived, "upload")
	if q := r.URL.Query(); r.URL.Path != "/v1.41/containers/web/archive" || q.Get("path") != "/" || q.Get("noOverwriteDirNonDir") != "true" {
		t.Errorf("upload to %s?%s", r.URL.Path, r.URL.RawQuery)
	}
	stillHeld(t, m)
	if err := m.Release(); err != nil {
		t.Fatal(err)
	}
	if b := received(t, bodies, "body"); len(b) != 1024 || !bytes.Equal(b, make([]byte, 1024)) {
		t.Errorf("body of %d bytes, want 1024 zero bytes", len(b))
	}
	select {
	case <-m.Done():
	default:
		t.Error("Done not closed after Release")
	}
	if m.Err() != nil {
		t.Error(m.Err())
	}
}

// TestHoldMountedRefused: a read-only root filesystem, or a container gone, is refused without
// the engine reading the body. dockerd's HTTP server (net/http, not full duplex) holds its
// answer back until the body is complete, so the hold ends at Release; an engine that answers
// early ends it at once.
func TestHoldMountedRefused(t *testing.T) {
	for _, tc := range []struct {
		name, ref  string
		fullDuplex bool
		want       string
	}{
		{"read-only", "web", false, "container rootfs is marked read-only"},
		{"read-only, answered early", "web", true, "container rootfs is marked read-only"},
		{"gone", "gone", false, "No such container: gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answered := make(chan struct{})
			f, _ := holdEngine(t, func(w http.ResponseWriter, r *http.Request) {
				apiError(w, http.StatusBadRequest, "container rootfs is marked read-only")
				if tc.fullDuplex {
					http.NewResponseController(w).EnableFullDuplex()
					w.(http.Flusher).Flush()
				}
				close(answered)
			})
			m := f.client().HoldMounted(ctxFor(t), tc.ref)
			if tc.fullDuplex {
				received(t, m.Done(), "early answer")
				if m.Err() == nil || !strings.Contains(m.Err().Error(), tc.want) {
					t.Errorf("Err %v, want %q", m.Err(), tc.want)
				}
			} else {
				if tc.ref != "gone" {
					received(t, answered, "answer")
				}
				stillHeld(t, m)
			}
			if err := m.Release(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Release: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHoldMountedCancelled(t *testing.T) {
	f, arrived := holdEngine(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	ctx, cancel := context.WithCancel(ctxFor(t))
	m := f.client().HoldMounted(ctx, "web")
	received(t, arrived, "upload")
	cancel()
	received(t, m.Done(), "end of the hold")
	if err := m.Release(); !errors.Is(err, context.Canceled) {
		t.Errorf("Release after the context ended: %v", err)
	}
}

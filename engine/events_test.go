package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dmsize/dmsize/size"
)

func TestMain(m *testing.M) {
	reconnectDelay = 5 * time.Millisecond
	m.Run()
}

// follower runs Follow in the background and records what it does.
type follower struct {
	t    *testing.T
	log  *logtest.Hook
	stop func() // cancels Follow and waits for it to return

	mu                       sync.Mutex
	got                      []Event
	resyncs, active, maxSeen int
	uncancelled              int // resyncs that returned before their context ended
}

// follow starts Follow on c. Each resync blocks until its context ends, then takes 20 ms more
// to return, so that overlapping resyncs show.
func follow(t *testing.T, c *Client) *follower {
	logger, hook := logtest.NewNullLogger()
	fl := &follower{t: t, log: hook}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Follow(ctx, logger, fl.resync, func(_ context.Context, ev Event) {
			fl.mu.Lock()
			defer fl.mu.Unlock()
			fl.got = append(fl.got, ev)
		})
	}()
	fl.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Follow did not return after its context ended")
		}
	}
	t.Cleanup(cancel)
	return fl
}

func (fl *follower) resync(ctx context.Context) {
	fl.mu.Lock()
	fl.resyncs++
	fl.active++
	fl.maxSeen = max(fl.maxSeen, fl.active)
	fl.mu.Unlock()
	<-ctx.Done()
	time.Sleep(20 * time.Millisecond)
	fl.mu.Lock()
	fl.active--
	fl.mu.Unlock()
}

// waitFor waits until cond, checked with the follower locked, holds.
func (fl *follower) waitFor(what string, cond func() bool) {
	fl.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		fl.mu.Lock()
		ok := cond()
		fl.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			fl.t.Fatalf("waited 10 s for %s", what)
		}
	}
}

// events waits for n events and returns them as "action id" strings.
func (fl *follower) events(n int) []string {
	fl.t.Helper()
	fl.waitFor(fmt.Sprintf("%d events", n), func() bool { return len(fl.got) >= n })
	fl.mu.Lock()
	defer fl.mu.Unlock()
	var s []string
	for _, ev := range fl.got {
		s = append(s, ev.Action+" "+ev.ID)
	}
	return s
}

func ev(action, id string, timeNano int64) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: events.Action(action), Actor: events.Actor{ID: id}, TimeNano: timeNano}
}

func TestFollow(t *testing.T) {
	f := newFakeEngine(t, "1.41")
	labels := map[string]string{size.Label: "20G", "image": "busybox", "name": "web"}
	create := ev("create", "a", 1700000000123456789)
	create.Actor.Attributes = labels
	network := ev("connect", "n", 0)
	network.Type = events.NetworkEventType
	f.script(fakeStream{open: true, live: []events.Message{
		create, ev("exec_start: sh", "a", 0), network, ev("start", "a", 0), ev("die", "a", 0), ev("destroy", "a", 0),
	}})
	fl := follow(t, f.client())
	got := fl.events(4)
	if want := []string{"create a", "start a", "die a", "destroy a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	fl.stop()
	first := fl.got[0]
	if !reflect.DeepEqual(first.Labels, labels) || !first.Time.Equal(time.Unix(1700000000, 123456789)) {
		t.Errorf("create event %+v", first)
	}
	q := f.eventQueries()
	if len(q) != 1 || q[0].Has("since") {
		t.Errorf("event subscriptions %v, want one without since", q)
	}
	args, err := filters.FromJSON(q[0].Get("filters"))
	if err != nil {
		t.Fatal(err)
	}
	if ty, ac := args.Get("type"), args.Get("event"); len(ty) != 1 || ty[0] != "container" || len(ac) != 4 {
		t.Errorf("event filters type %q event %q", ty, ac)
	}
	if fl.resyncs != 1 || fl.active != 0 {
		t.Errorf("%d resyncs, %d still running after Follow returned", fl.resyncs, fl.active)
	}
	if len(fl.log.AllEntries()) != 0 {
		t.Errorf("logged %q", fl.log.LastEntry().Message)
	}
}

// TestFollowResumes: a new stream resumes at the last event received, so that what happened
// between two streams is not lost; the last event, replayed, is not delivered twice.
func TestFollowResumes(t *testing.T) {
	f := newFakeEngine(t, "1.41")
	t1, t2 := time.Now().Add(-time.Second).UnixNano(), time.Now().UnixNano()
	f.script(
		fakeStream{live: []events.Message{ev("create", "a", t1), ev("create", "b", t2), ev("start", "b", t2)}},
		fakeStream{gap: []events.Message{ev("create", "c", 0)}, live: []events.Message{ev("start", "c", 0)}, open: true},
	)
	fl := follow(t, f.client())
	got := fl.events(6)
	fl.stop()
	// "create b" has the time of the last event: the overlap delivers it again.
	want := []string{"create a", "create b", "start b", "create b", "create c", "start c"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	q := f.eventQueries()
	if since := q[1].Get("since"); since != fmt.Sprintf("%d.%09d", t2/1e9, t2%1e9) {
		t.Errorf("second subscription since %q, want the last event's time %d", since, t2)
	}
	if e := fl.log.LastEntry(); e == nil || e.Level != logrus.WarnLevel {
		t.Errorf("the stream's end was not logged as a warning: %v", e)
	}
}

// TestFollowResumesBeforeAnyEvent: a stream that ended before any event still resumes from
// the first connection, so the gap is replayed.
func TestFollowResumesBeforeAnyEvent(t *testing.T) {
	f := newFakeEngine(t, "1.41")
	f.script(fakeStream{}, fakeStream{gap: []events.Message{ev("create", "c", 0)}, open: true})
	fl := follow(t, f.client())
	got := fl.events(1)
	fl.stop()
	if want := []string{"create c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if q := f.eventQueries(); q[0].Has("since") || !q[1].Has("since") {
		t.Errorf("subscriptions %v: want since on the second only", q)
	}
}

// TestFollowOneResyncAtATime: each reconnection cancels the last resync and waits for it.
func TestFollowOneResyncAtATime(t *testing.T) {
	f := newFakeEngine(t, "1.41")
	f.script(fakeStream{}, fakeStream{}, fakeStream{}) // then one that stays open
	fl := follow(t, f.client())
	f.waitSubscribed(4)
	fl.waitFor("the fourth resync", func() bool { return fl.resyncs == 4 })
	fl.stop()
	if fl.maxSeen != 1 || fl.active != 0 {
		t.Errorf("%d resyncs ran at once; %d still running after Follow returned", fl.maxSeen, fl.active)
	}
}

// TestFollowNoEngine: without an engine Follow keeps trying, one resync at a time, until its
// context ends.
func TestFollowNoEngine(t *testing.T) {
	c, err := New("unix://" + filepath.Join(t.TempDir(), "none.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fl := follow(t, c)
	fl.waitFor("three attempts", func() bool { return fl.resyncs >= 3 })
	fl.stop()
	if fl.maxSeen != 1 || fl.active != 0 || len(fl.got) != 0 {
		t.Errorf("max %d resyncs at once, %d running at the end, %d events", fl.maxSeen, fl.active, len(fl.got))
	}
}

package sizer

import (
	"context"
	"sort"
	"time"
)

// Status is what dmsize knows of one container, read without changing anything.
type Status struct {
	Container Container
	Record    Record
	Known     bool        // dmsize has a record of it
	Device    DeviceState // of its thin device
	Persisted int64       // the size the engine reads at its next start
	Held      bool
	FSSize    int64 // the filesystem, when the device is active
	FSUsed    int64 // 0 unless mounted where dmsize can see it
	Last      Outcome
}

// Outcome is the last operation's result on a container, since the plugin started.
type Outcome struct {
	Action Action
	Error  string
	At     time.Time
}

// Status reads container ref's state.
func (s *Sizer) Status(ctx context.Context, ref string) (Status, error) {
	c, err := s.Engine.Container(ctx, ref)
	if err != nil {
		return Status{}, err
	}
	st := Status{Container: c}
	st.Record, st.Known = s.Store.Get(c.ID)
	if o, ok := s.last.Load(c.ID); ok {
		st.Last = o.(Outcome)
	}
	if c.Device == "" {
		return st, nil
	}
	if st.Device, err = s.Devices.State(c.Device); err != nil {
		return st, err
	}
	if st.Persisted, err = s.Sizes.Persisted(c.Device); err != nil {
		return st, err
	}
	st.Held = s.Devices.Held(c.Device)
	if st.Device.Active {
		// Best effort, and safe on a device on its way out: a superblock read or a statfs.
		st.FSSize, st.FSUsed, _ = s.Devices.FS(c.Device)
	}
	return st, nil
}

// Known lists the IDs of every labelled container and every container with a record.
func (s *Sizer) Known(ctx context.Context) ([]string, error) {
	ids, err := s.Engine.SizedContainers(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	for _, r := range s.Store.All() {
		if !seen[r.ID] {
			seen[r.ID] = true
			ids = append(ids, r.ID)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

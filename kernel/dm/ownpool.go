package dm

import (
	"fmt"
	"strconv"
	"strings"
)

// OwnPoolUUIDPrefix marks a thin pool dmsize created itself (the volume pool). Only such a
// pool is sent messages that create or delete thin devices or set the transaction id: every
// other pool belongs to dockerd or containerd, which allocate its ids.
const OwnPoolUUIDPrefix = "DMSIZE-VPOOL-"

// MaxThinID is the largest thin device id a pool accepts (24 bits).
const MaxThinID = 1<<24 - 1

// PoolMsg is a message that changes a pool dmsize owns. Only CreateThin, DeleteThin and
// SetTransactionID make one: the text is formatted here from numbers, never taken from a
// caller. There is no create_snap.
type PoolMsg struct{ text string }

func (m PoolMsg) String() string { return m.text }

// CreateThin asks the pool for a new thin device id (EEXIST if it is in use).
func CreateThin(id uint32) (PoolMsg, error) {
	if id > MaxThinID {
		return PoolMsg{}, fmt.Errorf("%w: thin id %d above %d", ErrRefused, id, MaxThinID)
	}
	return PoolMsg{"create_thin " + strconv.FormatUint(uint64(id), 10)}, nil
}

// DeleteThin deletes thin device id and its blocks (ENODATA if absent, EBUSY if active).
func DeleteThin(id uint32) (PoolMsg, error) {
	if id > MaxThinID {
		return PoolMsg{}, fmt.Errorf("%w: thin id %d above %d", ErrRefused, id, MaxThinID)
	}
	return PoolMsg{"delete " + strconv.FormatUint(uint64(id), 10)}, nil
}

// SetTransactionID moves the pool's transaction id from old to new (EINVAL if it is not old).
func SetTransactionID(old, new uint64) PoolMsg {
	return PoolMsg{"set_transaction_id " + strconv.FormatUint(old, 10) + " " + strconv.FormatUint(new, 10)}
}

// OwnPoolMessage sends m to pool, after checking that the pool is one dmsize created: its
// UUID carries OwnPoolUUIDPrefix and its live table is one thin-pool target. The kernel
// commits the pool's metadata before the ioctl returns.
func (c *Control) OwnPoolMessage(pool string, m PoolMsg) error {
	if m.text == "" {
		return &Error{Op: "pool message", Name: pool, Err: fmt.Errorf("%w: empty message", ErrRefused)}
	}
	info, err := c.Info(pool)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(info.UUID, OwnPoolUUIDPrefix) {
		return &Error{Op: "pool message", Name: pool, Err: fmt.Errorf("%w: %q to a pool dmsize did not create (uuid %q)", ErrRefused, m.text, info.UUID)}
	}
	table, err := c.Table(pool)
	if err != nil {
		return err
	}
	if len(table) != 1 || table[0].Type != "thin-pool" {
		return &Error{Op: "pool message", Name: pool, Err: fmt.Errorf("%w: %q to a device that is not one thin-pool target", ErrRefused, m.text)}
	}
	_, err = c.named("pool message", pool, request{cmd: cmdTargetMsg, payload: encodeMessage(0, m.text), room: defaultRoom})
	return err
}

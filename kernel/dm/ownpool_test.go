//go:build linux

package dm

import (
	"errors"
	"os"
	"testing"
)

func TestPoolMessages(t *testing.T) {
	m, err := CreateThin(7)
	if err != nil || m.String() != "create_thin 7" {
		t.Fatalf("%q %v", m, err)
	}
	m, err = DeleteThin(MaxThinID)
	if err != nil || m.String() != "delete 16777215" {
		t.Fatalf("%q %v", m, err)
	}
	if m := SetTransactionID(4, 5); m.String() != "set_transaction_id 4 5" {
		t.Fatalf("%q", m)
	}
	for _, f := range []func(uint32) (PoolMsg, error){CreateThin, DeleteThin} {
		if _, err := f(MaxThinID + 1); !errors.Is(err, ErrRefused) {
			t.Errorf("id above 24 bits: %v", err)
		}
	}
	c := closedControl()
	if err := c.OwnPoolMessage("vpool", PoolMsg{}); !errors.Is(err, ErrRefused) || errors.Is(err, os.ErrClosed) {
		t.Errorf("a zero PoolMsg: %v", err)
	}
	// Nothing is sent before the pool's uuid is read.
	if err := c.OwnPoolMessage("vpool", SetTransactionID(0, 1)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("closed control: %v", err)
	}
}

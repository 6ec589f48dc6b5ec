package errs

import (
	"errors"
	"fmt"
	"testing"
)

func TestMessages(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{Shrink("filesystem on /dev/dm-3", 10<<30, 5<<29),
			"refusing to shrink filesystem on /dev/dm-3 from 10737418240 to 2684354560 bytes (10.00 GiB to 2.50 GiB)"},
		{&Refusal{What: "label dm.size=42G", Reason: "above the maximum"}, "label dm.size=42G rejected: above the maximum"},
		{Refuse("volume %s is %s", "v", "removing"), "volume v is removing"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}

func TestIsRefusal(t *testing.T) {
	err := fmt.Errorf("growing c1: %w", Shrink("file f", 2, 1))
	var r *Refusal
	if !IsRefusal(err) || !errors.As(err, &r) || r.Current != 2 || r.Requested != 1 {
		t.Fatalf("IsRefusal(%v) = false or %+v", err, r)
	}
	if IsRefusal(errors.New("EIO")) || IsRefusal(nil) {
		t.Fatal("a failure is not a refusal")
	}
}

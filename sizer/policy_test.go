package sizer

import (
	"errors"
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	const G = int64(1) << 30
	p := Policy{Max: 1 << 40, Overcommit: 1.5}
	for _, tc := range []struct {
		label            string
		current, pool, o int64
		want             int64
		reason           string
	}{
		{"42G", 10 * G, 100 * G, 0, 42 * G, ""},
		{"42g", 10 * G, 100 * G, 0, 42 * G, ""},
		{"10G", 10 * G, 100 * G, 0, 10 * G, ""}, // the current size: fine, nothing to do
		{"42X", 10 * G, 100 * G, 0, 0, "not a size"},
		{"", 10 * G, 100 * G, 0, 0, "empty size"},
		{"0", 10 * G, 100 * G, 0, 0, "must be positive"},
		{"-5G", 10 * G, 100 * G, 0, 0, "not a size"},
		{"5G", 10 * G, 100 * G, 0, 0, "smaller than the current size 10GiB"},
		{"2T", 10 * G, 100 * T, 0, 0, "above the plugin's maximum 1TiB"},
		{"160G", 10 * G, 100 * G, 0, 0, "the pool cannot hold it"},
		{"100G", 10 * G, 100 * G, 60 * G, 0, "plus 60GiB given to others"},
		{"90G", 10 * G, 100 * G, 60 * G, 90 * G, ""},
	} {
		got, err := p.Check(tc.label, tc.current, tc.pool, tc.o)
		if tc.reason == "" {
			if err != nil || got != tc.want {
				t.Errorf("Check(%q) = %d, %v; want %d", tc.label, got, err, tc.want)
			}
			continue
		}
		var r *Rejection
		if !errors.As(err, &r) || !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), "dm.size="+tc.label) {
			t.Errorf("Check(%q) = %d, %v; want a rejection containing %q", tc.label, got, err, tc.reason)
		}
	}
}

const T = int64(1) << 40

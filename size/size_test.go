package size

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const G = int64(1) << 30
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"42G", 42 * G, ""},
		{"42g", 42 * G, ""},
		{"42GB", 42 * G, ""}, // Docker's grammar: binary even with B
		{"42GiB", 42 * G, ""},
		{" 42G ", 42 * G, ""},
		{"1.5T", 3 * 512 * G, ""},
		{"512M", 512 << 20, ""},
		{"10240k", 10 << 20, ""},
		{"1000", 512, ""}, // whole sectors, rounded down as the engine does
		{"1023", 512, ""},
		{"512", 512, ""},
		{"511", 0, "smaller than one 512-byte sector"},
		{"0", 0, "must be positive"},
		{"0G", 0, "must be positive"},
		{"-1G", 0, "not a size"},
		{"", 0, "empty size"},
		{"G", 0, "not a size"},
		{"42X", 0, "not a size"},
		{"forty-two", 0, "not a size"},
		{"42 G", 42 * G, ""},
		// 8 EiB and more overflow int64 in go-units: too large, not "must be positive".
		{"8192P", 0, "too large"},
		{"100000P", 0, "too large"},
		{"9223372036854775807", 0, "too large"},
		{"1e30", 0, "too large"},
		{"8191P", 8191 << 50, ""},
		{"9223372036854774784", 9223372036854774784, ""}, // the largest float64 under 2^63
		// Docker's grammar has no E unit (go-units stops at P).
		{"8E", 0, "not a size"},
		{"9E", 0, "not a size"},
	} {
		got, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{42 << 30, "42GiB"},
		{512 << 20, "512MiB"},
		{3 << 39, "1.5TiB"},
		{10737418240 + 512, "10GiB (10737418752 bytes)"},
	} {
		if got := Format(tc.in); got != tc.want {
			t.Errorf("Format(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestShort(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0B"},
		{42 << 30, "42GiB"},
		{10737418240 + 512, "10GiB"},
		{354_000_000, "337.6MiB"},
	} {
		if got := Short(tc.in); got != tc.want {
			t.Errorf("Short(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Whatever Parse accepts is a positive whole number of sectors, and stable under Format.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"42G", "1.5T", "1000", "0", "-1", "9999999999999T", "1e3", "0x10", "42GiB", " 7m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := Parse(s)
		if err != nil {
			return
		}
		if b <= 0 || b%Sector != 0 {
			t.Fatalf("Parse(%q) = %d: not a positive whole number of sectors", s, b)
		}
		if Format(b) == "" {
			t.Fatalf("Format(%d) is empty", b)
		}
	})
}

func TestDecimal(t *testing.T) {
	for b, want := range map[int64]string{3 << 30: "3.00GiB", 3865470566: "3.60GiB", 17406362: "16.6MiB", 4096: "4KiB", -2 << 30: "-2.00GiB"} {
		if got := Decimal(b); got != want {
			t.Errorf("Decimal(%d) = %q, want %q", b, got, want)
		}
	}
}

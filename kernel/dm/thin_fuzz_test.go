package dm

import (
	"strings"
	"testing"
)

func statusSeeds() []string {
	seeds := []string{
		"4 3305/32768 1201/65536 - rw discard_passdown queue_if_no_space - 1024 ",
		"1 4111/52224 146/38904 - rw discard_passdown queue_if_no_space - 1024 ",
		"7 10/20 30/40 1234 ro no_discard_passdown error_if_no_space needs_check 5 ",
		"2 1/8 40/40 - out_of_data_space ignore_discard queue_if_no_space - 1024",
		"138752 20971519", "0 -", "-", "Fail", "Error", "", "1 2/3 4/5 -",
	}
	for _, l := range []string{capPoolStatus, capDirectPoolStat, capThinStatus, capPoolTable, capThinTable, capLinear} {
		seeds = append(seeds, strings.SplitN(l, " ", 4)[3])
	}
	return seeds
}

// FuzzParsePoolStatus: never panics; whatever parses is consistent (parsing is deterministic
// and the kernel's rendering of the result parses back to it).
func FuzzParsePoolStatus(f *testing.F) {
	for _, s := range statusSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s, err := ParsePoolStatus(line)
		again, err2 := ParsePoolStatus(line)
		if (err == nil) != (err2 == nil) || s != again {
			t.Fatalf("not deterministic on %q", line)
		}
		if err != nil {
			return
		}
		if !s.Fail && (s.UsedMetaBlocks > s.TotalMetaBlocks || s.UsedDataBlocks > s.TotalDataBlocks) {
			t.Fatalf("%q: used exceeds total: %+v", line, s)
		}
		checkPoolStatusReparse(t, s)
	})
}

func FuzzParseThinStatus(f *testing.F) {
	for _, s := range statusSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s, err := ParseThinStatus(line)
		again, err2 := ParseThinStatus(line)
		if (err == nil) != (err2 == nil) || s != again {
			t.Fatalf("not deterministic on %q", line)
		}
		if err != nil {
			return
		}
		checkThinStatusReparse(t, s)
	})
}

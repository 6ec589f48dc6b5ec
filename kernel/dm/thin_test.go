package dm

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Lines captured from dmsetup table/status in the test VM (Debian 6.1, Docker 20.10
// devicemapper), verbatim, trailing spaces included.
const (
	capPoolTable       = "0 8388608 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing "
	capPoolStatus      = "0 8388608 thin-pool 4 3305/32768 1201/65536 - rw discard_passdown queue_if_no_space - 1024 "
	capThinTable       = "0 20971520 thin 253:0 4"
	capThinStatus      = "0 20971520 thin 138752 20971519"
	capDirectPoolTable = "0 39837696 thin-pool 253:0 253:1 1024 7780 1 skip_block_zeroing "
	capDirectPoolStat  = "0 39837696 thin-pool 1 4111/52224 146/38904 - rw discard_passdown queue_if_no_space - 1024 "
	capLinear          = "0 39837696 linear 254:32 2048"
)

// splitLine splits a dmsetup line the way Target holds it: Params is what follows the type.
func splitLine(t *testing.T, line string) Target {
	t.Helper()
	f := strings.SplitN(line, " ", 4)
	if len(f) != 4 {
		t.Fatalf("bad captured line %q", line)
	}
	start, err1 := strconv.ParseUint(f[0], 10, 64)
	length, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad captured line %q", line)
	}
	return Target{Start: start, Length: length, Type: f[2], Params: f[3]}
}

func TestCapturedLinesSplit(t *testing.T) {
	got := splitLine(t, capPoolStatus)
	want := Target{0, 8388608, "thin-pool", "4 3305/32768 1201/65536 - rw discard_passdown queue_if_no_space - 1024 "}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got := splitLine(t, capLinear); got.Type != "linear" || got.Params != "254:32 2048" {
		t.Fatalf("linear: %+v", got)
	}
}

// parseCase is one line for a parser: what it must give, or that it must fail.
type parseCase[T any] struct {
	name, in string
	want     T
	err      bool
}

// runParse runs the cases through parse; check, on every line that parses, is the round trip.
func runParse[T any](t *testing.T, cases []parseCase[T], parse func(string) (T, error), check func(*testing.T, T)) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(tt.in)
			if tt.err {
				if err == nil {
					t.Fatalf("want error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
			check(t, got)
		})
	}
}

func TestParsePoolTable(t *testing.T) {
	tests := []parseCase[PoolTable]{
		{name: "loop-lvm", in: splitLine(t, capPoolTable).Params,
			want: PoolTable{"7:1", "7:0", 128, 32768, []string{"skip_block_zeroing"}}},
		{name: "direct-lvm", in: splitLine(t, capDirectPoolTable).Params,
			want: PoolTable{"253:0", "253:1", 1024, 7780, []string{"skip_block_zeroing"}}},
		{name: "no features", in: "7:1 7:0 128 32768 0 ", want: PoolTable{"7:1", "7:0", 128, 32768, nil}},
		{name: "several features", in: "/dev/loop1 /dev/loop0 256 10 3 skip_block_zeroing no_discard_passdown error_if_no_space",
			want: PoolTable{"/dev/loop1", "/dev/loop0", 256, 10, []string{"skip_block_zeroing", "no_discard_passdown", "error_if_no_space"}}},
		{name: "empty", in: "", err: true},
		{name: "short", in: "7:1 7:0 128 32768", err: true},
		{name: "count too high", in: "7:1 7:0 128 32768 2 skip_block_zeroing", err: true},
		{name: "count too low", in: "7:1 7:0 128 32768 0 skip_block_zeroing", err: true},
		{name: "bad block size", in: "7:1 7:0 x 32768 0", err: true},
		{name: "negative low water", in: "7:1 7:0 128 -1 0", err: true},
		{name: "bad count", in: "7:1 7:0 128 1 one", err: true},
	}
	runParse(t, tests, ParsePoolTable, func(t *testing.T, got PoolTable) {
		again, err := ParsePoolTable(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("round trip of %q: %+v, %v", got.String(), again, err)
		}
	})
	if s := (PoolTable{"7:1", "7:0", 128, 32768, []string{"skip_block_zeroing"}}).String(); s != "7:1 7:0 128 32768 1 skip_block_zeroing" {
		t.Fatalf("String: %q", s)
	}
}

func TestParsePoolStatus(t *testing.T) {
	rw := func(s PoolStatus) PoolStatus { return s }
	tests := []parseCase[PoolStatus]{
		{name: "loop-lvm", in: splitLine(t, capPoolStatus).Params, want: PoolStatus{
			TransactionID: 4, UsedMetaBlocks: 3305, TotalMetaBlocks: 32768, UsedDataBlocks: 1201, TotalDataBlocks: 65536,
			HeldMetadataRoot: "-", Mode: "rw", DiscardPassdown: true, MetaLowWaterBlocks: 1024}},
		{name: "direct-lvm", in: splitLine(t, capDirectPoolStat).Params, want: PoolStatus{
			TransactionID: 1, UsedMetaBlocks: 4111, TotalMetaBlocks: 52224, UsedDataBlocks: 146, TotalDataBlocks: 38904,
			HeldMetadataRoot: "-", Mode: "rw", DiscardPassdown: true, MetaLowWaterBlocks: 1024}},
		{name: "ro needs_check held root", in: "7 10/20 30/40 1234 ro no_discard_passdown error_if_no_space needs_check 5 ", want: rw(PoolStatus{
			TransactionID: 7, UsedMetaBlocks: 10, TotalMetaBlocks: 20, UsedDataBlocks: 30, TotalDataBlocks: 40,
			HeldMetadataRoot: "1234", Mode: "ro", ErrorIfNoSpace: true, NeedsCheck: true, MetaLowWaterBlocks: 5})},
		{name: "out of data space", in: "2 1/8 40/40 - out_of_data_space discard_passdown queue_if_no_space - 1024", want: PoolStatus{
			TransactionID: 2, UsedMetaBlocks: 1, TotalMetaBlocks: 8, UsedDataBlocks: 40, TotalDataBlocks: 40,
			HeldMetadataRoot: "-", Mode: "out_of_data_space", DiscardPassdown: true, MetaLowWaterBlocks: 1024}},
		{name: "ignore_discard", in: "0 1/8 0/40 - rw ignore_discard queue_if_no_space - 1024", want: PoolStatus{
			UsedMetaBlocks: 1, TotalMetaBlocks: 8, TotalDataBlocks: 40,
			HeldMetadataRoot: "-", Mode: "rw", IgnoreDiscard: true, MetaLowWaterBlocks: 1024}},
		{name: "old kernel, no watermark", in: "1 2/3 4/5 - rw discard_passdown queue_if_no_space - ", want: PoolStatus{
			TransactionID: 1, UsedMetaBlocks: 2, TotalMetaBlocks: 3, UsedDataBlocks: 4, TotalDataBlocks: 5,
			HeldMetadataRoot: "-", Mode: "rw", DiscardPassdown: true}},
		{name: "oldest kernel", in: "1 2/3 4/5 -", want: PoolStatus{
			TransactionID: 1, UsedMetaBlocks: 2, TotalMetaBlocks: 3, UsedDataBlocks: 4, TotalDataBlocks: 5, HeldMetadataRoot: "-"}},
		{name: "future field ignored", in: "1 2/3 4/5 - rw discard_passdown queue_if_no_space - 9 whatever", want: PoolStatus{
			TransactionID: 1, UsedMetaBlocks: 2, TotalMetaBlocks: 3, UsedDataBlocks: 4, TotalDataBlocks: 5,
			HeldMetadataRoot: "-", Mode: "rw", DiscardPassdown: true, MetaLowWaterBlocks: 9}},
		{name: "Fail", in: "Fail", want: PoolStatus{Fail: true}},
		{name: "Fail with space", in: "Fail ", want: PoolStatus{Fail: true}},
		{name: "Error", in: "Error", err: true},
		{name: "empty", in: "", err: true},
		{name: "blank", in: "   ", err: true},
		{name: "short", in: "4 3305/32768 1201/65536", err: true},
		{name: "bad tid", in: "x 1/2 1/2 -", err: true},
		{name: "no slash", in: "4 3305 1201/65536 -", err: true},
		{name: "two slashes", in: "4 1/2/3 1201/65536 -", err: true},
		{name: "used over total", in: "4 3/2 1/2 -", err: true},
		{name: "empty ratio", in: "4 / 1/2 -", err: true},
		{name: "bad held root", in: "4 1/2 1/2 root", err: true},
		{name: "bad mode", in: "4 1/2 1/2 - rx", err: true},
		{name: "Fail as mode", in: "4 1/2 1/2 - Fail", err: true},
		{name: "bad discard", in: "4 1/2 1/2 - rw discard", err: true},
		{name: "bad no space", in: "4 1/2 1/2 - rw discard_passdown panic_if_no_space", err: true},
		{name: "bad needs_check", in: "4 1/2 1/2 - rw discard_passdown queue_if_no_space check", err: true},
		{name: "bad watermark", in: "4 1/2 1/2 - rw discard_passdown queue_if_no_space - -1", err: true},
		{name: "overflow", in: "18446744073709551616 1/2 1/2 -", err: true},
	}
	runParse(t, tests, ParsePoolStatus, checkPoolStatusReparse)
}

func TestParseThinTable(t *testing.T) {
	tests := []parseCase[ThinTable]{
		{name: "captured", in: splitLine(t, capThinTable).Params, want: ThinTable{PoolDev: "253:0", DevID: 4}},
		{name: "external origin", in: "253:0 17 7:3 ", want: ThinTable{"253:0", 17, "7:3"}},
		{name: "max id", in: "253:0 16777215", want: ThinTable{PoolDev: "253:0", DevID: 1<<24 - 1}},
		{name: "id too big", in: "253:0 16777216", err: true},
		{name: "empty", in: "", err: true},
		{name: "one field", in: "253:0", err: true},
		{name: "four fields", in: "253:0 1 7:3 x", err: true},
		{name: "bad id", in: "253:0 one", err: true},
	}
	runParse(t, tests, ParseThinTable, func(t *testing.T, got ThinTable) {
		if again, err := ParseThinTable(got.String()); err != nil || again != got {
			t.Fatalf("round trip of %q: %+v, %v", got.String(), again, err)
		}
	})
	if s := (ThinTable{PoolDev: "253:0", DevID: 4}).String(); s != "253:0 4" {
		t.Fatalf("String: %q", s)
	}
}

func TestParseThinStatus(t *testing.T) {
	tests := []parseCase[ThinStatus]{
		{name: "captured", in: splitLine(t, capThinStatus).Params, want: ThinStatus{MappedSectors: 138752, HighestMappedSector: 20971519}},
		{name: "nothing mapped", in: "0 -", want: ThinStatus{HighestUnknown: true}},
		{name: "lone dash", in: "-", want: ThinStatus{HighestUnknown: true}},
		{name: "Fail", in: "Fail", want: ThinStatus{Fail: true}},
		{name: "trailing space", in: "128 127 ", want: ThinStatus{MappedSectors: 128, HighestMappedSector: 127}},
		{name: "Error", in: "Error", err: true},
		{name: "empty", in: "", err: true},
		{name: "one number", in: "128", err: true},
		{name: "three fields", in: "128 127 1", err: true},
		{name: "bad mapped", in: "x 127", err: true},
		{name: "bad highest", in: "128 y", err: true},
		{name: "negative", in: "-1 127", err: true},
	}
	runParse(t, tests, ParseThinStatus, checkThinStatusReparse)
}

func TestParseErrorsNameTheLine(t *testing.T) {
	_, err := ParsePoolStatus("4 3/2 1/2 -")
	if err == nil || !strings.Contains(err.Error(), `"4 3/2 1/2 -"`) || !strings.HasPrefix(err.Error(), "dm: thin-pool status") {
		t.Fatalf("error %v", err)
	}
}

// formatPoolStatus writes s back as the kernel would; the fuzzers check that it re-parses to s.
func formatPoolStatus(s PoolStatus) string {
	if s.Fail {
		return "Fail"
	}
	line := strconv.FormatUint(s.TransactionID, 10) + " " +
		strconv.FormatUint(s.UsedMetaBlocks, 10) + "/" + strconv.FormatUint(s.TotalMetaBlocks, 10) + " " +
		strconv.FormatUint(s.UsedDataBlocks, 10) + "/" + strconv.FormatUint(s.TotalDataBlocks, 10) + " " +
		s.HeldMetadataRoot
	if s.Mode == "" {
		return line
	}
	discard := "no_discard_passdown"
	if s.DiscardPassdown {
		discard = "discard_passdown"
	} else if s.IgnoreDiscard {
		discard = "ignore_discard"
	}
	space := "queue_if_no_space"
	if s.ErrorIfNoSpace {
		space = "error_if_no_space"
	}
	check := "-"
	if s.NeedsCheck {
		check = "needs_check"
	}
	return line + " " + s.Mode + " " + discard + " " + space + " " + check + " " + strconv.FormatUint(s.MetaLowWaterBlocks, 10) + " "
}

func checkPoolStatusReparse(t *testing.T, s PoolStatus) {
	t.Helper()
	line := formatPoolStatus(s)
	again, err := ParsePoolStatus(line)
	if err != nil || again != s {
		t.Fatalf("%+v formats as %q, which parses as %+v, %v", s, line, again, err)
	}
}

func formatThinStatus(s ThinStatus) string {
	switch {
	case s.Fail:
		return "Fail"
	case s.HighestUnknown:
		return strconv.FormatUint(s.MappedSectors, 10) + " -"
	}
	return strconv.FormatUint(s.MappedSectors, 10) + " " + strconv.FormatUint(s.HighestMappedSector, 10)
}

func checkThinStatusReparse(t *testing.T, s ThinStatus) {
	t.Helper()
	line := formatThinStatus(s)
	again, err := ParseThinStatus(line)
	if err != nil || again != s {
		t.Fatalf("%+v formats as %q, which parses as %+v, %v", s, line, again, err)
	}
}

// Package size is dmsize's size grammar: Docker's own, so that dm.size=42G means exactly what
// `docker run --storage-opt size=42G` means (42×2³⁰ bytes), in whole 512-byte sectors.
package size

import (
	"fmt"
	"math"
	"strings"

	"github.com/docker/go-units"
)

// Label is the container label that asks for a root filesystem size: dm.size=42G.
const Label = "dm.size"

// Sector is the device-mapper sector size: tables are written in these units.
const Sector = 512

// largest is the largest size Parse accepts: the largest float64 under 2⁶³, which go-units
// computes in.
const largest int64 = 1<<63 - 1024

// Parse reads a size in Docker's grammar (units.RAMInBytes: binary multiples, "42G", "42g",
// "42GiB", "42gb", "1.5G", plain bytes). Zero and negative sizes are errors. The result is
// rounded down to whole sectors, as the engine does when it writes a device's table, and must
// be at least one sector.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	b, err := units.RAMInBytes(t)
	if err != nil {
		return 0, fmt.Errorf("size %q: not a size in Docker's grammar (e.g. 42G, 512M, 1.5T)", s)
	}
	// go-units converts a float to int64 without a range check: 2⁶³ bytes and more come back
	// negative on amd64 (it refuses negative input itself) and saturated on arm64.
	if b < 0 || b == math.MaxInt64 {
		return 0, fmt.Errorf("size %q: too large (the largest is %d bytes, 1KiB under 8EiB)", s, largest)
	}
	if b == 0 {
		return 0, fmt.Errorf("size %q: must be positive", s)
	}
	b -= b % Sector
	if b == 0 {
		return 0, fmt.Errorf("size %q: smaller than one %d-byte sector", s, Sector)
	}
	return b, nil
}

// Format renders bytes for people: the largest binary unit that keeps three significant
// digits ("42GiB", "1.5TiB", "512MiB"), plus the exact byte count when that rounds.
func Format(b int64) string {
	h := Short(b)
	if exact, err := units.RAMInBytes(h); err == nil && exact == b {
		return h
	}
	return fmt.Sprintf("%s (%d bytes)", h, b)
}

// Short is Format without the exact byte count: at most four significant digits
// ("337.6MiB"), for tables, where the exact count would not fit.
func Short(b int64) string { return units.BytesSize(float64(b)) }

// Decimal is for log lines: two decimals in GiB, one in MiB, whole KiB ("3.60GiB", "16.6MiB"),
// so that successive lines of a filling pool line up and show small steps.
func Decimal(b int64) string {
	switch {
	case b >= 1<<30 || b <= -1<<30:
		return fmt.Sprintf("%.2fGiB", float64(b)/(1<<30))
	case b >= 1<<20 || b <= -1<<20:
		return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%dKiB", b>>10)
	}
}

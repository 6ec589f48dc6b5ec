package harness

import (
	"strconv"
	"strings"
)

// RootSize runs a throwaway busybox container with the extra `docker run` arguments and returns
// the size in bytes of its root filesystem as `df` inside it reports it.
func (e *Engine) RootSize(runArgs ...string) int64 {
	e.t.Helper()
	args := append([]string{"run", "--rm", "--network", "none"}, runArgs...)
	args = append(args, "busybox", "df", "-P", "-k", "/")
	return ParseDfKiB(e.t, e.Docker(args...))
}

// ParseDfKiB returns the size in bytes from the last line of `df -P -k` output.
func ParseDfKiB(t interface {
	Helper()
	Fatalf(string, ...any)
}, out string) int64 {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 2 {
		t.Fatalf("unexpected df output:\n%s", out)
	}
	kib, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatalf("unexpected df output:\n%s", out)
	}
	return kib << 10
}

// GiB is 2^30 bytes, the G of Docker's size grammar.
const GiB = int64(1) << 30

// About says a root filesystem of got bytes is what a device of want bytes gives: the
// filesystem keeps a few percent for itself.
func About(got, want int64) bool { return got <= want && got >= want*95/100 }

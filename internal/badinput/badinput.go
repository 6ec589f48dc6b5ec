// Package badinput makes the malformed inputs that the tests of dmsize's entry points try
// (authorization requests, the control socket, volume options, labels, containerd's records):
// the seeds themselves, then mutations of them, the same on every run so that a failure
// repeats. A mutation cuts, repeats, flips or splices bytes, or puts in what parsers trip on:
// quotes, braces, percent escapes, NULs, huge numbers, unit suffixes, invalid UTF-8.
package badinput

import (
	"math/rand"
)

// tokens are what a mutation may insert or substitute.
var tokens = []string{
	"", "\x00", "\"", "'", "\\", "{", "}", "[", "]", ":", ",", "null", "true", "-1", "0",
	"9223372036854775807", "18446744073709551616", "1e308", "NaN", "%", "%2F", "%00", "%zz",
	"%63", "/", "//", "/..", "/./", "?", "#", "&", "=", "\n", "\r\n", " ", "\t", "\xff\xfe",
	"\u2028", "G", "T", "iB", "k", "Ki", "E", ".5", "..", "size=", "dm.size", "Labels",
}

// Strings is the seeds, then mutations of them, n in all (at least the seeds).
func Strings(seeds []string, n int) []string {
	out := append([]string(nil), seeds...)
	r := rand.New(rand.NewSource(int64(len(seeds))*7919 + int64(n)))
	for len(out) < n {
		s := []byte(out[r.Intn(len(out))])
		for k := 1 + r.Intn(3); k > 0; k-- {
			s = mutate(r, s, seeds)
		}
		out = append(out, string(s))
	}
	return out
}

func mutate(r *rand.Rand, s []byte, seeds []string) []byte {
	at := func() int { return r.Intn(len(s) + 1) }
	tok := []byte(tokens[r.Intn(len(tokens))])
	switch op := r.Intn(8); {
	case op == 0 && len(s) > 0: // flip a byte
		i := r.Intn(len(s))
		s = append([]byte(nil), s...)
		s[i] ^= byte(1 << r.Intn(8))
		return s
	case op == 1: // cut at a point
		return append([]byte(nil), s[:at()]...)
	case op == 2 && len(s) > 0: // delete a span
		i := r.Intn(len(s))
		j := i + 1 + r.Intn(min(8, len(s)-i))
		return append(append([]byte(nil), s[:i]...), s[j:]...)
	case op == 3: // insert a token
		i := at()
		return append(append(append([]byte(nil), s[:i]...), tok...), s[i:]...)
	case op == 4 && len(s) > 0: // replace a span with a token
		i := r.Intn(len(s))
		j := i + r.Intn(min(8, len(s)-i)+1)
		return append(append(append([]byte(nil), s[:i]...), tok...), s[j:]...)
	case op == 5: // repeat a span
		i := at()
		j := i + r.Intn(len(s)-i+1)
		return append(append(append([]byte(nil), s[:j]...), s[i:j]...), s[j:]...)
	case op == 6: // splice with another seed
		o := seeds[r.Intn(len(seeds))]
		return append(append([]byte(nil), s[:at()]...), o[r.Intn(len(o)+1):]...)
	default: // a random byte
		i := at()
		return append(append(append([]byte(nil), s[:i]...), byte(r.Intn(256))), s[i:]...)
	}
}

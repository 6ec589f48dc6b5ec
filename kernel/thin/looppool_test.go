package thin

import "testing"

func TestGrowTo(t *testing.T) {
	const G = int64(1) << 30
	for _, tc := range []struct {
		plan, cur, want int64
		sectors         uint64
	}{
		{12 * G, 10 * G, 12 * G, uint64(12 * G / 512)},
		{12 * G, 12 * G, 12 * G, uint64(12 * G / 512)},
		// A crash after the file grew and before the pool's reload: the file is longer than
		// a later plan, which must not ask to shrink it.
		{11 * G, 12 * G, 12 * G, uint64(12 * G / 512)},
		{11 * G, 12*G + 100, 12*G + 100, uint64(12 * G / 512)},
	} {
		if got, sectors := growTo(tc.plan, tc.cur); got != tc.want || sectors != tc.sectors {
			t.Errorf("growTo(%d, %d) = %d, %d; want %d, %d", tc.plan, tc.cur, got, sectors, tc.want, tc.sectors)
		}
	}
}

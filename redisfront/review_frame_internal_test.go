package redisfront

import (
	"math"
	"testing"
)

// A bulk length near math.MaxInt made j+size+2 wrap around to a negative
// number, so requestEnd indexed the buffer at a negative offset: one
// 40-byte request ("$9223372036854775807", before AUTH) panicked the
// connection's goroutine and took the whole daemon down.
func TestReviewRequestScanHugeBulkLength(t *testing.T) {
	for _, tc := range []struct {
		in   string
		need int
	}{
		{"*2\r\n$4\r\nECHO\r\n$9223372036854775807\r\nab", math.MaxInt},
		{"*2\r\n$4\r\nECHO\r\n$9223372036854775806\r\nab", math.MaxInt},
		{"*2\r\n$4\r\nECHO\r\n$9223372036854775790\r\n", math.MaxInt},
		{"*9223372036854775807\r\n$4\r\nECHO\r\n", math.MaxInt},
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\n", 26 + 100 + 2},
		{"*3\r\n$3\r\nSET\r\n", 13 + 2*minBulk},
	} {
		end, need, ok := requestScan([]byte(tc.in), &scanState{})
		if end != 0 || !ok || need != tc.need {
			t.Errorf("requestScan(%q) = %d, %d, %v; want 0, %d, true", tc.in, end, need, ok, tc.need)
		}
	}
}

package notify

import (
	"testing"
	"time"
)

// TestBackoffIsCappedByTheOutage: the wait doubles, but never beyond MaxBackoff nor beyond half of
// how long the receiver has been failing, so a receiver back after a short outage is retried soon.
func TestBackoffIsCappedByTheOutage(t *testing.T) {
	lo, hi := time.Second, 5*time.Minute
	for _, tc := range []struct {
		prev, failing, want time.Duration
	}{
		{time.Second, 0, time.Second},                           // never below the minimum
		{time.Second, 10 * time.Second, 2 * time.Second},        // doubling
		{32 * time.Second, 20 * time.Second, 10 * time.Second},  // a 20 s outage: at most 10 s, not 64 s
		{4 * time.Minute, time.Hour, 5 * time.Minute},           // never beyond the maximum
		{16 * time.Second, 100 * time.Second, 32 * time.Second}, // a long outage lets it grow
	} {
		if got := nextBackoff(tc.prev, tc.failing, lo, hi); got != tc.want {
			t.Errorf("after %s, failing for %s: %s, want %s", tc.prev, tc.failing, got, tc.want)
		}
	}
}

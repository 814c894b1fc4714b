package notifier

import (
	"fmt"
	"testing"
)

// TestScheduleIsBounded checks that a policy with huge counts or delays
// (the API accepts any integers) gives a schedule of bounded length and
// pauses, instead of one that exhausts memory or overflows.
func TestScheduleIsBounded(t *testing.T) {
	for _, policy := range []string{
		`{"retries_with_no_delay": 10000000}`,
		`{"minimum_delay_retries": 10000000}`,
		`{"maximum_delay_retries": 10000000}`,
		`{"minimum_delay": 5, "maximum_delay": 50000000}`,
		`{"minimum_delay": 5, "maximum_delay": 50000000, "retry_backoff_function": "arithmetic"}`,
		`{"minimum_delay": 5, "maximum_delay": 50000000, "retry_backoff_function": "geometric"}`,
		`{"maximum_delay": 100000000000, "maximum_delay_retries": 1}`,
	} {
		t.Run(policy, func(t *testing.T) {
			p := policyOf([]byte(fmt.Sprintf(`{"_retry_policy": %s}`, policy)))
			s := p.Schedule()
			if len(s) > maxRetries {
				t.Errorf("%d retries, want at most %d", len(s), maxRetries)
			}
			for _, d := range s {
				if d < 0 || d > maxPause {
					t.Fatalf("pause %v, want within [0, %v]", d, maxPause)
				}
			}
		})
	}
}

// TestRetriedDeliveryHoldsUpOnlyItsSlot hangs the delivery of one message
// and posts more than Config.Concurrency others, one post each: all of
// them are delivered while the first one still hangs.
func TestRetriedDeliveryHoldsUpOnlyItsSlot(t *testing.T) {
	checkHangHoldsOnlyItsSlot(t, 2, 6)
}

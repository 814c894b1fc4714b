package notifier

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldmq/herald/api"
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
	if n := len(DefaultPolicy().Schedule()); n != 14 {
		t.Errorf("default schedule has %d retries, want 14", n)
	}
}

// TestRetriedDeliveryHoldsUpOnlyItsSlot hangs the delivery of one message
// and posts more than Config.Concurrency others, one post each: all of
// them are delivered while the first one still hangs.
func TestRetriedDeliveryHoldsUpOnlyItsSlot(t *testing.T) {
	h := newHarness(t, api.Config{})
	release := make(chan struct{})
	defer close(release)
	var rc *receiver
	rc = newReceiver(t, func(r *http.Request, n int) int {
		rc.mu.Lock()
		body := string(rc.hits[n].Body)
		rc.mu.Unlock()
		if strings.Contains(body, `"hang"`) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return http.StatusNoContent
	})
	h.start(Config{Concurrency: 2, Timeout: time.Minute})
	sub := h.subscribe("q", rc.URL, "")
	h.postBodies("q", `"hang"`)
	eventually(t, "the hanging request", func() bool { return len(rc.all()) == 1 }, rc.describe)
	var ids []string
	for i := range 6 {
		ids = append(ids, h.postBodies("q", strconv.Itoa(i))...)
	}
	eventually(t, "the later messages", func() bool { return rc.hasAll(ids) }, func() string {
		return rc.describe() + " " + h.status("q", sub.ID).String()
	})
	if p := rc.peakInflight(); p > 2 {
		t.Errorf("%d concurrent requests to one subscriber, limit 2", p)
	}
}

package notifier

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// zaqarRetry is testdata/zaqar_retry.json, computed by Zaqar's own code
// (testdata/zaqar_retry.py).
type zaqarRetry struct {
	Step      int                          `json:"step"`
	Defaults  map[string]int               `json:"defaults"`
	Backoff   []map[string]json.RawMessage `json:"backoff"`
	Schedules []struct {
		Policy map[string]any `json:"policy"`
		Pauses []int          `json:"pauses"`
	} `json:"schedules"`
	Overrides []struct {
		Subscription map[string]any `json:"subscription"`
		Queue        map[string]any `json:"queue"`
		Pauses       []int          `json:"pauses"`
	} `json:"overrides"`
}

func loadZaqarRetry(t *testing.T) *zaqarRetry {
	t.Helper()
	b, err := os.ReadFile("testdata/zaqar_retry.json")
	if err != nil {
		t.Fatal(err)
	}
	var z zaqarRetry
	if err := json.Unmarshal(b, &z); err != nil {
		t.Fatal(err)
	}
	return &z
}

// policyDoc is how a policy is stored: under "_retry_policy" of a
// subscription's options or a queue's metadata.
func policyDoc(t *testing.T, p map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"_retry_policy": p})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seconds(ds []time.Duration) []int {
	out := make([]int, len(ds))
	for i, d := range ds {
		if d%time.Second != 0 {
			return nil
		}
		out[i] = int(d / time.Second)
	}
	return out
}

// TestBackoffFunctionsMatchZaqarExamples checks the back-off functions on
// the values worked out by hand from Zaqar's webhook.py for the default
// delays (5..30) and for 1..60.
func TestBackoffFunctionsMatchZaqarExamples(t *testing.T) {
	cases := []struct {
		fn     string
		lo, hi int
		want   []int
	}{
		{"linear", 5, 30, []int{5, 10, 15, 20, 25}},
		{"geometric", 5, 30, []int{5, 7, 12, 19, 30}},
		{"exponential", 5, 30, []int{5, 7, 12, 19, 30}},
		{"arithmetic", 5, 30, []int{5, 7, 12, 20, 30}},
		{"linear", 1, 60, []int{1, 6, 11, 16, 21, 26, 31, 36, 41, 46, 51, 56}},
		{"geometric", 1, 60, []int{1, 1, 2, 3, 5, 7, 11, 17, 26, 39, 59}},
		{"exponential", 1, 60, []int{1, 1, 2, 3, 5, 7, 11, 17, 26, 39, 59}},
		{"arithmetic", 1, 60, []int{1, 2, 4, 7, 11, 17, 23, 31, 39, 49, 60}},
		{"geometric", 15, 40, []int{15, 19, 24, 31, 39}},
		{"arithmetic", 15, 40, []int{15, 17, 22, 30, 40}},
		{"geometric", 1, 11, []int{1, 10}},
		{"arithmetic", 1, 11, []int{1, 11}},
		{"exponential", 7, 45, []int{7, 9, 13, 17, 24, 33, 45}},
		{"arithmetic", 7, 45, []int{7, 8, 12, 17, 25, 34, 45}},
	}
	for _, c := range cases {
		if got := backoff(c.fn, c.lo, c.hi); !slices.Equal(got, c.want) {
			t.Errorf("%s %d..%d = %v, Zaqar %v", c.fn, c.lo, c.hi, got, c.want)
		}
	}
}

// TestBackoffFunctionsMatchZaqar compares every back-off function with
// Zaqar's over 150 (minimum_delay, maximum_delay) pairs, up to 30..3600
// (hundreds of values each): the float arithmetic and Python's int()
// truncation must agree value for value.
func TestBackoffFunctionsMatchZaqar(t *testing.T) {
	z := loadZaqarRetry(t)
	if z.Step != backoffStep {
		t.Fatalf("Zaqar's step is %d, Herald's %d", z.Step, backoffStep)
	}
	if len(z.Backoff) < 100 {
		t.Fatalf("only %d pairs in testdata", len(z.Backoff))
	}
	for _, e := range z.Backoff {
		var lo, hi int
		json.Unmarshal(e["minimum_delay"], &lo)
		json.Unmarshal(e["maximum_delay"], &hi)
		for _, fn := range []string{"linear", "arithmetic", "geometric", "exponential"} {
			var want []int
			if err := json.Unmarshal(e[fn], &want); err != nil {
				t.Fatal(err)
			}
			if got := backoff(fn, lo, hi); !slices.Equal(got, want) {
				t.Errorf("%s %d..%d:\n got %v\nwant %v", fn, lo, hi, got, want)
			}
		}
	}
}

// TestDefaultScheduleIsZaqars checks the whole default schedule: three
// immediate retries, three after minimum_delay, the back-off values, three
// after maximum_delay.
func TestDefaultScheduleIsZaqars(t *testing.T) {
	z := loadZaqarRetry(t)
	want := map[string]int{
		"retries_with_no_delay": defaultRetriesWithNoDelay, "minimum_delay_retries": defaultMinimumDelayRetries,
		"minimum_delay": defaultMinimumDelay, "maximum_delay": defaultMaximumDelay,
		"maximum_delay_retries": defaultMaximumDelayRetries,
	}
	for k, v := range want {
		if z.Defaults[k] != v {
			t.Errorf("default %s: Herald %d, Zaqar %d", k, v, z.Defaults[k])
		}
	}
	got := seconds(DefaultPolicy().Schedule())
	if w := []int{0, 0, 0, 5, 5, 5, 5, 10, 15, 20, 25, 30, 30, 30}; !slices.Equal(got, w) {
		t.Fatalf("default schedule %v, want %v", got, w)
	}
	for _, fn := range []string{"linear", "arithmetic", "geometric", "exponential"} {
		p := DefaultPolicy()
		p.BackoffFunction = fn
		want := append(append([]int{0, 0, 0, 5, 5, 5}, backoffOf(t, z, fn, 5, 30)...), 30, 30, 30)
		if got := seconds(p.Schedule()); !slices.Equal(got, want) {
			t.Errorf("%s: schedule %v, want %v", fn, got, want)
		}
	}
}

func backoffOf(t *testing.T, z *zaqarRetry, fn string, lo, hi int) []int {
	t.Helper()
	for _, e := range z.Backoff {
		var l, h int
		json.Unmarshal(e["minimum_delay"], &l)
		json.Unmarshal(e["maximum_delay"], &h)
		if l == lo && h == hi {
			var out []int
			json.Unmarshal(e[fn], &out)
			return out
		}
	}
	t.Fatalf("no testdata for %d..%d", lo, hi)
	return nil
}

// TestScheduleMatchesZaqarRetryPost reads stored policies the way the
// notifier does and compares their schedules with the pauses Zaqar's
// WebhookTask._retry_post makes against a subscriber that always fails:
// default and custom counts and delays, every back-off function, counts
// of 0 (a phase turned off) and booleans (integers to Python).
func TestScheduleMatchesZaqarRetryPost(t *testing.T) {
	z := loadZaqarRetry(t)
	if len(z.Schedules) == 0 {
		t.Fatal("no schedules in testdata")
	}
	for _, s := range z.Schedules {
		t.Run(fmt.Sprint(s.Policy), func(t *testing.T) {
			p := policyOf(policyDoc(t, s.Policy))
			if p == nil {
				p = DefaultPolicy()
			}
			if got := seconds(p.Schedule()); !slices.Equal(got, s.Pauses) {
				t.Errorf("schedule %v, Zaqar %v", got, s.Pauses)
			}
		})
	}
}

// TestEffectivePolicyFollowsZaqarOverrideRules checks which policy wins
// between a subscription's and its queue's: the subscription's, unless
// either sets ignore_subscription_override, when the queue's wins (the
// defaults when the queue has none).
func TestEffectivePolicyFollowsZaqarOverrideRules(t *testing.T) {
	z := loadZaqarRetry(t)
	if len(z.Overrides) == 0 {
		t.Fatal("no override cases in testdata")
	}
	for _, o := range z.Overrides {
		t.Run(fmt.Sprintf("sub=%v,queue=%v", o.Subscription, o.Queue), func(t *testing.T) {
			p := effectivePolicy(policyOf(policyDoc(t, o.Subscription)), policyOf(policyDoc(t, o.Queue)))
			if got := seconds(p.Schedule()); !slices.Equal(got, o.Pauses) {
				t.Errorf("schedule %v, Zaqar %v", got, o.Pauses)
			}
		})
	}
}

// TestPolicyOfWithoutPolicy checks that documents without a usable
// _retry_policy give none (the other side's, or the defaults, apply).
func TestPolicyOfWithoutPolicy(t *testing.T) {
	for _, doc := range []string{``, `{}`, `{"_retry_policy": null}`, `{"_retry_policy": {}}`,
		`{"post_data": "x"}`, `not json`} {
		if p := policyOf([]byte(doc)); p != nil {
			t.Errorf("policyOf(%s) = %+v, want nil", doc, p)
		}
	}
	p := policyOf([]byte(`{"_retry_policy": {"maximum_delay": null, "retry_backoff_function": null}}`))
	if p == nil || !slices.Equal(seconds(p.Schedule()), seconds(DefaultPolicy().Schedule())) {
		t.Errorf("nulls: %+v, want the defaults", p)
	}
}

package notifier

import (
	"encoding/json"
	"time"

	"github.com/heraldmq/herald/projection"
)

// Zaqar's retry policy defaults (zaqar.common.consts) and the step of its
// back-off functions.
const (
	defaultRetriesWithNoDelay  = 3
	defaultMinimumDelayRetries = 3
	defaultMaximumDelayRetries = 3
	defaultMinimumDelay        = projection.DefaultMinimumDelay
	defaultMaximumDelay        = projection.DefaultMaximumDelay
	backoffStep                = projection.BackoffStep
)

// Policy is a webhook retry policy (contract §3.10.5), already validated
// by the API when it was stored.
type Policy struct {
	RetriesWithNoDelay  int    `json:"retries_with_no_delay"`
	MinimumDelayRetries int    `json:"minimum_delay_retries"`
	MinimumDelay        int    `json:"minimum_delay"`
	MaximumDelay        int    `json:"maximum_delay"`
	MaximumDelayRetries int    `json:"maximum_delay_retries"`
	BackoffFunction     string `json:"retry_backoff_function"`
	IgnoreOverride      bool   `json:"ignore_subscription_override"`
}

// policyOf reads the "_retry_policy" of a subscription's options or a
// queue's metadata; nil when there is none. Keys that are absent (or
// null, which Zaqar fails on) take their defaults; 0 is 0, as Zaqar reads
// it (retries_with_no_delay 0: no immediate retries), and booleans are
// Python's integers 0 and 1.
func policyOf(doc []byte) *Policy {
	var holder struct {
		Policy map[string]any `json:"_retry_policy"`
	}
	if json.Unmarshal(doc, &holder) != nil || len(holder.Policy) == 0 {
		return nil
	}
	m := holder.Policy
	num := func(k string, def int) int {
		switch v := m[k].(type) {
		case float64:
			return int(v)
		case bool:
			if v {
				return 1
			}
			return 0
		}
		return def
	}
	p := &Policy{
		RetriesWithNoDelay:  num("retries_with_no_delay", defaultRetriesWithNoDelay),
		MinimumDelayRetries: num("minimum_delay_retries", defaultMinimumDelayRetries),
		MinimumDelay:        num("minimum_delay", defaultMinimumDelay),
		MaximumDelay:        num("maximum_delay", defaultMaximumDelay),
		MaximumDelayRetries: num("maximum_delay_retries", defaultMaximumDelayRetries),
		BackoffFunction:     "linear",
	}
	if s, ok := m["retry_backoff_function"].(string); ok && s != "" {
		p.BackoffFunction = s
	}
	p.IgnoreOverride, _ = m["ignore_subscription_override"].(bool)
	return p
}

// DefaultPolicy is the policy of a subscription and queue that set none.
func DefaultPolicy() *Policy {
	return &Policy{
		RetriesWithNoDelay: defaultRetriesWithNoDelay, MinimumDelayRetries: defaultMinimumDelayRetries,
		MinimumDelay: defaultMinimumDelay, MaximumDelay: defaultMaximumDelay,
		MaximumDelayRetries: defaultMaximumDelayRetries, BackoffFunction: "linear",
	}
}

// effectivePolicy picks between a subscription's and its queue's policy
// the way Zaqar does: the queue's wins when either says
// ignore_subscription_override, otherwise the subscription's.
func effectivePolicy(sub, queue *Policy) *Policy {
	switch {
	case sub != nil && sub.IgnoreOverride || queue != nil && queue.IgnoreOverride:
		if queue != nil {
			return queue
		}
		return DefaultPolicy()
	case sub != nil:
		return sub
	case queue != nil:
		return queue
	}
	return DefaultPolicy()
}

// A policy is the tenant's and the API accepts any integers in it (as
// Zaqar does), so a schedule is bounded: at most maxRetries retries, each
// pause at most maxPause. A delivery that runs out of them suspends its
// subscription, which is then probed.
const (
	maxRetries = 1000
	maxPause   = 24 * time.Hour
)

// Schedule returns the pauses before each retry after a first attempt
// failed: retries_with_no_delay immediate ones, minimum_delay_retries
// after minimum_delay, one after each value of the back-off function, and
// maximum_delay_retries after maximum_delay. Its length is the number of
// retries.
func (p *Policy) Schedule() []time.Duration {
	var out []time.Duration
	add := func(n int, seconds int) {
		pause := maxPause
		if seconds < int(maxPause/time.Second) {
			pause = time.Duration(seconds) * time.Second
		}
		for ; n > 0 && len(out) < maxRetries; n-- {
			out = append(out, pause)
		}
	}
	add(p.RetriesWithNoDelay, 0)
	add(p.MinimumDelayRetries, p.MinimumDelay)
	for _, s := range backoff(p.BackoffFunction, p.MinimumDelay, p.MaximumDelay) {
		add(1, s)
	}
	add(p.MaximumDelayRetries, p.MaximumDelay)
	return out
}

// backoff is Zaqar's back-off function fn over [lo, hi) with its step of
// 5, computed in float64 with glibc's log10 and pow (see libm.go) and
// truncated like Python's int(); at most its first maxRetries values.
func backoff(fn string, lo, hi int) []int {
	if fn == "linear" {
		var out []int
		for v := lo; v < hi && len(out) < maxRetries; v += backoffStep {
			out = append(out, v)
		}
		return out
	}
	n := (hi - lo) / backoffStep
	if n < 2 {
		return nil // the API refuses such policies; nothing to pause on
	}
	out := make([]int, 0, min(n, maxRetries))
	min, max := float64(lo), float64(hi)
	if fn == "arithmetic" {
		d := 2.0 * (max - min) / (float64(n) * float64(n-1))
		for a := 1; a <= n && len(out) < maxRetries; a++ {
			out = append(out, int(min+float64((a-1)*a)*d/2))
		}
		return out
	}
	if lo <= 0 {
		return nil // Zaqar fails on these (division by zero)
	}
	k := pyPow(10, pyLog10(max/min)/float64(n-1))
	for a := 1; a <= n && len(out) < maxRetries; a++ {
		var v float64
		switch fn {
		case "geometric":
			v = min * pyPow(k, float64(a-1))
		case "exponential":
			v = min / k * pyPow(k, float64(a))
		default:
			return nil
		}
		out = append(out, int(v))
	}
	return out
}

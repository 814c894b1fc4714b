package notifier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldmq/herald/api"
)

// jsonEqual reports whether two JSON documents decode to the same value.
func jsonEqual(t *testing.T, got []byte, want string) bool {
	t.Helper()
	return reflect.DeepEqual(decode(t, got), decode(t, []byte(want)))
}

// waitDelivered waits until the receiver accepted every id and the
// subscription's status counts delivered deliveries.
func waitDelivered(t *testing.T, h *harness, rc *receiver, queue, sub string, ids []string, delivered int64) {
	t.Helper()
	eventually(t, "deliveries", func() bool {
		return rc.hasAll(ids) && h.status(queue, sub).Delivered == delivered
	}, func() string { return rc.describe() + " status " + h.status(queue, sub).String() })
}

func nonZero(ds []time.Duration) []time.Duration {
	out := []time.Duration{}
	for _, d := range ds {
		if d != 0 {
			out = append(out, d)
		}
	}
	return out
}

// TestWebhookDeliversZaqarPayloadPerMessage posts messages to plain,
// delayed and default-ttl queues and checks that each message makes one
// POST whose body is exactly Zaqar's notification object — the message
// as accepted (effective ttl, body, delay on delay queues) plus
// Message_Type and queue_name, no id, href or age — with Herald's
// headers naming the subscription and the message.
func TestWebhookDeliversZaqarPayloadPerMessage(t *testing.T) {
	h := newHarness(t, api.Config{})
	rc := newReceiver(t, nil)
	h.start(Config{})
	h.createQueue("delayed", `{"_default_message_delay": 30}`)
	h.createQueue("short", `{"_default_message_ttl": 120}`)
	subs := map[string]api.NewSubscription{}
	for _, q := range []string{"q", "delayed", "short"} {
		subs[q] = h.subscribe(q, rc.URL, "")
	}

	want := map[string]string{} // delivery id → payload
	ids := h.post("q", `{"body": {"event": "BackupStarted"}, "ttl": 300}`, `{"body": "text"}`,
		`{"body": [1, 2.5, null, true, {"k": "v"}], "ttl": 60}`)
	want[ids[0]] = `{"ttl": 300, "body": {"event": "BackupStarted"}, "Message_Type": "Notification", "queue_name": "q"}`
	want[ids[1]] = `{"ttl": 3600, "body": "text", "Message_Type": "Notification", "queue_name": "q"}`
	want[ids[2]] = `{"ttl": 60, "body": [1, 2.5, null, true, {"k": "v"}], "Message_Type": "Notification", "queue_name": "q"}`
	ids = h.post("delayed", `{"body": 1}`, `{"body": 2, "delay": 5, "ttl": 90}`)
	want[ids[0]] = `{"ttl": 3600, "body": 1, "delay": 30, "Message_Type": "Notification", "queue_name": "delayed"}`
	want[ids[1]] = `{"ttl": 90, "body": 2, "delay": 5, "Message_Type": "Notification", "queue_name": "delayed"}`
	ids = h.post("short", `{"body": null}`, `{"body": {"a": 1}, "delay": 10}`)
	want[ids[0]] = `{"ttl": 120, "body": null, "Message_Type": "Notification", "queue_name": "short"}`
	// No delay on a queue without one: Zaqar drops the message's.
	want[ids[1]] = `{"ttl": 120, "body": {"a": 1}, "Message_Type": "Notification", "queue_name": "short"}`

	eventually(t, "all notifications", func() bool {
		return h.status("q", subs["q"].ID).Delivered == 3 && h.status("delayed", subs["delayed"].ID).Delivered == 2 &&
			h.status("short", subs["short"].ID).Delivered == 2
	}, rc.describe)
	hits := rc.all()
	if len(hits) != len(want) {
		t.Fatalf("%d requests, want one per message (%d): %s", len(hits), len(want), rc.describe())
	}
	seen := map[string]bool{}
	for _, x := range hits {
		id := x.delivery()
		payload, ok := want[id]
		if !ok || seen[id] {
			t.Fatalf("request for delivery %q: unknown or repeated; %s", id, rc.describe())
		}
		seen[id] = true
		if !jsonEqual(t, x.Body, payload) {
			t.Errorf("delivery %s: body %s, want %s", id, x.Body, payload)
		}
		queue := decode(t, x.Body)["queue_name"].(string)
		if got := x.Header.Get(HeaderSubscription); got != subs[queue].ID {
			t.Errorf("delivery %s: %s %q, want %q", id, HeaderSubscription, got, subs[queue].ID)
		}
		if got := x.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type %q", got)
		}
		if got := x.Header.Get("User-Agent"); got != "Herald-Notifier (test-node)" {
			t.Errorf("User-Agent %q", got)
		}
		ts, err := strconv.ParseInt(x.Header.Get(HeaderTimestamp), 10, 64)
		if err != nil || abs(time.Now().Unix()-ts) > 60 {
			t.Errorf("%s %q is not the time of sending", HeaderTimestamp, x.Header.Get(HeaderTimestamp))
		}
	}
	st := h.status("q", subs["q"].ID)
	if st.State != "active" || st.Dropped != 0 || st.ConsecutiveFailures != 0 || st.LastError != nil ||
		st.LastDelivered == nil || st.LastDeliveredAt == nil {
		t.Errorf("status %s", st)
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestWebhookPayloadKeepsDelayZeroOnDelayQueues checks Zaqar's payload for
// a message posted with "delay": 0 to a queue with a default delay: the
// message as accepted has delay 0, and Zaqar's notification says so.
func TestWebhookPayloadKeepsDelayZeroOnDelayQueues(t *testing.T) {
	h := newHarness(t, api.Config{})
	rc := newReceiver(t, nil)
	h.start(Config{})
	h.createQueue("delayed", `{"_default_message_delay": 30}`)
	sub := h.subscribe("delayed", rc.URL, "")
	ids := h.post("delayed", `{"body": 1, "delay": 0}`)
	waitDelivered(t, h, rc, "delayed", sub.ID, ids, 1)
	want := `{"ttl": 3600, "body": 1, "delay": 0, "Message_Type": "Notification", "queue_name": "delayed"}`
	if got := rc.accepted()[0].Body; !jsonEqual(t, got, want) {
		t.Errorf("body %s, want %s", got, want)
	}
}

// TestWebhookPostDataAndPostHeaders checks the subscription options of a
// webhook: post_headers are added (and override Content-Type, as in
// Zaqar), post_data is sent with every "$zaqar_message$" — quotes
// included — replaced by the payload, while an unquoted or embedded
// placeholder stays as it is. Herald's own headers cannot be forged by
// post_headers.
func TestWebhookPostDataAndPostHeaders(t *testing.T) {
	h := newHarness(t, api.Config{})
	rc := newReceiver(t, nil)
	h.start(Config{})
	postData := `{"messages": [{"body": "$zaqar_message$", "ttl": 60}], "copy": ["$zaqar_message$"], "note": "x$zaqar_message$y"}`
	sub := h.subscribe("q", rc.URL, fmt.Sprintf(`{"post_data": %q, "post_headers": {"X-Token": "abc", `+
		`"Content-Type": "application/vnd.test+json", "X-Herald-Delivery": "forged", "X-Herald-Subscription": "forged"}}`, postData))
	ids := h.post("q", `{"body": {"event": "x"}, "ttl": 200}`)
	waitDelivered(t, h, rc, "q", sub.ID, ids, 1)

	x := rc.accepted()[0]
	payload := `{"ttl": 200, "body": {"event": "x"}, "Message_Type": "Notification", "queue_name": "q"}`
	want := `{"messages": [{"body": ` + payload + `, "ttl": 60}], "copy": [` + payload + `], "note": "x$zaqar_message$y"}`
	if !jsonEqual(t, x.Body, want) {
		t.Errorf("body %s\nwant %s", x.Body, want)
	}
	for k, v := range map[string]string{"X-Token": "abc", "Content-Type": "application/vnd.test+json",
		HeaderDelivery: ids[0], HeaderSubscription: sub.ID} {
		if got := x.Header.Values(k); !slices.Equal(got, []string{v}) {
			t.Errorf("header %s: %q, want %q", k, got, v)
		}
	}

	// post_data that is not a string is ignored: the payload is sent.
	rc2 := newReceiver(t, nil)
	sub2 := h.subscribe("q2", rc2.URL, `{"post_data": {"not": "a string"}}`)
	ids = h.post("q2", `{"body": 7}`)
	waitDelivered(t, h, rc2, "q2", sub2.ID, ids, 1)
	if got := rc2.accepted()[0].Body; !jsonEqual(t, got, `{"ttl": 3600, "body": 7, "Message_Type": "Notification", "queue_name": "q2"}`) {
		t.Errorf("body %s", got)
	}
}

// TestWebhookSignature verifies X-Herald-Signature the way a receiver
// would — HMAC-SHA256 keyed with the secret CreateSubscription returned,
// over timestamp "." raw body — independently and with Verify, and checks
// that a tampered body, another timestamp or a wrong secret fail.
func TestWebhookSignature(t *testing.T) {
	h := newHarness(t, api.Config{})
	rc := newReceiver(t, nil)
	h.start(Config{})
	sub := h.subscribe("q", rc.URL, `{"post_data": "{\"wrapped\": \"$zaqar_message$\"}"}`)
	if len(sub.Secret) != 64 {
		t.Fatalf("secret %q: want 32 random bytes in hex", sub.Secret)
	}
	other := h.subscribe("q", rc.URL+"?other", "")
	if other.Secret == sub.Secret || other.Secret == "" {
		t.Fatalf("two subscriptions share secret %q", sub.Secret)
	}
	// Subscribing again names the same subscription, with the same secret.
	if again := h.subscribe("q", rc.URL, ""); again.ID != sub.ID || again.Secret != sub.Secret || again.Created {
		t.Fatalf("re-subscribe: %+v, want %+v", again, sub)
	}
	ids := h.postBodies("q", `{"n": 1}`, `"two"`)
	waitDelivered(t, h, rc, "q", sub.ID, ids, 2)
	eventually(t, "other subscription", func() bool { return h.status("q", other.ID).Delivered == 2 }, rc.describe)

	checked := 0
	for _, x := range rc.accepted() {
		secret := sub.Secret
		if x.Header.Get(HeaderSubscription) == other.ID {
			secret = other.Secret
		}
		tsText, sig := x.Header.Get(HeaderTimestamp), x.Header.Get(HeaderSignature)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(tsText + "." + string(x.Body)))
		if want := "v1=" + hex.EncodeToString(mac.Sum(nil)); sig != want {
			t.Errorf("signature %q, HMAC-SHA256 gives %q", sig, want)
		}
		ts, err := strconv.ParseInt(tsText, 10, 64)
		if err != nil {
			t.Fatalf("timestamp %q", tsText)
		}
		if !Verify(secret, ts, x.Body, sig) {
			t.Errorf("Verify refuses a genuine request")
		}
		tampered := append(slices.Clone(x.Body[:len(x.Body)-1]), ' ', x.Body[len(x.Body)-1])
		if Verify(secret, ts, tampered, sig) {
			t.Errorf("Verify accepts a tampered body")
		}
		if Verify(secret, ts+1, x.Body, sig) {
			t.Errorf("Verify accepts another timestamp")
		}
		if Verify(secret+"0", ts, x.Body, sig) || Verify(other.Secret+sub.Secret, ts, x.Body, sig) {
			t.Errorf("Verify accepts a wrong secret")
		}
		if Verify(secret, ts, x.Body, strings.ToUpper(sig)) || Verify(secret, ts, x.Body, "") {
			t.Errorf("Verify accepts a malformed signature")
		}
		checked++
	}
	if checked != 4 {
		t.Fatalf("checked %d requests, want 4: %s", checked, rc.describe())
	}
}

// TestWebhookRetriesOnSchedule answers 503 to the first N attempts and
// checks that the delivery succeeds on attempt N+1, after exactly the
// first N pauses of the subscription's retry policy.
func TestWebhookRetriesOnSchedule(t *testing.T) {
	const policy = `{"_retry_policy": {"retries_with_no_delay": 1, "minimum_delay_retries": 2, ` +
		`"minimum_delay": 2, "maximum_delay": 12, "maximum_delay_retries": 1}}`
	schedule := policyOf([]byte(policy)).Schedule()
	if want := []time.Duration{0, 2e9, 2e9, 2e9, 7e9, 12e9}; !slices.Equal(schedule, want) {
		t.Fatalf("schedule %v, want %v", schedule, want)
	}
	for _, failures := range []int{1, 2, 4, 6} {
		t.Run(fmt.Sprint(failures), func(t *testing.T) {
			h := newHarness(t, api.Config{})
			rc := newReceiver(t, func(r *http.Request, n int) int {
				if n < failures {
					return http.StatusServiceUnavailable
				}
				return http.StatusNoContent
			})
			h.start(Config{})
			sub := h.subscribe("q", rc.URL, policy)
			ids := h.postBodies("q", `1`)
			waitDelivered(t, h, rc, "q", sub.ID, ids, 1)
			if hits := rc.all(); len(hits) != failures+1 {
				t.Fatalf("%d attempts, want %d: %s", len(hits), failures+1, rc.describe())
			}
			for _, x := range rc.all() {
				if x.delivery() != ids[0] {
					t.Fatalf("attempt for %q, want %q", x.delivery(), ids[0])
				}
			}
			if got, want := h.clock.Pauses(), nonZero(schedule[:failures]); !slices.Equal(got, want) {
				t.Errorf("pauses %v, want %v", got, want)
			}
			st := h.status("q", sub.ID)
			if st.State != "active" || st.ConsecutiveFailures != 0 || st.LastError == nil || *st.LastError != "HTTP 503" || st.LastErrorAt == nil {
				t.Errorf("status %s", st)
			}
		})
	}
}

// TestQueueRetryPolicy checks which retry policy a delivery follows end
// to end: the subscription's over its queue's, the queue's when the
// subscription has none or when the queue's says
// ignore_subscription_override.
func TestQueueRetryPolicy(t *testing.T) {
	const subPolicy = `{"_retry_policy": {"retries_with_no_delay": 1, "minimum_delay_retries": 1, ` +
		`"minimum_delay": 2, "maximum_delay": 12, "maximum_delay_retries": 1}}`
	queuePolicy := func(ignore bool) string {
		return fmt.Sprintf(`{"_retry_policy": {"minimum_delay": 7, "maximum_delay": 20, "maximum_delay_retries": 2, `+
			`"retry_backoff_function": "geometric", "ignore_subscription_override": %v}}`, ignore)
	}
	cases := []struct {
		name, queue, options string
		want                 string // the policy followed
	}{
		{"subscription's", queuePolicy(false), subPolicy, subPolicy},
		{"queue's without one of the subscription", queuePolicy(false), "", queuePolicy(false)},
		{"queue's when it ignores overrides", queuePolicy(true), subPolicy, queuePolicy(true)},
		{"defaults", `{}`, "", `{}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, api.Config{})
			rc := newReceiver(t, func(r *http.Request, n int) int { return http.StatusBadGateway })
			h.start(Config{ProbeInterval: time.Hour})
			h.createQueue("q", c.queue)
			sub := h.subscribe("q", rc.URL, c.options)
			h.postBodies("q", `1`)
			eventually(t, "the schedule to run out", func() bool { return h.status("q", sub.ID).State == "suspended" },
				func() string { return h.status("q", sub.ID).String() })
			p := policyOf([]byte(c.want))
			if p == nil {
				p = DefaultPolicy()
			}
			if got, want := h.clock.Pauses(), nonZero(p.Schedule()); !slices.Equal(got, want) {
				t.Errorf("pauses %v, want %v", got, want)
			}
			if got, want := len(rc.all()), len(p.Schedule())+1; got != want {
				t.Errorf("%d attempts, want %d", got, want)
			}
		})
	}
}

// TestWebhookRefusedIsDroppedNotRetried checks that a 4xx answer (other
// than 408 and 429) refuses a notification for good: one attempt, counted
// as dropped, and the next messages are delivered; a redirect is an
// answer (not followed) and counts as delivered.
func TestWebhookRefusedIsDroppedNotRetried(t *testing.T) {
	h := newHarness(t, api.Config{})
	status := map[float64]int{1: 400, 2: 404, 3: 204, 4: 302, 5: 410, 6: 200}
	rc := newReceiver(t, func(r *http.Request, n int) int { return 0 })
	rc.setRespond(func(r *http.Request, n int) int {
		rc.mu.Lock()
		body := rc.hits[n].Body
		rc.mu.Unlock()
		return status[decode(t, body)["body"].(float64)]
	})
	redirect := newReceiver(t, nil)
	rc.mu.Lock()
	rc.location = redirect.URL
	rc.mu.Unlock()
	h.start(Config{})
	sub := h.subscribe("q", rc.URL, "")
	ids := h.postBodies("q", `1`, `2`, `3`, `4`, `5`)
	eventually(t, "five answers", func() bool {
		st := h.status("q", sub.ID)
		return st.Delivered == 2 && st.Dropped == 3
	}, func() string { return rc.describe() + " " + h.status("q", sub.ID).String() })
	if hits := rc.all(); len(hits) != 5 {
		t.Fatalf("%d requests, want 5 (no retries): %s", len(hits), rc.describe())
	}
	if p := h.clock.Pauses(); len(p) != 0 {
		t.Errorf("paused %v: refused deliveries are not retried", p)
	}
	if got := redirect.all(); len(got) != 0 {
		t.Errorf("redirect followed")
	}
	next := h.postBodies("q", `6`)
	waitDelivered(t, h, rc, "q", sub.ID, append(ids[2:3], next...), 3)
	st := h.status("q", sub.ID)
	if st.State != "active" || st.Dropped != 3 || st.ConsecutiveFailures != 0 || st.LastDelivered == nil {
		t.Errorf("status %s", st)
	}
}

// TestWebhookRetriesTooManyRequestsAndServerErrors checks that 429, 408
// and 5xx answers are retried.
func TestWebhookRetriesTooManyRequestsAndServerErrors(t *testing.T) {
	h := newHarness(t, api.Config{})
	first := map[float64]int{1: 429, 2: 408, 3: 500, 4: 502, 5: 504}
	var mu sync.Mutex
	seen := map[string]bool{}
	var rc *receiver
	rc = newReceiver(t, func(r *http.Request, n int) int {
		rc.mu.Lock()
		x := rc.hits[n]
		rc.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		if !seen[x.delivery()] {
			seen[x.delivery()] = true
			return first[decode(t, x.Body)["body"].(float64)]
		}
		return http.StatusNoContent
	})
	h.start(Config{})
	sub := h.subscribe("q", rc.URL, "")
	ids := h.postBodies("q", `1`, `2`, `3`, `4`, `5`)
	waitDelivered(t, h, rc, "q", sub.ID, ids, 5)
	count := map[string]int{}
	for _, x := range rc.all() {
		count[x.delivery()]++
	}
	for _, id := range ids {
		if count[id] != 2 {
			t.Errorf("delivery %s: %d attempts, want 2", id, count[id])
		}
	}
	if st := h.status("q", sub.ID); st.Dropped != 0 || st.ConsecutiveFailures != 0 {
		t.Errorf("status %s", st)
	}
}

// TestWebhookRetriesTransportErrors checks that a connection closed
// without an answer, and a refused connection, are retried on the policy's
// schedule.
func TestWebhookRetriesTransportErrors(t *testing.T) {
	t.Run("connection closed", func(t *testing.T) {
		h := newHarness(t, api.Config{})
		rc := newReceiver(t, func(r *http.Request, n int) int {
			if n < 2 {
				panic(http.ErrAbortHandler) // closes the connection without an answer
			}
			return http.StatusNoContent
		})
		h.start(Config{})
		sub := h.subscribe("q", rc.URL, "")
		ids := h.postBodies("q", `1`)
		waitDelivered(t, h, rc, "q", sub.ID, ids, 1)
		if n := len(rc.all()); n != 3 {
			t.Errorf("%d attempts, want 3", n)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		h := newHarness(t, api.Config{})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		rc := &receiver{}
		var once sync.Once
		// The receiver comes up during the second pause (after the first
		// attempt, the three immediate retries and one after 5s failed).
		h.clock.onAfter = func(n int) {
			if n == 2 {
				once.Do(func() { rc.listenOn(t, addr) })
			}
		}
		h.start(Config{})
		sub := h.subscribe("q", "http://"+addr+"/hook", "")
		ids := h.postBodies("q", `1`)
		eventually(t, "the receiver", func() bool { return rc.started() }, nil)
		waitDelivered(t, h, rc, "q", sub.ID, ids, 1)
		if got, want := h.clock.Pauses(), []time.Duration{5 * time.Second, 5 * time.Second}; !slices.Equal(got, want) {
			t.Errorf("pauses %v, want %v", got, want)
		}
		if n := len(rc.all()); n != 1 {
			t.Errorf("%d requests reached the receiver, want 1", n)
		}
		st := h.status("q", sub.ID)
		if st.LastError == nil || !strings.Contains(*st.LastError, "refused") || st.ConsecutiveFailures != 0 {
			t.Errorf("status %s", st)
		}
	})
}

// listenOn starts rc serving on addr (an address a receiver used before).
func (rc *receiver) listenOn(t *testing.T, addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Errorf("listen on %s again: %v", addr, err)
		return
	}
	srv := httptest.NewUnstartedServer(rc)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	rc.mu.Lock()
	rc.srv = srv
	rc.mu.Unlock()
}

func (rc *receiver) started() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.srv != nil
}

// TestWebhookTimeoutIsRetried checks that a receiver slower than
// Config.Timeout fails the attempt, which is retried: a receiver slow only
// the first time gets the notification.
func TestWebhookTimeoutIsRetried(t *testing.T) {
	h := newHarness(t, api.Config{})
	rc := newReceiver(t, func(r *http.Request, n int) int {
		if n == 0 {
			select {
			case <-r.Context().Done():
			case <-time.After(waitLimit):
			}
		}
		return http.StatusNoContent
	})
	h.start(Config{Timeout: 300 * time.Millisecond})
	sub := h.subscribe("q", rc.URL, "")
	ids := h.postBodies("q", `1`)
	waitDelivered(t, h, rc, "q", sub.ID, ids, 1)
	hits := rc.all()
	if len(hits) < 2 || hits[0].Status != 0 || hits[len(hits)-1].Status != http.StatusNoContent {
		t.Fatalf("want a timed-out attempt, then a delivery: %s", rc.describe())
	}
	for _, x := range hits {
		if x.delivery() != ids[0] {
			t.Fatalf("attempt for %q, want %q", x.delivery(), ids[0])
		}
	}
	if st := h.status("q", sub.ID); st.LastError == nil || st.ConsecutiveFailures != 0 {
		t.Errorf("status %s: want the timeout as last error", st)
	}
}

// TestWebhookReceiverDownThenBack stops the receiver, posts messages
// while it is down — the status shows consecutive failures and the last
// error — and starts a receiver on the same address again: every message
// is delivered, none is missing.
func TestWebhookReceiverDownThenBack(t *testing.T) {
	h := newHarness(t, api.Config{})
	rc := newReceiver(t, nil)
	h.start(Config{})
	// Long enough a schedule that it does not run out while the receiver
	// is down: up to 2000 retries, 10ms of real time each.
	sub := h.subscribe("q", rc.URL, `{"_retry_policy": {"minimum_delay_retries": 2000}}`)
	first := h.postBodies("q", `0`)
	waitDelivered(t, h, rc, "q", sub.ID, first, 1)

	addr := rc.srv.Listener.Addr().String()
	rc.srv.Close()
	h.clock.setWait(10 * time.Millisecond)
	var ids []string
	for i := 1; i <= 6; i++ {
		ids = append(ids, h.postBodies("q", strconv.Itoa(i))...)
	}
	eventually(t, "failures in the status", func() bool {
		st := h.status("q", sub.ID)
		return st.ConsecutiveFailures >= 10 && st.LastError != nil && st.LastErrorAt != nil
	}, func() string { return h.status("q", sub.ID).String() })
	st := h.status("q", sub.ID)
	if st.State != "active" || st.Delivered != 1 || !strings.Contains(*st.LastError, "refused") {
		t.Errorf("status while down %s", st)
	}

	rc.listenOn(t, addr)
	waitDelivered(t, h, rc, "q", sub.ID, append(first, ids...), 7)
	st = h.status("q", sub.ID)
	if st.State != "active" || st.ConsecutiveFailures != 0 {
		t.Errorf("status after recovery %s", st)
	}
	for _, p := range h.clock.Pauses() {
		if p != 5*time.Second {
			t.Fatalf("paused %v: want the policy's minimum_delay (5s) only", p)
		}
	}
}

// TestExhaustedPolicySuspendsUntilProbeSucceeds runs a retry schedule out
// against a failing receiver: the subscription's delivery state becomes
// "suspended" and its messages stay pending; once the receiver recovers,
// the next probe (ProbeInterval) delivers them all and the state is
// "active" again.
func TestExhaustedPolicySuspendsUntilProbeSucceeds(t *testing.T) {
	h := newHarness(t, api.Config{})
	rc, up := newDownReceiver(t)
	h.start(Config{Concurrency: 1, ProbeInterval: 200 * time.Millisecond})
	sub := h.subscribe("q", rc.URL, "")
	ids := h.postBodies("q", `1`, `2`, `3`)
	eventually(t, "suspension", func() bool { return h.status("q", sub.ID).State == "suspended" },
		func() string { return h.status("q", sub.ID).String() })
	if got, want := h.clock.Pauses(), nonZero(DefaultPolicy().Schedule()); !slices.Equal(got, want) {
		t.Errorf("pauses %v, want the whole default schedule %v", got, want)
	}
	st := h.status("q", sub.ID)
	if st.Delivered != 0 || st.ConsecutiveFailures < 15 || st.LastError == nil {
		t.Errorf("status when suspended %s", st)
	}
	if got := subscriptionField(h, "q", sub.ID, "delivery", "state"); got != "suspended" {
		t.Errorf(`GET says delivery.state %v`, got)
	}

	up()
	waitDelivered(t, h, rc, "q", sub.ID, ids, 3)
	eventually(t, "active again", func() bool { return h.status("q", sub.ID).State == "active" }, nil)
	if st := h.status("q", sub.ID); st.ConsecutiveFailures != 0 || st.Dropped != 0 {
		t.Errorf("status after resuming %s", st)
	}
}

// subscriptionField reads a field of the subscription's GET rendering.
func subscriptionField(h *harness, queue, id string, path ...string) any {
	var v any = h.subscriptionJSON(queue, id)
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// TestSuspendedSubscriptionResumesOnUpdate checks that a PATCH of a
// suspended subscription resumes delivery at once, without waiting for a
// probe.
func TestSuspendedSubscriptionResumesOnUpdate(t *testing.T) {
	h := newHarness(t, api.Config{})
	rc, up := newDownReceiver(t)
	h.start(Config{Concurrency: 1, ProbeInterval: time.Hour})
	sub := h.subscribe("q", rc.URL, "")
	ids := h.postBodies("q", `1`, `2`)
	eventually(t, "suspension", func() bool { return h.status("q", sub.ID).State == "suspended" }, nil)
	up()
	// New messages while suspended are kept, not sent.
	ids = append(ids, h.postBodies("q", `3`)...)
	time.Sleep(100 * time.Millisecond)
	if got := rc.accepted(); len(got) != 0 {
		t.Fatalf("delivered while suspended: %s", rc.describe())
	}
	h.update("q", sub.ID, `{"options": {"note": "fixed"}}`)
	waitDelivered(t, h, rc, "q", sub.ID, ids, 3)
	if st := h.status("q", sub.ID); st.State != "active" {
		t.Errorf("status %s", st)
	}
}

// TestProbeIsNotPostponedByNewMessages keeps posting to a suspended
// subscription more often than ProbeInterval: the probe still happens on
// time, and delivery resumes.
func TestProbeIsNotPostponedByNewMessages(t *testing.T) {
	h := newHarness(t, api.Config{})
	rc, up := newDownReceiver(t)
	h.start(Config{Concurrency: 1, ProbeInterval: 300 * time.Millisecond})
	sub := h.subscribe("q", rc.URL, "")
	ids := h.postBodies("q", `0`)
	eventually(t, "suspension", func() bool { return h.status("q", sub.ID).State == "suspended" }, nil)
	up()
	deadline := time.Now().Add(waitLimit)
	for i := 1; h.status("q", sub.ID).State == "suspended"; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("still suspended after %s of posts every 50ms (probe interval 300ms)", waitLimit)
		}
		ids = append(ids, h.postBodies("q", strconv.Itoa(i))...)
		time.Sleep(50 * time.Millisecond)
	}
	waitDelivered(t, h, rc, "q", sub.ID, ids, int64(len(ids)))
}

// TestSlowSubscriberDoesNotHoldUpOthers blocks every request of one
// receiver: another subscription of the same queue still gets every
// message at once, and the blocked receiver never sees more than
// Config.Concurrency requests at a time; once released it gets them all.
func TestSlowSubscriberDoesNotHoldUpOthers(t *testing.T) {
	const concurrency = 2
	h := newHarness(t, api.Config{})
	release := make(chan struct{})
	slow := newReceiver(t, func(r *http.Request, n int) int {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return http.StatusNoContent
	})
	fast := newReceiver(t, nil)
	h.start(Config{Concurrency: concurrency, Timeout: time.Minute})
	slowSub := h.subscribe("q", slow.URL, "")
	fastSub := h.subscribe("q", fast.URL, "")
	// One post: the eight deliveries are pending together.
	ids := h.postBodies("q", `0`, `1`, `2`, `3`, `4`, `5`, `6`, `7`)
	waitDelivered(t, h, fast, "q", fastSub.ID, ids, 8)
	eventually(t, "the slow receiver saturated", func() bool { return slow.peakInflight() == concurrency }, slow.describe)
	time.Sleep(50 * time.Millisecond) // room for an excess request to show
	if n := len(slow.all()); n != concurrency {
		t.Fatalf("slow receiver got %d requests while blocked, want %d", n, concurrency)
	}
	close(release)
	waitDelivered(t, h, slow, "q", slowSub.ID, ids, 8)
	if p := slow.peakInflight(); p > concurrency {
		t.Errorf("%d concurrent requests to one subscriber, limit %d", p, concurrency)
	}
	if n := len(slow.all()); n != 8 {
		t.Errorf("slow receiver got %d requests for 8 messages: %s", n, slow.describe())
	}
}

// TestConcurrencyOneDeliversInOrder checks that with Concurrency 1 a
// subscription gets its messages in the order they were posted, also when
// some are retried.
func TestConcurrencyOneDeliversInOrder(t *testing.T) {
	h := newHarness(t, api.Config{})
	var mu sync.Mutex
	tries := map[string]int{}
	var rc *receiver
	rc = newReceiver(t, func(r *http.Request, n int) int {
		rc.mu.Lock()
		x := rc.hits[n]
		rc.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		tries[x.delivery()]++
		// Every third message fails twice first.
		if b := decode(t, x.Body)["body"].(float64); int(b)%3 == 0 && tries[x.delivery()] <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	h.start(Config{Concurrency: 1})
	sub := h.subscribe("q", rc.URL, "")
	var ids []string
	ids = append(ids, h.postBodies("q", `0`, `1`, `2`, `3`)...)
	for i := 4; i < 12; i++ {
		ids = append(ids, h.postBodies("q", strconv.Itoa(i))...)
	}
	waitDelivered(t, h, rc, "q", sub.ID, ids, 12)
	if got := rc.acceptedIDs(); !slices.Equal(got, ids) {
		t.Errorf("delivered in order %v, posted %v", got, ids)
	}
}

// TestDeliveryResumesAfterNotifierRestart closes the notifier while a
// delivery hangs, starts a new one on the same replica, and checks that
// every message is delivered, those done before the restart only once.
func TestDeliveryResumesAfterNotifierRestart(t *testing.T) {
	h := newHarness(t, api.Config{})
	var mu sync.Mutex
	hang := true
	rc := newReceiver(t, func(r *http.Request, n int) int {
		mu.Lock()
		hanging := hang && n >= 2
		mu.Unlock()
		if hanging {
			<-r.Context().Done()
		}
		return http.StatusNoContent
	})
	first := h.start(Config{Concurrency: 1, Timeout: time.Minute})
	sub := h.subscribe("q", rc.URL, "")
	ids := h.postBodies("q", `1`, `2`, `3`, `4`, `5`)
	eventually(t, "two deliveries and a hanging one", func() bool { return len(rc.all()) == 3 }, rc.describe)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// Close reported the progress so far to the log; the projection
	// applies it.
	eventually(t, "the progress reported on close", func() bool { return h.status("q", sub.ID).Delivered == 2 },
		func() string { return h.status("q", sub.ID).String() })
	mu.Lock()
	hang = false
	mu.Unlock()
	more := h.postBodies("q", `6`)
	h.start(Config{})
	waitDelivered(t, h, rc, "q", sub.ID, append(ids, more...), 6)
	count := map[string]int{}
	for _, x := range rc.accepted() {
		count[x.delivery()]++
	}
	for _, id := range append(ids, more...) {
		if count[id] != 1 {
			t.Errorf("delivery %s accepted %d times, want once", id, count[id])
		}
	}
}

// TestSlowDeliveryDoesNotHoldUpLaterMessages hangs the delivery of one
// message and posts more, one post each: they are delivered meanwhile, as
// free slots (Config.Concurrency) allow.
func TestSlowDeliveryDoesNotHoldUpLaterMessages(t *testing.T) {
	checkHangHoldsOnlyItsSlot(t, 4, 3)
}

// TestUpdatedSubscriberGetsPendingRetries changes the subscriber URL of a
// subscription whose delivery is being retried against a dead endpoint:
// the retries go to the new URL.
func TestUpdatedSubscriberGetsPendingRetries(t *testing.T) {
	h := newHarness(t, api.Config{})
	dead := newReceiver(t, func(r *http.Request, n int) int { return http.StatusServiceUnavailable })
	fixed := newReceiver(t, nil)
	h.clock.setWait(10 * time.Millisecond)
	h.start(Config{})
	sub := h.subscribe("q", dead.URL, `{"_retry_policy": {"minimum_delay_retries": 100000}}`)
	ids := h.postBodies("q", `1`)
	eventually(t, "failures", func() bool { return len(dead.all()) >= 5 }, dead.describe)
	h.update("q", sub.ID, `{"subscriber": "`+fixed.URL+`"}`)
	waitDelivered(t, h, fixed, "q", sub.ID, ids, 1)
}

// TestDeletedSubscriptionStopsRetrying deletes a subscription whose
// delivery is being retried: the retries stop.
func TestDeletedSubscriptionStopsRetrying(t *testing.T) {
	h := newHarness(t, api.Config{})
	dead := newReceiver(t, func(r *http.Request, n int) int { return http.StatusServiceUnavailable })
	h.clock.setWait(10 * time.Millisecond)
	h.start(Config{Concurrency: 1})
	sub := h.subscribe("q", dead.URL, `{"_retry_policy": {"minimum_delay_retries": 100000}}`)
	h.postBodies("q", `1`)
	eventually(t, "failures", func() bool { return len(dead.all()) >= 5 }, dead.describe)
	if err := h.svc.DeleteSubscription(h.ctx, h.caller, "q", sub.ID); err != nil {
		t.Fatal(err)
	}
	before := len(dead.all())
	time.Sleep(300 * time.Millisecond)
	if after := len(dead.all()); after > before+1 {
		t.Errorf("%d more attempts after the subscription was deleted", after-before)
	}
}

package tests

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Idempotency-Key on POSTs (beyond Zaqar): a retry with the same key and
// request within the window answers the first result and appends nothing.

func idem(key string) map[string]string { return map[string]string{"Idempotency-Key": key} }

// logEnds sums the ends of a node's own log partitions.
func logEnd(t *testing.T, n *node) int64 {
	t.Helper()
	ends, err := n.srv.Log().Ends(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, e := range ends {
		sum += e
	}
	return sum
}

func TestIdempotentMessagePost(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		body := map[string]any{"messages": []any{msg(1), msg(2)}}
		first := c.do("POST", "/v2/queues/q/messages", req{Body: body, Headers: idem("k1")}).expect(t, 201)
		end := logEnd(t, n)
		again := c.do("POST", "/v2/queues/q/messages", req{Body: body, Headers: idem("k1")}).expect(t, 201)
		if string(first.Body) != string(again.Body) || first.Header.Get("Location") != again.Header.Get("Location") {
			t.Fatalf("retry answered %s, first %s", again.Body, first.Body)
		}
		if e := logEnd(t, n); e != end {
			t.Fatalf("retry appended %d events", e-end)
		}
		if msgs := c.get("/v2/queues/q/messages?echo=true").JSON(t)["messages"].([]any); len(msgs) != 2 {
			t.Fatalf("%d messages after a retried post", len(msgs))
		}
		// Same key, another request: refused, nothing posted.
		c.do("POST", "/v2/queues/q/messages", req{Body: map[string]any{"messages": []any{msg(3)}}, Headers: idem("k1")}).
			expectError(t, 422, "Idempotency-Key")
		// Another key posts anew; keys are per project and queue.
		c.do("POST", "/v2/queues/q/messages", req{Body: body, Headers: idem("k2")}).expect(t, 201)
		c.do("POST", "/v2/queues/q2/messages", req{Body: body, Headers: idem("k1")}).expect(t, 201)
		c.inProject("other-"+c.Project).do("POST", "/v2/queues/q/messages", req{Body: body, Headers: idem("k1")}).expect(t, 201)
		if msgs := c.get("/v2/queues/q/messages?echo=true").JSON(t)["messages"].([]any); len(msgs) != 4 {
			t.Fatalf("%d messages, want 4", len(msgs))
		}
		// After the window the key is forgotten.
		n.Clock.Advance(11 * time.Minute)
		c.do("POST", "/v2/queues/q/messages", req{Body: body, Headers: idem("k1")}).expect(t, 201)
		if msgs := c.get("/v2/queues/q/messages?echo=true").JSON(t)["messages"].([]any); len(msgs) != 6 {
			t.Fatalf("%d messages after the window, want 6", len(msgs))
		}
		long := make([]byte, 256)
		for i := range long {
			long[i] = 'k'
		}
		c.do("POST", "/v2/queues/q/messages", req{Body: body, Headers: idem(string(long))}).expect(t, 400)
	})
}

func TestIdempotentClaimAndSubscription(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		c.postMessages("q", msg(1), msg(2), msg(3))
		claim := func() *resp {
			return c.do("POST", "/v2/queues/q/claims?limit=2", req{Body: map[string]any{"ttl": 60}, Headers: idem("c1")}).expect(t, 201)
		}
		first, again := claim(), claim()
		if first.Header.Get("Location") != again.Header.Get("Location") {
			t.Fatalf("retried claim is %s, first %s", again.Header.Get("Location"), first.Header.Get("Location"))
		}
		// The third message is still claimable: the retry claimed nothing.
		_, msgs := mcClaim(c, "q", "", map[string]any{})
		if len(msgs) != 1 {
			t.Fatalf("claimable after a retried claim: %d", len(msgs))
		}
		sub := map[string]any{"subscriber": "http://example.com/a"}
		a := c.do("POST", "/v2/queues/q/subscriptions", req{Body: sub, Headers: idem("s1")}).expect(t, 201)
		b := c.do("POST", "/v2/queues/q/subscriptions", req{Body: sub, Headers: idem("s1")}).expect(t, 201)
		if string(a.Body) != string(b.Body) {
			t.Fatalf("retried subscription %s, first %s", b.Body, a.Body)
		}
	})
}

// TestIdempotentRetriesThatRace sends the same keyed post from many
// clients at once: whichever are appended, apply keeps one.
func TestIdempotentRetriesThatRace(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	body := map[string]any{"messages": []any{msg("once")}}
	answers := make(chan string, 16)
	for range 16 {
		go func() {
			r := c.do("POST", "/v2/queues/q/messages", req{Body: body, Headers: idem("race")})
			answers <- string(r.Body)
		}()
	}
	var got []string
	for range 16 {
		got = append(got, <-answers)
	}
	slices.Sort(got)
	if got[0] != got[15] {
		t.Fatalf("racing retries answered differently: %q vs %q", got[0], got[15])
	}
	if msgs := c.get("/v2/queues/q/messages?echo=true").JSON(t)["messages"].([]any); len(msgs) != 1 {
		t.Fatalf("%d messages from 16 racing retries", len(msgs))
	}
}

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	hlog "github.com/heraldmq/herald/log"
)

// End-to-end tests of dead-letter queues (contract §3.5, §3.7, §6 B5, B6,
// B16; checklist item 49).

// dlPartitions is the harness's partition count (startNode).
const dlPartitions = 8

func dlPartition(c *client, queue string) int32 {
	return hlog.PartitionFor(hlog.QueueKey(c.Project, queue), dlPartitions)
}

// dlQueueName returns a queue name of c's project whose partition is
// (same) or is not (!same) the partition of queue src.
func dlQueueName(c *client, src string, same bool) string {
	c.t.Helper()
	for i := range 1000 {
		q := fmt.Sprintf("dlq-%d", i)
		if (dlPartition(c, q) == dlPartition(c, src)) == same {
			return q
		}
	}
	c.t.Fatalf("no queue name on the same partition (%v) as %s", same, src)
	return ""
}

// dlClaim claims on q with ttl 60 and returns the status and the ids
// of the claimed messages.
func dlClaim(c *client, q string) (int, []string) {
	c.t.Helper()
	r := c.post("/v2/queues/"+q+"/claims", map[string]any{"ttl": 60})
	switch r.Status {
	case 201:
		return 201, mcIDs(mcMessages(c.t, r))
	case 204:
		mcNoContent(c.t, r)
		return 204, nil
	}
	c.t.Fatalf("claim on %s: status %d, body %s", q, r.Status, r.Body)
	return 0, nil
}

// dlClaims claims on q once per entry of want, expecting that status,
// and lets each claim expire before the next one.
func dlClaims(n *node, c *client, q string, want ...int) {
	c.t.Helper()
	for i, status := range want {
		if got, _ := dlClaim(c, q); got != status {
			c.t.Fatalf("claim %d on %s: status %d, want %d", i+1, q, got, status)
		}
		n.Clock.Advance(61 * time.Second)
	}
}

// dlMove creates queue src with a dead-letter queue dlq that takes a
// message on its second claim (plus extra metadata), posts one message
// with body and moves it. It returns the message id.
func dlMove(n *node, c *client, src, dlq string, body any, extra map[string]any) string {
	c.t.Helper()
	meta := map[string]any{"_max_claim_count": 1, "_dead_letter_queue": dlq}
	for k, v := range extra {
		meta[k] = v
	}
	c.put("/v2/queues/"+src, meta).expect(c.t, 201)
	id := c.postMessages(src, msg(body, "ttl", 600))[0]
	if status, ids := dlClaim(c, src); status != 201 || !reflect.DeepEqual(ids, []string{id}) {
		c.t.Fatalf("first claim: %d %v, want 201 [%s]", status, ids, id)
	}
	n.Clock.Advance(61 * time.Second)
	if status, _ := dlClaim(c, src); status != 204 {
		c.t.Fatalf("claim of a message at its max claim count: %d, want 204", status)
	}
	return id
}

// dlExpectMoved checks that message id with body left src and sits in dlq
// once, unclaimed, with the given ttl.
func dlExpectMoved(c *client, src, dlq, id string, body any, ttl int64) {
	c.t.Helper()
	m := c.get(mcMsgHref(dlq, id)).expect(c.t, 200).JSON(c.t)
	if got := keys(m); !reflect.DeepEqual(got, []string{"age", "body", "href", "id", "ttl"}) {
		c.t.Fatalf("dead-lettered message keys %v (an unclaimed message has no claim id)", got)
	}
	if m["id"] != id || m["href"] != mcMsgHref(dlq, id) || !reflect.DeepEqual(m["body"], body) || num(m["ttl"]) != ttl {
		c.t.Fatalf("dead-lettered message %v, want id %s, body %v, ttl %d", m, id, body, ttl)
	}
	mcEqualIDs(c.t, "dead-letter queue", mcIDs(mcList(c, dlq, "echo=true&include_claimed=true")), []string{id})
	mcExpectStats(c, dlq, 1, 0, 1)
	c.get(mcMsgHref(src, id)).expect(c.t, 404)
	mcExpectStats(c, src, 0, 0, 0)
}

func TestDeadLetterItem49(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		c.put("/v2/queues/q", map[string]any{"_max_claim_count": 2, "_dead_letter_queue": "DLQ"}).expect(t, 201)
		body := map[string]any{"event": "x"}
		id := c.postMessages("q", msg(body))[0]
		for i, want := range []int{201, 201, 204} {
			if i > 0 {
				n.Clock.Advance(61 * time.Second) // the claim expired
			}
			status, ids := dlClaim(c, "q")
			if status != want || (want == 201 && !reflect.DeepEqual(ids, []string{id})) {
				t.Fatalf("claim %d: %d %v, want %d", i+1, status, ids, want)
			}
		}
		m := c.get("/v2/queues/DLQ/messages/"+id).expect(t, 200).JSON(t)
		if m["id"] != id || !reflect.DeepEqual(m["body"], body) {
			t.Fatalf("GET /v2/queues/DLQ/messages/%s: %v, want the same body %v", id, m, body)
		}
		c.get("/v2/queues/DLQ/messages").expect(t, 200) // tempest lists it so
		dlExpectMoved(c, "q", "DLQ", id, body, 3600)
	})
}

// TestDeadLetterPartitions moves a message to a dead-letter queue on
// another partition than its queue and to one on the same partition: the
// moved message can be read, listed and claimed there like any other.
func TestDeadLetterPartitions(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		for _, same := range []bool{false, true} {
			t.Run(fmt.Sprintf("same partition %v", same), func(t *testing.T) {
				c := newClient(t, n)
				dlq := dlQueueName(c, "src", same)
				body := []any{"moved", 1.0}
				id := dlMove(n, c, "src", dlq, body, nil)
				dlExpectMoved(c, "src", dlq, id, body, 600)

				// Another client sees it in the default listing: unclaimed.
				other := c.as(newID())
				mcEqualIDs(t, "default listing", mcIDs(mcList(other, dlq, "")), []string{id})
				cid, claimed := mcClaim(other, dlq, "", map[string]any{"ttl": 60})
				mcEqualIDs(t, "claimed in the dead-letter queue", mcIDs(claimed), []string{id})
				if !reflect.DeepEqual(claimed[0]["body"], body) {
					t.Fatalf("claimed body %v, want %v", claimed[0]["body"], body)
				}
				mcExpectStats(c, dlq, 1, 1, 0)
				mcNoContent(t, c.del(mcMsgHref(dlq, id)+"?claim_id="+cid))
				mcExpectStats(c, dlq, 0, 0, 0)
				// The dead-letter queue was created by the move.
				if names := qtNames(t, c); !reflect.DeepEqual(names, mcSorted([]string{"src", dlq})) {
					t.Fatalf("queues %v, want src and %s", names, dlq)
				}
			})
		}
	})
}

// TestDeadLetterOrder: moved messages join the dead-letter queue's tail,
// after what it already holds, in the order they were claimed.
func TestDeadLetterOrder(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		dlq := dlQueueName(c, "src", false)
		old := c.postMessages(dlq, msg("already there"))
		c.put("/v2/queues/src", map[string]any{"_max_claim_count": 1, "_dead_letter_queue": dlq}).expect(t, 201)
		ids := c.postMessages("src", msg(1), msg(2), msg(3))
		if status, got := dlClaim(c, "src"); status != 201 || !reflect.DeepEqual(got, ids) {
			t.Fatalf("first claim %d %v", status, got)
		}
		n.Clock.Advance(61 * time.Second)
		fresh := c.postMessages("src", msg(4))
		// Claimed once: the three move, the fresh one is claimed.
		if status, got := dlClaim(c, "src"); status != 201 || !reflect.DeepEqual(got, fresh) {
			t.Fatalf("second claim %d %v, want 201 %v", status, got, fresh)
		}
		mcEqualIDs(t, "dead-letter queue", mcIDs(mcList(c, dlq, "echo=true")), append(old, ids...))
		mcExpectStats(c, "src", 1, 1, 0)
	})
}

// TestDeadLetterMessagesTTL: _dead_letter_queue_messages_ttl gives the
// moved message a new ttl counted from the move; without it the message
// keeps its ttl and expiry.
func TestDeadLetterMessagesTTL(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		cases := []struct {
			name string
			meta map[string]any
			ttl  int64
			// left is how long the message lives after the move, which
			// dlMove does 61 s after posting it with ttl 600.
			left time.Duration
		}{
			{"unset", nil, 600, 539 * time.Second},
			{"null", map[string]any{"_dead_letter_queue_messages_ttl": nil}, 600, 539 * time.Second},
			{"120", map[string]any{"_dead_letter_queue_messages_ttl": 120}, 120, 120 * time.Second},
			{"3600", map[string]any{"_dead_letter_queue_messages_ttl": 3600}, 3600, 3600 * time.Second},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := newClient(t, n)
				dlq := dlQueueName(c, "src", false)
				id := dlMove(n, c, "src", dlq, "x", tc.meta)
				dlExpectMoved(c, "src", dlq, id, "x", tc.ttl)
				n.Clock.Advance(tc.left - time.Second)
				c.get(mcMsgHref(dlq, id)).expect(t, 200)
				n.Clock.Advance(time.Second)
				c.get(mcMsgHref(dlq, id)).expect(t, 404)
				mcExpectStats(c, dlq, 0, 0, 0)
			})
		}
	})
}

// TestDeadLetterDisabled: a message moves only when both _max_claim_count
// and _dead_letter_queue are set; a null count means no limit (B16).
func TestDeadLetterDisabled(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		cases := []struct {
			name string
			meta map[string]any
		}{
			{"null max claim count", map[string]any{"_max_claim_count": nil, "_dead_letter_queue": "DLQ"}},
			{"zero max claim count", map[string]any{"_max_claim_count": 0, "_dead_letter_queue": "DLQ"}},
			{"no dead-letter queue", map[string]any{"_max_claim_count": 1}},
			{"null dead-letter queue", map[string]any{"_max_claim_count": 1, "_dead_letter_queue": nil}},
			{"dead-letter queue not a name", map[string]any{"_max_claim_count": 1, "_dead_letter_queue": 42}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := newClient(t, n)
				c.put("/v2/queues/q", tc.meta).expect(t, 201)
				id := c.postMessages("q", msg("stays"))[0]
				for i := range 4 {
					if status, ids := dlClaim(c, "q"); status != 201 || !reflect.DeepEqual(ids, []string{id}) {
						t.Fatalf("claim %d: %d %v, want 201 [%s]", i+1, status, ids, id)
					}
					n.Clock.Advance(61 * time.Second)
				}
				if names := qtNames(t, c); !reflect.DeepEqual(names, []string{"q"}) {
					t.Fatalf("queues %v, want only q", names)
				}
				mcExpectStats(c, "q", 1, 0, 1)
			})
		}
	})
}

// TestDeadLetterClaimCount: every claim counts, and renewing or
// releasing a claim keeps the count (B5).
func TestDeadLetterClaimCount(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		setup := func(t *testing.T) (*client, string) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"_max_claim_count": 2, "_dead_letter_queue": "DLQ"}).expect(t, 201)
			return c, c.postMessages("q", msg("m"))[0]
		}

		t.Run("kept across renew and release", func(t *testing.T) {
			c, id := setup(t)
			cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
			mcNoContent(t, c.del("/v2/queues/q/claims/"+cid))
			cid, _ = mcClaim(c, "q", "", map[string]any{"ttl": 60})
			mcNoContent(t, c.do("PATCH", "/v2/queues/q/claims/"+cid, req{Body: map[string]any{"ttl": 120}}))
			mcNoContent(t, c.del("/v2/queues/q/claims/"+cid))
			dlClaims(n, c, "q", 204)
			dlExpectMoved(c, "q", "DLQ", id, "m", 3600)
		})

		t.Run("counted while the queue had no dead-letter settings", func(t *testing.T) {
			c := newClient(t, n)
			id := c.postMessages("q", msg("m"))[0]
			dlClaims(n, c, "q", 201, 201)
			qtPatch(c, "q", []any{
				map[string]any{"op": "add", "path": "/metadata/_max_claim_count", "value": 2},
				map[string]any{"op": "add", "path": "/metadata/_dead_letter_queue", "value": "DLQ"},
			}).expect(t, 200)
			dlClaims(n, c, "q", 204)
			dlExpectMoved(c, "q", "DLQ", id, "m", 3600)
		})

		t.Run("pop reports it", func(t *testing.T) {
			c, _ := setup(t)
			for range 2 {
				cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
				mcNoContent(t, c.del("/v2/queues/q/claims/"+cid))
			}
			popped := mcMessages(t, c.del("/v2/queues/q/messages?pop=1").expect(t, 200))
			if len(popped) != 1 || num(popped[0]["claim_count"]) != 2 {
				t.Fatalf("popped %v, want one message with claim_count 2", popped)
			}
		})
	})
}

// TestDeadLetterRebuild deletes the projection after a move to a
// dead-letter queue on another partition: the node rebuilt from the log
// holds the message there exactly once and has the same digest.
func TestDeadLetterRebuild(t *testing.T) {
	logs := []struct {
		name string
		// first returns the options of the first node; again those of a
		// node with the same log and an empty projection.
		first func(t *testing.T) nodeOptions
		again func(t *testing.T, first *node, o nodeOptions) nodeOptions
	}{
		{"pebble",
			func(t *testing.T) nodeOptions { return nodeOptions{Dir: t.TempDir()} },
			func(t *testing.T, first *node, o nodeOptions) nodeOptions {
				if err := os.RemoveAll(filepath.Join(first.Dir, "projection")); err != nil {
					t.Fatal(err)
				}
				return o
			}},
		{"kafka",
			func(t *testing.T) nodeOptions { return nodeOptions{Brokers: startKafka(t), Topic: "herald-test"} },
			func(t *testing.T, _ *node, o nodeOptions) nodeOptions { o.Dir = t.TempDir(); return o }},
	}
	for _, lc := range logs {
		t.Run(lc.name, func(t *testing.T) {
			opts := lc.first(t)
			n := startNode(t, opts)
			c := newClient(t, n)
			dlq := dlQueueName(c, "src", false)
			id := dlMove(n, c, "src", dlq, "x", nil)
			c.postMessages(dlq, msg("after the move"))
			mcExpectStats(c, dlq, 2, 0, 2)
			n.Stop(t)
			before := digestOf(t, filepath.Join(n.Dir, "projection"))

			for i := range 2 {
				n2 := startNode(t, lc.again(t, n, opts))
				n2.Clock.Advance(time.Duration(n.Clock.offset.Load()))
				c2 := *c
				c2.n, c2.t = n2, t
				got := mcIDs(mcList(&c2, dlq, "echo=true&include_claimed=true"))
				if len(got) != 2 || got[0] != id {
					t.Fatalf("rebuild %d: dead-letter queue holds %v, want %s once and the later message", i, got, id)
				}
				mcExpectStats(&c2, "src", 0, 0, 0)
				n2.Stop(t)
				if after := digestOf(t, filepath.Join(n2.Dir, "projection")); after != before {
					t.Fatalf("rebuild %d: digest %s, before %s", i, after, before)
				}
				n = n2
			}
		})
	}
}

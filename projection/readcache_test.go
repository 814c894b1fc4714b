package projection

import (
	"context"
	"testing"

	hlog "github.com/heraldmq/herald/log"
)

// TestReadCacheFollowsCommits: what the read cache answers changes with
// every applied event that changes a queue's metadata, existence or
// placement, and is unchanged by posts.
func TestReadCacheFollowsCommits(t *testing.T) {
	l, s, p := running(t, ProjectorOptions{})
	ctx := context.Background()
	applied := func(rec *hlog.Record) {
		t.Helper()
		if err := p.WaitApplied(ctx, rec.Partition, rec.Offset); err != nil {
			t.Fatal(err)
		}
	}
	meta := func() (string, bool) {
		t.Helper()
		m, ok, err := s.QueueMetadata("p", "q")
		if err != nil {
			t.Fatal(err)
		}
		return string(m), ok
	}
	if _, ok := meta(); ok {
		t.Fatal("a queue never created exists")
	}
	applied(appendEvent(t, l, "p", "q", 1, hlog.QueueCreated, &hlog.QueueCreatedV1{Metadata: []byte(`{"a":1}`)}))
	if m, ok := meta(); !ok || m != `{"a":1}` {
		t.Fatalf("after create: %q %v", m, ok)
	}
	applied(appendEvent(t, l, "p", "q", 2, hlog.MessagesPosted, &hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{{TTL: 60, Body: []byte(`1`)}}}))
	if m, ok := meta(); !ok || m != `{"a":1}` {
		t.Fatalf("after a post: %q %v", m, ok)
	}
	applied(appendEvent(t, l, "p", "q", 3, hlog.QueuePatched, &hlog.QueuePatchedV1{
		Ops: []hlog.PatchOp{{Op: "replace", Key: "a", Value: []byte(`2`)}}, MaxMessageTTL: 1209600, MaxPostSize: 262144, MaxDelay: 900}))
	if m, ok := meta(); !ok || m != `{"a":2}` {
		t.Fatalf("after patch: %q %v", m, ok)
	}
	if pool, err := s.Placement("p", "q"); err != nil || pool != "" {
		t.Fatalf("placement before placing: %q %v", pool, err)
	}
	applied(appendEvent(t, l, "p", "q", 4, hlog.QueuePlaced, &hlog.QueuePlacedV1{Pool: "east"}))
	if pool, err := s.Placement("p", "q"); err != nil || pool != "east" {
		t.Fatalf("placement after placing: %q %v", pool, err)
	}
	applied(appendEvent(t, l, "p", "q", 5, hlog.QueueDeleted, nil))
	if _, ok := meta(); ok {
		t.Fatal("a deleted queue exists")
	}
}

// TestReadCacheDropsStaleFills: a value read before an invalidation is not
// kept when it is stored after it.
func TestReadCacheDropsStaleFills(t *testing.T) {
	c := newReadCache()
	_, gen, _ := c.queue("k")
	c.invalidate() // a commit between the read and the fill
	c.putQueue("k", cachedQueue{exists: true}, gen)
	if _, _, ok := c.queue("k"); ok {
		t.Fatal("a fill from before the invalidation was kept")
	}
	_, gen, _ = c.placement("k")
	c.putPlacement("k", "pool", gen)
	if p, _, ok := c.placement("k"); !ok || p != "pool" {
		t.Fatalf("a current fill was dropped: %q %v", p, ok)
	}
}

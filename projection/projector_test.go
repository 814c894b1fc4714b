package projection

import (
	"context"
	"fmt"
	"testing"
	"time"

	hlog "github.com/heraldmq/herald/log"
)

// writeLog appends a scripted history with every event type, over time, so
// that messages and claims expire and are swept along the way.
func writeLog(t *testing.T, l hlog.Log) {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	add := func(typ hlog.Type, project, queue string, payload any) {
		t.Helper()
		ev, err := hlog.NewEvent(typ, project, queue, now, payload)
		if err != nil {
			t.Fatal(err)
		}
		ev.ClientID = "0123456789abcdef0123456789abcdef"
		rec, err := ev.Record()
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
		now += int64(7 * time.Second)
	}
	for round := range 30 {
		for _, q := range []string{"a", "b", "c"} {
			p := fmt.Sprintf("p%d", round%2)
			if round == 0 {
				add(hlog.QueueCreated, p, q, &hlog.QueueCreatedV1{Metadata: []byte(`{"k":1}`)})
				// Subscriptions that collect pending deliveries until they
				// expire (600 s) and are swept with them.
				add(hlog.SubscriptionCreated, p, q, &hlog.SubscriptionCreatedV1{Subscriber: "http://h/" + q, TTL: 600, Secret: "s", ConfirmUntil: 1})
			}
			if round == 2 {
				add(hlog.SubscriptionDelivered, p, q, &hlog.SubscriptionDeliveredV1{ID: PositionID(0, 1, 0), Through: 9, Delivered: 3, Failures: 1, LastError: "HTTP 503"})
			}
			add(hlog.MessagesPosted, p, q, &hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{
				{TTL: 60, Body: []byte(`{"r":1}`)}, {TTL: 120, Body: []byte(`"x"`)}, {TTL: 3600, Delay: 30, Body: []byte(`null`)},
			}})
			add(hlog.ClaimCreated, p, q, &hlog.ClaimCreatedV1{TTL: 60, Grace: 60, Limit: 2})
			switch round % 5 {
			case 0:
				add(hlog.MessagesPopped, p, q, &hlog.MessagesPoppedV1{Limit: 1})
			case 1:
				add(hlog.QueuePatched, p, q, &hlog.QueuePatchedV1{Ops: []hlog.PatchOp{{Op: "add", Key: "round", Value: []byte(fmt.Sprint(round))}},
					MaxMessageTTL: 1209600, MaxPostSize: 262144, MaxDelay: 900})
			case 2:
				add(hlog.MessageDeleted, p, q, &hlog.MessageDeletedV1{ID: PositionID(0, 0, 0)})
			case 3:
				add(hlog.QueuePurged, p, q, &hlog.QueuePurgedV1{Messages: true})
			case 4:
				add(hlog.QueueDeleted, p, q, nil)
			}
		}
	}
	add("future.event", "p0", "a", nil) // an unknown type is skipped, not fatal
}

// project applies the whole log into a new store and returns its digest.
func project(t *testing.T, l hlog.Log, batch int) string {
	t.Helper()
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := NewProjector(s, l, ProjectorOptions{Batch: batch})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := s.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReplayIsDeterministic applies the same log several times, with
// different batch sizes, and requires identical projections.
func TestReplayIsDeterministic(t *testing.T) {
	l, err := hlog.OpenPebble(hlog.PebbleOptions{Dir: t.TempDir(), Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	writeLog(t, l)
	want := project(t, l, 512)
	for _, batch := range []int{512, 1, 7} {
		if got := project(t, l, batch); got != want {
			t.Fatalf("batch %d: digest %s, want %s", batch, got, want)
		}
	}
}

// running returns a one-partition log, a store and a started projector
// between them, all closed when the test ends.
func running(t *testing.T, opts ProjectorOptions) (hlog.Log, *Store, *Projector) {
	t.Helper()
	l, err := hlog.OpenPebble(hlog.PebbleOptions{Dir: t.TempDir(), Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProjector(s, l, opts)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Shutdown(context.Background())
		s.Close()
		l.Close()
	})
	return l, s, p
}

// TestSweepRemovesExpired checks that expired messages are physically
// removed at event time, not only hidden.
func TestSweepRemovesExpired(t *testing.T) {
	l, s, p := running(t, ProjectorOptions{})
	ctx := context.Background()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	appendAt := func(at int64, typ hlog.Type, payload any) (int32, int64) {
		ev, _ := hlog.NewEvent(typ, "p", "q", at, payload)
		rec, _ := ev.Record()
		if err := l.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := p.WaitApplied(ctx, rec.Partition, rec.Offset); err != nil {
			t.Fatal(err)
		}
		return rec.Partition, rec.Offset
	}
	appendAt(t0, hlog.MessagesPosted, &hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{{TTL: 60, Body: []byte("1")}, {TTL: 600, Body: []byte("2")}}})
	count := func() int {
		n := 0
		err := scanMessages(s.db, dataPrefix("p", "q"), 0, func(*Message) (bool, error) { n++; return true, nil })
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 2 {
		t.Fatalf("stored %d messages, want 2", n)
	}
	// Any event on the partition after the TTL sweeps the expired message.
	appendAt(t0+int64(61*time.Second), hlog.QueueCreated, &hlog.QueueCreatedV1{Metadata: []byte("{}")})
	if n := count(); n != 1 {
		t.Fatalf("stored %d messages after expiry, want 1", n)
	}
}

// TestReadsDuringDeletes lists and gets messages while they are being
// deleted: a read sees each message whole (header and body) or not at all.
func TestReadsDuringDeletes(t *testing.T) {
	l, s, p := running(t, ProjectorOptions{Batch: 1})
	ctx := context.Background()
	now := time.Now().UnixNano()
	appendEv := func(typ hlog.Type, payload any) *hlog.Record {
		ev, _ := hlog.NewEvent(typ, "p", "q", now, payload)
		rec, _ := ev.Record()
		if err := l.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	const n = 2000
	msgs := make([]hlog.PostedMessage, n)
	for i := range msgs {
		msgs[i] = hlog.PostedMessage{TTL: 3600, Body: []byte(fmt.Sprintf(`{"i":%d}`, i))}
	}
	rec := appendEv(hlog.MessagesPosted, &hlog.MessagesPostedV1{Messages: msgs})
	if err := p.WaitApplied(ctx, rec.Partition, rec.Offset); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			appendEv(hlog.MessageDeleted, &hlog.MessageDeletedV1{ID: PositionID(rec.Partition, rec.Offset, i)})
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		got, err := s.ListMessages("p", "q", ListFilter{Limit: 20, Echo: true, IncludeDelayed: true}, now)
		if err != nil {
			t.Fatalf("list during deletes: %v", err)
		}
		for _, m := range got {
			if len(m.Body) == 0 {
				t.Fatalf("message %s listed without its body", m.ID)
			}
		}
		ids := make([]string, 0, 20)
		for i := range 20 {
			ids = append(ids, PositionID(rec.Partition, rec.Offset, i*97%n))
		}
		if _, err := s.Messages("p", "q", ids, now); err != nil {
			t.Fatalf("get during deletes: %v", err)
		}
	}
}

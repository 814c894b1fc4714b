package projection

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// Projection-level tests of dead-lettering across partitions: the
// follow-up event a claim leaves in the outbox, its idempotent apply on
// the dead-letter queue's partition, and replay determinism with
// follow-ups in the log. All run on real Pebble logs and stores.

const (
	dlProject    = "p"
	dlSource     = "src"
	dlPartitions = 4
)

// dlQueueOn returns a queue name of dlProject whose partition is (same)
// or is not (!same) the source queue's.
func dlQueueOn(t *testing.T, same bool) string {
	t.Helper()
	src := hlog.PartitionFor(hlog.QueueKey(dlProject, dlSource), dlPartitions)
	for i := range 100 {
		q := fmt.Sprintf("dlq%d", i)
		if (hlog.PartitionFor(hlog.QueueKey(dlProject, q), dlPartitions) == src) == same {
			return q
		}
	}
	t.Fatalf("no queue name found with same partition = %v", same)
	return ""
}

func dlOpenLog(t *testing.T) hlog.Log {
	t.Helper()
	l, err := hlog.OpenPebble(hlog.PebbleOptions{Dir: t.TempDir(), Partitions: dlPartitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// dlRig is a store projecting a log, with a scripted event clock.
type dlRig struct {
	t     *testing.T
	log   hlog.Log
	store *Store
	proj  *Projector
	now   int64
}

// dlStart projects l into a new store; everything stops with the test.
func dlStart(t *testing.T, l hlog.Log) *dlRig {
	t.Helper()
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProjector(s, l, ProjectorOptions{})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Shutdown(context.Background())
		s.Close()
	})
	return &dlRig{t: t, log: l, store: s, proj: p, now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
}

func dlContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// write appends an event of queue in project at the rig's time and waits
// until it is applied.
func (r *dlRig) write(project, queue string, typ hlog.Type, payload any) *hlog.Record {
	r.t.Helper()
	ev, err := hlog.NewEvent(typ, project, queue, r.now, payload)
	if err != nil {
		r.t.Fatal(err)
	}
	ev.ClientID = "0123456789abcdef0123456789abcdef"
	rec, err := ev.Record()
	if err != nil {
		r.t.Fatal(err)
	}
	r.appendRecord(rec)
	return rec
}

// emit appends an event at the rig's time and waits until it is applied
// (which, for a claim, includes its follow-ups being in the log).
func (r *dlRig) emit(typ hlog.Type, queue string, payload any) *Outcome {
	r.t.Helper()
	rec := r.write(dlProject, queue, typ, payload)
	out, err := r.store.Outcome(rec.Partition, rec.Offset)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// appendRecord appends rec and waits until its partition applied it.
func (r *dlRig) appendRecord(rec *hlog.Record) {
	r.t.Helper()
	ctx := dlContext(r.t)
	if err := r.log.Append(ctx, rec); err != nil {
		r.t.Fatal(err)
	}
	if err := r.proj.WaitApplied(ctx, rec.Partition, rec.Offset); err != nil {
		r.t.Fatal(err)
	}
}

// catchUp waits until every partition applied the whole log.
func (r *dlRig) catchUp() {
	r.t.Helper()
	if err := r.proj.CatchUp(dlContext(r.t)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *dlRig) digest() string {
	r.t.Helper()
	d, err := r.store.Digest()
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

// deadLetterClaim is a claim of dlSource that moves messages claimed
// once before to dlq.
func deadLetterClaim(dlq string) *hlog.ClaimCreatedV1 {
	return &hlog.ClaimCreatedV1{TTL: 60, Grace: 60, Limit: 10, MaxClaimCount: 1, DeadLetterQueue: dlq, DeadLetterTTL: 600}
}

// moveToDeadLetters posts two messages to dlSource, claims them once and,
// after the claim expired, claims again, which moves both to dlq. It
// returns the moved ids.
func (r *dlRig) moveToDeadLetters(dlq string) []string {
	r.t.Helper()
	post := r.emit(hlog.MessagesPosted, dlSource, &hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{
		{TTL: 3600, Body: []byte(`{"n":1}`)}, {TTL: 3600, Body: []byte(`"two"`)},
	}})
	if post != nil {
		r.t.Fatalf("post outcome %+v", post)
	}
	end, err := r.log.End(dlContext(r.t), hlog.PartitionFor(hlog.QueueKey(dlProject, dlSource), dlPartitions))
	if err != nil {
		r.t.Fatal(err)
	}
	p := hlog.PartitionFor(hlog.QueueKey(dlProject, dlSource), dlPartitions)
	ids := []string{PositionID(p, end-1, 0), PositionID(p, end-1, 1)}
	if out := r.emit(hlog.ClaimCreated, dlSource, deadLetterClaim(dlq)); out.Status != 201 || out.DeadLettered != 0 {
		r.t.Fatalf("first claim: %+v", out)
	}
	r.now += int64(61 * time.Second)
	if out := r.emit(hlog.ClaimCreated, dlSource, deadLetterClaim(dlq)); out.Status != 204 || out.DeadLettered != 2 {
		r.t.Fatalf("second claim: %+v, want 204 with 2 dead-lettered", out)
	}
	r.catchUp()
	return ids
}

// expectDeadLetters fails unless queue holds exactly the messages ids, in
// that order, unclaimed, with the dead-letter ttl.
func (r *dlRig) expectDeadLetters(queue string, ids ...string) {
	r.t.Helper()
	var got []Message
	err := scanMessages(r.store.db, dataPrefix(dlProject, queue), 0, func(m *Message) (bool, error) {
		got = append(got, *m)
		return true, nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if len(got) != len(ids) {
		r.t.Fatalf("%s holds %d messages, want %d (%v)", queue, len(got), len(ids), ids)
	}
	for i, m := range got {
		if m.ID != ids[i] || m.ClaimID != "" || m.ClaimCount != 0 || m.TTL != 600 {
			r.t.Fatalf("%s message %d: %+v, want id %s, unclaimed, ttl 600", queue, i, m, ids[i])
		}
	}
	if left, err := r.store.Messages(dlProject, dlSource, ids, r.now); err != nil || len(left) != 0 {
		r.t.Fatalf("source still holds %d moved messages (err %v)", len(left), err)
	}
}

// dlForBoth runs fn with a dead-letter queue on another partition than
// dlSource and with one on the same partition.
func dlForBoth(t *testing.T, fn func(t *testing.T, dlq string)) {
	for _, same := range []bool{false, true} {
		t.Run(fmt.Sprintf("same partition %v", same), func(t *testing.T) { fn(t, dlQueueOn(t, same)) })
	}
}

// followUp returns the one follow-up record the log holds for dlq.
func (r *dlRig) followUp(dlq string) hlog.Record {
	r.t.Helper()
	fus := r.followUps(hlog.PartitionFor(hlog.QueueKey(dlProject, dlq), dlPartitions))
	if len(fus) != 1 {
		r.t.Fatalf("%d follow-up records in the log, want 1", len(fus))
	}
	return fus[0]
}

// followUps returns the dead-letter follow-up records of partition p.
func (r *dlRig) followUps(p int32) []hlog.Record {
	r.t.Helper()
	ctx := dlContext(r.t)
	end, err := r.log.End(ctx, p)
	if err != nil {
		r.t.Fatal(err)
	}
	cur, err := r.log.OpenCursor(p, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	defer cur.Close()
	var out []hlog.Record
	for read := int64(0); read < end; {
		recs, err := cur.Next(ctx, 64)
		if err != nil {
			r.t.Fatal(err)
		}
		read += int64(len(recs))
		for _, rec := range recs {
			if string(rec.HeaderValue(hlog.HeaderType)) == string(hlog.MessagesDeadLettered) {
				out = append(out, rec)
			}
		}
	}
	return out
}

// TestDeadLetterFollowUpAppliedOnce re-appends the follow-up record of a
// move, as a projector that crashed before deleting its outbox entry or a
// second node would: the dead-letter queue applies it once, also after
// the moved message was deleted there.
func TestDeadLetterFollowUpAppliedOnce(t *testing.T) {
	dlForBoth(t, func(t *testing.T, dlq string) {
		r := dlStart(t, dlOpenLog(t))
		ids := r.moveToDeadLetters(dlq)
		r.expectDeadLetters(dlq, ids...)
		orig := r.followUp(dlq)
		dup := func() {
			t.Helper()
			r.appendRecord(&hlog.Record{Key: orig.Key, Value: orig.Value, Headers: orig.Headers})
		}
		q, err := r.store.Queue(dlProject, dlq)
		if err != nil || q == nil {
			t.Fatalf("dead-letter queue record %v (err %v)", q, err)
		}

		dup()
		r.expectDeadLetters(dlq, ids...)
		if q2, _ := r.store.Queue(dlProject, dlq); q2.NextSeq != q.NextSeq {
			t.Fatalf("duplicate follow-up moved the queue counter from %d to %d", q.NextSeq, q2.NextSeq)
		}

		// A duplicate must not bring back a message deleted since.
		r.emit(hlog.MessageDeleted, dlq, &hlog.MessageDeletedV1{ID: ids[0]})
		r.expectDeadLetters(dlq, ids[1])
		dup()
		r.expectDeadLetters(dlq, ids[1])
	})
}

var errInjected = errors.New("injected append failure")

// failFirstFollowUp is the real log with one fault: the first append of a
// dead-letter follow-up fails without writing anything.
type failFirstFollowUp struct {
	hlog.Log
	failed   atomic.Bool
	attempts atomic.Int32
}

func (l *failFirstFollowUp) Append(ctx context.Context, rec *hlog.Record) error {
	if string(rec.HeaderValue(hlog.HeaderType)) == string(hlog.MessagesDeadLettered) {
		l.attempts.Add(1)
		if l.failed.CompareAndSwap(false, true) {
			return errInjected
		}
	}
	return l.Log.Append(ctx, rec)
}

// TestDeadLetterOutboxRetriesFailedAppend fails the first append of the
// follow-up: the projector retries it from its outbox, the claim counts
// as applied only after that, and the state ends up identical to a run
// without the fault.
func TestDeadLetterOutboxRetriesFailedAppend(t *testing.T) {
	dlForBoth(t, func(t *testing.T, dlq string) {
		faulty := &failFirstFollowUp{Log: dlOpenLog(t)}
		r := dlStart(t, faulty)
		ids := r.moveToDeadLetters(dlq)
		if n := faulty.attempts.Load(); n != 2 {
			t.Fatalf("%d appends of the follow-up, want 2 (one failed, one retried)", n)
		}
		r.expectDeadLetters(dlq, ids...)
		r.followUp(dlq)

		clean := dlStart(t, dlOpenLog(t))
		clean.moveToDeadLetters(dlq)
		if got, want := r.digest(), clean.digest(); got != want {
			t.Fatalf("digest after a failed append %s, without the fault %s", got, want)
		}
	})
}

// TestDeadLetterReplayIsDeterministic projects a log that holds dead-letter
// follow-ups (to the same and to another partition) into two new stores:
// both must equal each other and the store that projected it live.
func TestDeadLetterReplayIsDeterministic(t *testing.T) {
	l := dlOpenLog(t)
	live := dlStart(t, l)
	other, same := dlQueueOn(t, false), dlQueueOn(t, true)
	live.expectDeadLetters(other, live.moveToDeadLetters(other)...)
	live.expectDeadLetters(same, live.moveToDeadLetters(same)...)
	// More traffic on the dead-letter queues after the moves.
	live.emit(hlog.MessagesPosted, other, &hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{{TTL: 600, Body: []byte(`3`)}}})
	live.emit(hlog.ClaimCreated, same, &hlog.ClaimCreatedV1{TTL: 60, Grace: 60, Limit: 1})
	live.catchUp()
	want := live.digest()
	ends, err := l.Ends(dlContext(t))
	if err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		replay := dlStart(t, l)
		replay.catchUp()
		if got := replay.digest(); got != want {
			t.Errorf("replay %d: digest %s, live projection %s", i, got, want)
		}
		now, err := l.Ends(dlContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(now) != fmt.Sprint(ends) {
			t.Errorf("replay %d appended to the log: partition ends %v, before %v", i, now, ends)
		}
	}
}

// TestDeadLetterRestartSkipsFollowUpInLog puts a follow-up that is already
// in the log back into the outbox, as a projector that crashed between
// appending it and deleting its entry leaves it, and restarts the
// projector: it deletes the entry without appending the follow-up again.
func TestDeadLetterRestartSkipsFollowUpInLog(t *testing.T) {
	dlForBoth(t, func(t *testing.T, dlq string) {
		r := dlStart(t, dlOpenLog(t))
		ids := r.moveToDeadLetters(dlq)
		fu := r.followUp(dlq)
		ev, err := hlog.DecodeEvent(fu.Value)
		if err != nil {
			t.Fatal(err)
		}
		var pl hlog.MessagesDeadLetteredV1
		if err := ev.DecodePayload(&pl); err != nil {
			t.Fatal(err)
		}
		ctx := dlContext(t)
		ends, err := r.log.Ends(ctx)
		if err != nil {
			t.Fatal(err)
		}

		if err := r.proj.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.store.db.Set(outboxKey(pl.SourcePartition, pl.SourceOffset), fu.Value, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		r.proj = NewProjector(r.store, r.log, ProjectorOptions{})
		if err := r.proj.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.proj.Shutdown(context.Background()) })
		// The restarted loop flushes its outbox before it applies or
		// advances anything; a new event shows it is past that.
		r.emit(hlog.QueueCreated, dlSource, &hlog.QueueCreatedV1{})
		r.catchUp()

		after, err := r.log.Ends(ctx)
		if err != nil {
			t.Fatal(err)
		}
		srcPart := hlog.PartitionFor(hlog.QueueKey(dlProject, dlSource), dlPartitions)
		ends[srcPart]++ // the queue.created just appended
		if fmt.Sprint(after) != fmt.Sprint(ends) {
			t.Fatalf("partition ends %v after the restart, want %v: the follow-up was appended again", after, ends)
		}
		it, err := r.store.db.NewIter(nil)
		if err != nil {
			t.Fatal(err)
		}
		for ok := it.SeekGE([]byte{tagOutbox}); ok && it.Key()[0] == tagOutbox; ok = it.Next() {
			t.Errorf("outbox entry %x left behind", it.Key())
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		r.expectDeadLetters(dlq, ids...)
	})
}

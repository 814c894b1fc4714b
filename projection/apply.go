package projection

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// outcomeWindow is how many outcomes per partition are kept: enough for
// any API node to read the outcome of its own append long after it was
// applied. Pruning runs every outcomePruneEvery offsets, at fixed offsets,
// so it is deterministic.
const (
	outcomeWindow     = 1 << 16
	outcomePruneEvery = 1 << 10
)

// applier applies the events of one partition. Apply is a pure function of
// the projection state and the event: "now" is the event's time and ids
// come from its log position. Nothing else is read.
type applier struct {
	p int32
	// nextExpiry is the earliest time in this partition's expiry index
	// (math.MaxInt64 when empty); a cache that only lets apply skip a seek.
	nextExpiry int64
	// expiryFloor is a time no entry of the expiry index is earlier than:
	// sweeps and lookups start there, not at the front of the index, which
	// holds the deleted entries of every earlier sweep until compaction
	// drops them (stepping over those made apply slower as the log grew).
	expiryFloor int64
	// queues caches the queue records of this partition, which only this
	// applier writes (nil: known not to exist). It holds what the batches
	// wrote, so an applier whose batch fails is discarded with it.
	queues map[string]*Queue
	// subs caches the subscriptions of queues (key: subsPrefix) the same
	// way; every write of a queue's subscriptions drops its entry.
	subs map[string][]Subscription
	// catalogChanged is set when apply created or deleted a queue,
	// changed its metadata or a placement: what the store's read cache
	// holds (see readCache).
	catalogChanged bool
	// delivers is set when apply made a pending delivery; the projector
	// reports it with the event (Applied.Delivers) and clears it.
	delivers bool
	// outboxed is set when apply wrote a follow-up event to the outbox;
	// the projector appends those after the batch commits.
	outboxed bool
}

// maxCachedQueues bounds the applier's queue cache; past it the cache
// starts over.
const maxCachedQueues = 4096

// queue returns the queue record, or nil when the queue does not exist.
func (a *applier) queue(b *pebble.Batch, project, queue string) (*Queue, error) {
	k := string(queueKey(project, queue))
	if q, ok := a.queues[k]; ok {
		if q == nil {
			return nil, nil
		}
		cp := *q
		return &cp, nil
	}
	q, err := getQueue(b, project, queue)
	if err != nil {
		return nil, err
	}
	a.cacheQueue(k, q)
	if q == nil {
		return nil, nil
	}
	cp := *q
	return &cp, nil
}

func (a *applier) cacheQueue(k string, q *Queue) {
	if len(a.queues) >= maxCachedQueues {
		clear(a.queues)
	}
	a.queues[k] = q
}

// putQueue writes a queue record.
func (a *applier) putQueue(b *pebble.Batch, project string, q *Queue) error {
	k := queueKey(project, q.Name)
	if prev, known := a.queues[string(k)]; !known || prev == nil || !bytes.Equal(prev.Metadata, q.Metadata) {
		a.catalogChanged = true
	}
	if err := putRecord(b, k, q); err != nil {
		return err
	}
	cp := *q
	a.cacheQueue(string(k), &cp)
	return nil
}

func newApplier(r pebble.Reader, p int32) (*applier, error) {
	a := &applier{p: p, nextExpiry: math.MaxInt64, queues: map[string]*Queue{}, subs: map[string][]Subscription{}}
	return a, a.loadNextExpiry(r)
}

func (a *applier) loadNextExpiry(r pebble.Reader) error {
	part := expiryPartition(a.p)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: expiryFrom(a.p, a.expiryFloor), UpperBound: prefixEnd(part)})
	if err != nil {
		return err
	}
	defer it.Close()
	a.nextExpiry = math.MaxInt64
	if it.First() {
		a.nextExpiry = int64(binary.BigEndian.Uint64(it.Key()[5:13]))
		a.expiryFloor = a.nextExpiry
	}
	return it.Error()
}

// apply applies one event into the indexed batch b and returns its outcome
// (nil when there is nothing to report beyond success). An error means the
// store failed; the batch must then be discarded.
func (a *applier) apply(b *pebble.Batch, off int64, ev *hlog.Event) (*Outcome, error) {
	now := ev.Time
	if now >= a.nextExpiry {
		if err := a.sweep(b, now); err != nil {
			return nil, err
		}
	}
	if off > outcomeWindow && off%outcomePruneEvery == 0 {
		if err := b.DeleteRange(outcomeKey(a.p, 0), outcomeKey(a.p, off-outcomeWindow), nil); err != nil {
			return nil, err
		}
	}
	if err := a.recordHistory(b, off, ev); err != nil {
		return nil, err
	}
	var out *Outcome
	var err error
	if ev.Idempotency != nil {
		out, err = a.repeat(b, ev)
		if err != nil {
			return nil, err
		}
	}
	if out == nil {
		out, err = a.dispatch(b, off, ev)
		if err == nil && ev.Idempotency != nil && (out == nil || out.Status < 400) {
			err = a.remember(b, off, ev, out)
		}
	}
	if err != nil {
		var bad *badEvent
		if !errors.As(err, &bad) {
			return nil, err
		}
		out = &Outcome{Status: 400, Title: "Invalid request body", Description: bad.Error()}
	}
	if out != nil {
		v, err := hlog.Marshal(out)
		if err != nil {
			return nil, err
		}
		if err := b.Set(outcomeKey(a.p, off), v, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// HasOutcome reports whether apply records an outcome for events of type
// t. The other types always succeed, so their writers need not read one.
func HasOutcome(t hlog.Type) bool {
	switch t {
	case hlog.QueueDeleted, hlog.QueuePurged, hlog.MessagesPosted, hlog.MessagesDeleted, hlog.ClaimReleased,
		hlog.SubscriptionDeleted, hlog.SubscriptionDelivered, hlog.MessagesDeadLettered, hlog.FlavorDeleted, hlog.QueuePlaced:
		return false
	}
	return true
}

// badEvent is an event that cannot be applied (undecodable payload or an
// unknown type); it is skipped with a 400 outcome, deterministically.
type badEvent struct{ msg string }

func (e *badEvent) Error() string { return e.msg }

func decodePayload(ev *hlog.Event, v any) error {
	if err := ev.DecodePayload(v); err != nil {
		return &badEvent{err.Error()}
	}
	return nil
}

func (a *applier) dispatch(b *pebble.Batch, off int64, ev *hlog.Event) (*Outcome, error) {
	switch ev.Type {
	case hlog.QueueCreated:
		var pl hlog.QueueCreatedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.createQueue(b, ev, pl.Metadata)
	case hlog.QueuePatched:
		var pl hlog.QueuePatchedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.patchQueue(b, ev, &pl)
	case hlog.QueueDeleted:
		return a.deleteQueue(b, ev)
	case hlog.QueuePurged:
		var pl hlog.QueuePurgedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.purgeQueue(b, ev, &pl)
	case hlog.MessagesPosted:
		var pl hlog.MessagesPostedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return nil, a.postMessages(b, off, ev, &pl)
	case hlog.MessageDeleted:
		var pl hlog.MessageDeletedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.deleteMessage(b, ev, &pl)
	case hlog.MessagesDeleted:
		var pl hlog.MessagesDeletedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return nil, a.deleteMessages(b, ev, pl.IDs)
	case hlog.MessagesPopped:
		var pl hlog.MessagesPoppedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.pop(b, ev, pl.Limit)
	case hlog.ClaimCreated:
		var pl hlog.ClaimCreatedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.createClaim(b, off, ev, &pl)
	case hlog.ClaimRenewed:
		var pl hlog.ClaimRenewedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.renewClaim(b, ev, &pl)
	case hlog.ClaimReleased:
		var pl hlog.ClaimReleasedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return nil, a.releaseClaim(b, ev, pl.ClaimID)
	case hlog.MessagesDeadLettered:
		var pl hlog.MessagesDeadLetteredV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return nil, a.applyDeadLettered(b, ev, &pl)
	case hlog.SubscriptionCreated:
		var pl hlog.SubscriptionCreatedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.createSubscription(b, off, ev, &pl)
	case hlog.SubscriptionUpdated:
		var pl hlog.SubscriptionUpdatedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.updateSubscription(b, ev, &pl)
	case hlog.SubscriptionConfirmed:
		var pl hlog.SubscriptionConfirmedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.confirmSubscription(b, off, ev, &pl)
	case hlog.SubscriptionDeleted:
		var pl hlog.SubscriptionDeletedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return nil, a.deleteSubscription(b, ev, pl.ID)
	case hlog.SubscriptionDelivered:
		var pl hlog.SubscriptionDeliveredV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return nil, a.delivered(b, ev, &pl)
	case hlog.PoolPut:
		var pl hlog.PoolPutV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.putPool(b, &pl)
	case hlog.PoolPatched:
		var pl hlog.PoolPatchedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.patchPool(b, &pl)
	case hlog.PoolDeleted:
		var pl hlog.PoolDeletedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.deletePool(b, &pl)
	case hlog.FlavorPut:
		var pl hlog.FlavorPutV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.putFlavor(b, pl.Name, pl.Pools, pl.Capabilities, true)
	case hlog.FlavorPatched:
		var pl hlog.FlavorPatchedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return a.putFlavor(b, pl.Name, pl.Pools, nil, false)
	case hlog.FlavorDeleted:
		var pl hlog.FlavorDeletedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return nil, a.deleteFlavor(b, pl.Name)
	case hlog.QueuePlaced:
		var pl hlog.QueuePlacedV1
		if err := decodePayload(ev, &pl); err != nil {
			return nil, err
		}
		return nil, a.placeQueue(b, ev, pl.Pool)
	}
	return nil, &badEvent{fmt.Sprintf("unknown event type %q", ev.Type)}
}

// --- queues ---

func (a *applier) createQueue(b *pebble.Batch, ev *hlog.Event, meta []byte) (*Outcome, error) {
	q, err := a.queue(b, ev.Project, ev.Queue)
	if err != nil || q != nil {
		return &Outcome{Status: 204}, err
	}
	if len(meta) == 0 {
		meta = []byte("{}")
	}
	q = &Queue{Name: ev.Queue, Metadata: meta, Created: ev.Time, NextSeq: 1}
	return &Outcome{Status: 201}, a.putQueue(b, ev.Project, q)
}

func (a *applier) patchQueue(b *pebble.Batch, ev *hlog.Event, pl *hlog.QueuePatchedV1) (*Outcome, error) {
	q, err := a.queue(b, ev.Project, ev.Queue)
	if err != nil {
		return nil, err
	}
	if q == nil {
		return &Outcome{Status: 404, Title: "Not found", Description: fmt.Sprintf("Queue %s does not exist for project %s", ev.Queue, ev.Project)}, nil
	}
	meta, err := DecodeObject(q.Metadata)
	if err != nil {
		return nil, fmt.Errorf("stored metadata of %s/%s: %w", ev.Project, ev.Queue, err)
	}
	for _, op := range pl.Ops {
		_, stored := meta[op.Key]
		switch op.Op {
		case "add":
			v, err := decodeValue(op.Value)
			if err != nil {
				return nil, err
			}
			meta[op.Key] = v
		case "replace":
			if !stored && !IsReserved(op.Key) {
				return &Outcome{Status: 409, Title: "Resource conflict", Description: fmt.Sprintf("Can't replace non-existent object %s.", op.Key)}, nil
			}
			v, err := decodeValue(op.Value)
			if err != nil {
				return nil, err
			}
			meta[op.Key] = v
		case "remove":
			if !stored && !IsReserved(op.Key) {
				return &Outcome{Status: 409, Title: "Resource conflict", Description: fmt.Sprintf("Can't remove non-existent object %s.", op.Key)}, nil
			}
			delete(meta, op.Key)
		default:
			return nil, &badEvent{fmt.Sprintf("unknown patch op %q", op.Op)}
		}
	}
	lim := Limits{MaxMessageTTL: pl.MaxMessageTTL, MaxMessagesPostSize: pl.MaxPostSize, MaxMessageDelay: pl.MaxDelay}
	if err := ValidateMetadata(meta, lim); err != nil {
		// Zaqar reports an invalid patch result as a body error.
		return &Outcome{Status: 400, Title: "Invalid request body", Description: err.Error()}, nil
	}
	q.Metadata = EncodeJSON(meta)
	if err := a.putQueue(b, ev.Project, q); err != nil {
		return nil, err
	}
	return &Outcome{Status: 200, Metadata: q.Metadata}, nil
}

func decodeValue(v []byte) (any, error) {
	m, err := DecodeObject(append(append([]byte(`{"v":`), v...), '}'))
	if err != nil {
		return nil, &badEvent{"undecodable patch value"}
	}
	return m["v"], nil
}

func (a *applier) deleteQueue(b *pebble.Batch, ev *hlog.Event) (*Outcome, error) {
	prefix := dataPrefix(ev.Project, ev.Queue)
	// Expiry index entries of the queue are left behind; the sweep drops
	// entries whose record is gone.
	if err := b.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
		return nil, err
	}
	k := queueKey(ev.Project, ev.Queue)
	a.cacheQueue(string(k), nil)
	a.catalogChanged = true
	return nil, b.Delete(k, nil)
}

func (a *applier) purgeQueue(b *pebble.Batch, ev *hlog.Event, pl *hlog.QueuePurgedV1) (*Outcome, error) {
	if pl.Subscriptions {
		if err := a.purgeSubscriptions(b, ev); err != nil {
			return nil, err
		}
	}
	if !pl.Messages {
		return nil, nil
	}
	prefix := dataPrefix(ev.Project, ev.Queue)
	// Claimed messages survive a purge, as in Zaqar (purge pops).
	err := a.scanQueue(b, ev, func(m *Message) (bool, error) {
		if m.Claimed(ev.Time) {
			return true, nil
		}
		return true, a.removeMessage(b, prefix, m)
	})
	return nil, err
}

// --- messages ---

// lazyQueue returns the event's queue, or a new one (queues are lazy:
// messages create them).
func (a *applier) lazyQueue(b *pebble.Batch, ev *hlog.Event) (*Queue, error) {
	q, err := a.queue(b, ev.Project, ev.Queue)
	if err != nil || q != nil {
		return q, err
	}
	return &Queue{Name: ev.Queue, Metadata: []byte("{}"), Created: ev.Time, NextSeq: 1}, nil
}

func (a *applier) postMessages(b *pebble.Batch, off int64, ev *hlog.Event, pl *hlog.MessagesPostedV1) error {
	q, err := a.lazyQueue(b, ev)
	if err != nil {
		return err
	}
	prefix := dataPrefix(ev.Project, ev.Queue)
	for i, pm := range pl.Messages {
		m := &Message{
			ID:       PositionID(a.p, off, i),
			Seq:      q.NextSeq,
			Created:  ev.Time,
			TTL:      pm.TTL,
			Expires:  ev.Time + pm.TTL*1e9,
			ClientID: ev.ClientID,
			Body:     pm.Body,
		}
		if pm.Delay > 0 {
			m.VisibleAt = ev.Time + pm.Delay*1e9
		}
		q.NextSeq++
		if err := a.insertMessage(b, prefix, m); err != nil {
			return err
		}
	}
	if err := a.notifySubscribers(b, off, ev, pl); err != nil {
		return err
	}
	return a.putQueue(b, ev.Project, q)
}

// insertMessage writes a new message: header, body and id index.
func (a *applier) insertMessage(b *pebble.Batch, prefix []byte, m *Message) error {
	if err := a.putMessage(b, prefix, m, nil); err != nil {
		return err
	}
	if err := b.Set(bodyKey(prefix, m.Seq), m.Body, nil); err != nil {
		return err
	}
	return b.Set(idKey(prefix, m.ID), appendU64(nil, m.Seq), nil)
}

func (a *applier) deleteMessage(b *pebble.Batch, ev *hlog.Event, pl *hlog.MessageDeletedV1) (*Outcome, error) {
	prefix := dataPrefix(ev.Project, ev.Queue)
	m, err := getMessageByID(b, prefix, pl.ID)
	if err != nil || m == nil || !m.Live(ev.Time) {
		return &Outcome{Status: 204}, err
	}
	now := ev.Time
	switch {
	case pl.ClaimID == "" && m.Claimed(now):
		return &Outcome{Status: 403, Title: "Unable to delete", Description: "This message is claimed; it cannot be deleted without a valid claim ID."}, nil
	case pl.ClaimID != "" && pl.ClaimID != m.ClaimID && m.Claimed(now):
		return &Outcome{Status: 403, Title: "Unable to delete", Description: "This message is claimed; it cannot be deleted without a valid claim ID."}, nil
	case pl.ClaimID != "" && pl.ClaimID != m.ClaimID:
		return &Outcome{Status: 400, Title: "Unable to delete", Description: "A claim was specified, but the message is not currently claimed."}, nil
	}
	return &Outcome{Status: 204}, a.removeMessage(b, prefix, m)
}

func (a *applier) deleteMessages(b *pebble.Batch, ev *hlog.Event, ids []string) error {
	prefix := dataPrefix(ev.Project, ev.Queue)
	for _, id := range ids {
		m, err := getMessageByID(b, prefix, id)
		if err != nil {
			return err
		}
		if m != nil {
			if err := a.removeMessage(b, prefix, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *applier) pop(b *pebble.Batch, ev *hlog.Event, limit int) (*Outcome, error) {
	prefix := dataPrefix(ev.Project, ev.Queue)
	out := &Outcome{Status: 200}
	err := a.scanQueue(b, ev, func(m *Message) (bool, error) {
		if !m.Live(ev.Time) || m.Claimed(ev.Time) {
			return true, nil
		}
		if err := loadBody(b, prefix, m); err != nil {
			return false, err
		}
		out.Messages = append(out.Messages, *m)
		return len(out.Messages) < limit, a.removeMessage(b, prefix, m)
	})
	return out, err
}

// --- claims ---

func (a *applier) createClaim(b *pebble.Batch, off int64, ev *hlog.Event, pl *hlog.ClaimCreatedV1) (*Outcome, error) {
	prefix := dataPrefix(ev.Project, ev.Queue)
	now := ev.Time
	c := &Claim{ID: PositionID(a.p, off, 0), TTL: pl.TTL, Updated: now, Expires: now + pl.TTL*1e9}
	// The outcome names the claim only: the API reads its messages back,
	// so claims do not copy bodies into the projection.
	out := &Outcome{Status: 201, ClaimID: c.ID}
	var moved []hlog.DeadLetter
	err := a.scanQueue(b, ev, func(m *Message) (bool, error) {
		if !m.Live(now) || m.Claimed(now) || m.Delayed(now) {
			return true, nil
		}
		if deadLetterable(pl, m) {
			dl, err := a.deadLetter(b, prefix, m, pl, now)
			moved = append(moved, dl)
			return len(c.Seqs)+len(moved) < pl.Limit, err
		}
		old := *m
		m.ClaimID, m.ClaimExpires = c.ID, c.Expires
		m.ClaimCount++
		extend(m, c.Expires, pl.TTL, pl.Grace)
		if err := a.putMessage(b, prefix, m, &old); err != nil {
			return false, err
		}
		c.Seqs = append(c.Seqs, m.Seq)
		return len(c.Seqs)+len(moved) < pl.Limit, nil
	})
	if err != nil {
		return nil, err
	}
	if len(moved) > 0 {
		if err := a.sendDeadLetters(b, off, ev, pl.DeadLetterQueue, moved); err != nil {
			return nil, err
		}
	}
	if len(c.Seqs) == 0 {
		return &Outcome{Status: 204, DeadLettered: len(moved)}, nil
	}
	out.DeadLettered = len(moved)
	return out, a.putClaim(b, prefix, c)
}

// extend applies the grace rule: a claimed message lives at least grace
// seconds past its claim.
func extend(m *Message, claimExpires, ttl, grace int64) {
	if m.Expires < claimExpires {
		m.Expires = claimExpires + grace*1e9
		m.TTL = ttl + grace
	}
}

func (a *applier) renewClaim(b *pebble.Batch, ev *hlog.Event, pl *hlog.ClaimRenewedV1) (*Outcome, error) {
	prefix := dataPrefix(ev.Project, ev.Queue)
	now := ev.Time
	c, msgs, err := getClaim(b, prefix, pl.ClaimID, now)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return &Outcome{Status: 404, Title: "Not found", Description: fmt.Sprintf("Claim %s does not exist in queue %s for project %s", pl.ClaimID, ev.Queue, ev.Project)}, nil
	}
	c.TTL, c.Updated, c.Expires = pl.TTL, now, now+pl.TTL*1e9
	c.Seqs = c.Seqs[:0]
	for i := range msgs {
		m := &msgs[i]
		old := *m
		m.ClaimExpires = c.Expires
		extend(m, c.Expires, pl.TTL, pl.Grace)
		if err := a.putMessage(b, prefix, m, &old); err != nil {
			return nil, err
		}
		c.Seqs = append(c.Seqs, m.Seq)
	}
	return &Outcome{Status: 204}, a.putClaim(b, prefix, c)
}

func (a *applier) releaseClaim(b *pebble.Batch, ev *hlog.Event, id string) error {
	prefix := dataPrefix(ev.Project, ev.Queue)
	c, err := getRecord[Claim](b, claimKey(prefix, id))
	if err != nil || c == nil {
		return err
	}
	for _, seq := range c.Seqs {
		m, err := getMessage(b, prefix, seq)
		if err != nil {
			return err
		}
		if m == nil || m.ClaimID != id {
			continue
		}
		old := *m
		m.ClaimID, m.ClaimExpires = "", 0
		if err := a.putMessage(b, prefix, m, &old); err != nil {
			return err
		}
	}
	return b.Delete(claimKey(prefix, id), nil)
}

func (a *applier) putClaim(b *pebble.Batch, prefix []byte, c *Claim) error {
	if err := putRecord(b, claimKey(prefix, c.ID), c); err != nil {
		return err
	}
	return a.index(b, c.Expires, kindClaim, prefix, []byte(c.ID))
}

// --- storage helpers shared by apply ---

// scanQueue scans the queue's messages in order from its head (see
// scanMessages) and moves the head up to the first message found, so the
// next scan skips what was consumed before it.
func (a *applier) scanQueue(b *pebble.Batch, ev *hlog.Event, fn func(*Message) (bool, error)) error {
	q, err := a.queue(b, ev.Project, ev.Queue)
	if err != nil || q == nil {
		return err
	}
	first := uint64(0)
	err = scanMessages(b, dataPrefix(ev.Project, ev.Queue), max(q.Head, 1)-1, func(m *Message) (bool, error) {
		if first == 0 {
			first = m.Seq
		}
		return fn(m)
	})
	if err != nil {
		return err
	}
	if first == 0 {
		first = q.NextSeq // the queue is empty
	}
	if first == q.Head {
		return nil
	}
	q.Head = first
	return a.putQueue(b, ev.Project, q)
}

// putMessage writes m and keeps the expiry index in step with it; old is
// the previous version of m (nil for a new message).
func (a *applier) putMessage(b *pebble.Batch, prefix []byte, m, old *Message) error {
	if err := b.Set(msgKey(prefix, m.Seq), encodeHeader(m), nil); err != nil {
		return err
	}
	if old != nil && old.Expires == m.Expires {
		return nil
	}
	if old != nil {
		if err := b.Delete(expiryKey(a.p, old.Expires, kindMessage, prefix, appendU64(nil, m.Seq)), nil); err != nil {
			return err
		}
	}
	return a.index(b, m.Expires, kindMessage, prefix, appendU64(nil, m.Seq))
}

func (a *applier) index(b *pebble.Batch, at int64, kind byte, prefix, ref []byte) error {
	a.nextExpiry = min(a.nextExpiry, at)
	a.expiryFloor = min(a.expiryFloor, max(at, 0))
	return b.Set(expiryKey(a.p, at, kind, prefix, ref), nil, nil)
}

func (a *applier) removeMessage(b *pebble.Batch, prefix []byte, m *Message) error {
	if err := deleteMessageKeys(b, prefix, m); err != nil {
		return err
	}
	return b.Delete(expiryKey(a.p, m.Expires, kindMessage, prefix, appendU64(nil, m.Seq)), nil)
}

// deleteMessageKeys deletes the header, body and id index of m.
func deleteMessageKeys(b *pebble.Batch, prefix []byte, m *Message) error {
	for _, k := range [][]byte{msgKey(prefix, m.Seq), bodyKey(prefix, m.Seq), idKey(prefix, m.ID)} {
		if err := b.Delete(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// sweep physically removes what expired at or before now: messages past
// their expiry and claims past theirs. Reads already hide them; this only
// reclaims space, at event time so every replay removes the same things.
func (a *applier) sweep(b *pebble.Batch, now int64) error {
	lo := expiryFrom(a.p, a.expiryFloor)
	hi := expiryFrom(a.p, now+1)
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	var keys [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	if err := it.Close(); err != nil {
		return err
	}
	// Everything before now+1 goes; what sweeping indexes anew lowers
	// the floor again.
	a.expiryFloor = max(a.expiryFloor, now+1)
	for _, k := range keys {
		if err := a.sweepEntry(b, k, now); err != nil {
			return err
		}
		if err := b.Delete(k, nil); err != nil {
			return err
		}
	}
	return a.loadNextExpiry(b)
}

func (a *applier) sweepEntry(b *pebble.Batch, k []byte, now int64) error {
	kind := k[13]
	rest := k[14:]
	project, r1, ok := readStr(rest)
	if !ok {
		return fmt.Errorf("projection: corrupt expiry key %x", k)
	}
	queue, ref, ok := readStr(r1)
	if !ok {
		return fmt.Errorf("projection: corrupt expiry key %x", k)
	}
	prefix := append([]byte{tagMsgs}, rest[:len(rest)-len(ref)]...)
	switch kind {
	case kindSubscription:
		return a.sweepSubscription(b, project, queue, string(ref), now)
	case kindIdempotency:
		return sweepIdempotency(b, project, queue, string(ref), now)
	case kindMessage:
		if len(ref) != 8 {
			return fmt.Errorf("projection: corrupt expiry key %x", k)
		}
		m, err := getMessage(b, prefix, binary.BigEndian.Uint64(ref))
		if err != nil || m == nil || m.Live(now) {
			return err
		}
		return deleteMessageKeys(b, prefix, m)
	case kindClaim:
		c, err := getRecord[Claim](b, claimKey(prefix, string(ref)))
		if err != nil || c == nil || now < c.Expires {
			return err
		}
		return b.Delete(claimKey(prefix, string(ref)), nil)
	}
	return fmt.Errorf("projection: corrupt expiry key %x", k)
}

func putRecord(b *pebble.Batch, key []byte, v any) error {
	enc, err := hlog.Marshal(v)
	if err != nil {
		return err
	}
	return b.Set(key, enc, nil)
}

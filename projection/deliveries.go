package projection

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// Deliveries are the notifier's work list. Apply decides them, from the
// log alone: a message posted to a queue makes one pending delivery per
// subscription that may receive it at that event time (live, not a
// WebSocket connection's, confirmed when it needs to be), and a
// subscription that asks for confirmation makes a confirmation delivery.
// They stay in the projection until a subscription.delivered event from
// the notifier reports them done, so a crash or a move of the partition to
// another node loses none of them: whoever delivers next starts from what
// is still pending.

// Delivery kinds.
const (
	DeliverNotification = 'n' // a posted message
	DeliverConfirmation = 'c' // SubscriptionConfirmation
	DeliverUnsubscribed = 'u' // UnsubscribeConfirmation
)

// Delivery is one pending delivery to a subscription.
type Delivery struct {
	Kind byte `msgpack:"k"`
	// A notification's message as posted; its id is the delivery's
	// position (PositionID(partition, Offset, Index)).
	TTL     int64  `msgpack:"ttl,omitempty"`
	Delay   int64  `msgpack:"delay,omitempty"`
	Delayed bool   `msgpack:"delayed,omitempty"`
	Body    []byte `msgpack:"body,omitempty"`
	// A confirmation's signed URL expiry, Unix seconds.
	Until int64 `msgpack:"until,omitempty"`

	// Position of the event that made the delivery (set by reads).
	Offset int64 `msgpack:"-"`
	Index  int32 `msgpack:"-"`
}

// DeliveryStatus is what the notifier last reported about a subscription.
type DeliveryStatus struct {
	Delivered int64  `msgpack:"delivered,omitempty"`
	Dropped   int64  `msgpack:"dropped,omitempty"`
	Last      string `msgpack:"last,omitempty"`    // position id of the last delivery done
	LastAt    int64  `msgpack:"last_at,omitempty"` // ns
	Failures  int    `msgpack:"failures,omitempty"`
	LastError string `msgpack:"error,omitempty"`
	ErrorAt   int64  `msgpack:"error_at,omitempty"` // ns
	Suspended bool   `msgpack:"suspended,omitempty"`
}

// receives reports whether s gets notifications of messages posted at now.
func (s *Subscription) receives(now int64) bool {
	return s.Live(now) && !s.Socket && (!s.Confirm || s.Confirmed)
}

func deliveryKey(p int32, project, queue, id string, off int64, index int32) []byte {
	return appendU32(appendU64(deliveryPrefix(p, project, queue, id), uint64(off)), uint32(index))
}

func deliveryPrefix(p int32, project, queue, id string) []byte {
	return appendStr(appendStr(appendStr(appendU32([]byte{tagDelivery}, uint32(p)), project), queue), id)
}

func (a *applier) putDelivery(b *pebble.Batch, project, queue, id string, off int64, index int32, d *Delivery) error {
	a.delivers = true
	return putRecord(b, deliveryKey(a.p, project, queue, id, off, index), d)
}

// notifySubscribers makes the pending deliveries of messages just posted.
func (a *applier) notifySubscribers(b *pebble.Batch, off int64, ev *hlog.Event, pl *hlog.MessagesPostedV1) error {
	all, err := a.subscriptions(b, ev.Project, ev.Queue)
	if err != nil || len(all) == 0 {
		return err
	}
	var subs []string
	for i := range all {
		if all[i].receives(ev.Time) {
			subs = append(subs, all[i].ID)
		}
	}
	for i, m := range pl.Messages {
		d := &Delivery{Kind: DeliverNotification, TTL: m.TTL, Delay: m.Delay, Delayed: m.Delayed, Body: m.Body}
		for _, id := range subs {
			if err := a.putDelivery(b, ev.Project, ev.Queue, id, off, int32(i), d); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropDeliveries removes every pending delivery of subscription id.
func (a *applier) dropDeliveries(b *pebble.Batch, project, queue, id string) error {
	prefix := deliveryPrefix(a.p, project, queue, id)
	return b.DeleteRange(prefix, prefixEnd(prefix), nil)
}

// delivered applies the notifier's report on a subscription.
func (a *applier) delivered(b *pebble.Batch, ev *hlog.Event, pl *hlog.SubscriptionDeliveredV1) error {
	s, err := liveSubscription(b, ev.Project, ev.Queue, pl.ID, ev.Time)
	if err != nil || s == nil {
		return err
	}
	st := &s.Delivery
	if pl.Through >= 0 {
		prefix := deliveryPrefix(a.p, ev.Project, ev.Queue, s.ID)
		through := deliveryKey(a.p, ev.Project, ev.Queue, s.ID, pl.Through, pl.Index)
		if err := b.DeleteRange(prefix, prefixEnd(through), nil); err != nil {
			return err
		}
		st.Last, st.LastAt = PositionID(a.p, pl.Through, int(pl.Index)), ev.Time
	}
	st.Delivered += pl.Delivered
	st.Dropped += pl.Dropped
	st.Failures = pl.Failures
	if pl.LastError != "" {
		st.LastError, st.ErrorAt = pl.LastError, pl.ErrorAt
	}
	st.Suspended = pl.Suspended
	return a.putSub(b, ev.Project, ev.Queue, s)
}

// --- queries for the notifier ---

// DeliveryTarget names a subscription with pending deliveries.
type DeliveryTarget struct {
	Project, Queue, ID string
}

// PendingSubscriptions calls fn with each subscription of partition p that
// has pending deliveries, until fn returns false.
func (s *Store) PendingSubscriptions(p int32, fn func(DeliveryTarget) bool) error {
	lo := appendU32([]byte{tagDelivery}, uint32(p))
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; {
		rest := it.Key()[len(lo):]
		project, r1, ok1 := readStr(rest)
		queue, r2, ok2 := readStr(r1)
		id, _, ok3 := readStr(r2)
		if !ok1 || !ok2 || !ok3 {
			return fmt.Errorf("projection: corrupt delivery key %x", it.Key())
		}
		if !fn(DeliveryTarget{project, queue, id}) {
			break
		}
		ok = it.SeekGE(prefixEnd(deliveryPrefix(p, project, queue, id)))
	}
	return it.Error()
}

// PendingDeliveries returns up to limit pending deliveries of a
// subscription of partition p positioned after (off, index), in log order;
// off -1 starts at the first.
func (s *Store) PendingDeliveries(p int32, t DeliveryTarget, off int64, index int32, limit int) ([]Delivery, error) {
	prefix := deliveryPrefix(p, t.Project, t.Queue, t.ID)
	lo := prefix
	if off >= 0 {
		lo = prefixEnd(deliveryKey(p, t.Project, t.Queue, t.ID, off, index))
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Delivery
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		k := it.Key()[len(prefix):]
		if len(k) != 12 {
			return nil, fmt.Errorf("projection: corrupt delivery key %x", it.Key())
		}
		var d Delivery
		if err := hlog.Unmarshal(it.Value(), &d); err != nil {
			return nil, fmt.Errorf("projection: decode delivery %x: %w", it.Key(), err)
		}
		d.Offset, d.Index = int64(binary.BigEndian.Uint64(k)), int32(binary.BigEndian.Uint32(k[8:]))
		out = append(out, d)
	}
	return out, it.Error()
}

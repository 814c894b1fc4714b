package projection

import (
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// Subscriptions are unique by (project, queue, subscriber): the 'u' index
// maps a subscriber to the id holding it. A subscription expires TTL
// seconds after its creation or its last TTL change; reads hide it from
// then on and the sweep removes it with its index entry.

// Zaqar words the conflict of a create and of an update differently.
var (
	createConflict = &Outcome{Status: 409, Title: "Resource conflict",
		Description: "Such subscription already exists.Subscriptions are unique by project + queue + subscriber URI."}
	updateConflict = &Outcome{Status: 409, Title: "Resource conflict",
		Description: "Such subscription already exists. Subscriptions are unique by project + queue + subscriber URI."}
)

func subscriptionNotFound(id string) *Outcome {
	return &Outcome{Status: 404, Title: "Not found", Description: fmt.Sprintf("Subscription %s does not exist", id)}
}

// expiresAt is now plus ttl seconds, saturating at the end of time.
func expiresAt(now, ttl int64) int64 {
	if ttl > (math.MaxInt64-now)/1e9 {
		return math.MaxInt64
	}
	return now + ttl*1e9
}

// liveSubscription returns the subscription id of the queue, or nil when
// it does not exist or has expired at now.
func liveSubscription(r pebble.Reader, project, queue, id string, now int64) (*Subscription, error) {
	if !ValidID(id) {
		return nil, nil
	}
	s, err := getRecord[Subscription](r, subKey(project, queue, id))
	if err != nil || s == nil || !s.Live(now) {
		return nil, err
	}
	return s, nil
}

// subscriberHolder returns the live subscription holding subscriber.
func subscriberHolder(r pebble.Reader, project, queue, subscriber string, now int64) (*Subscription, error) {
	v, closer, err := r.Get(subUniqKey(project, queue, subscriber))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	id := string(v)
	closer.Close()
	return liveSubscription(r, project, queue, id, now)
}

func (a *applier) createSubscription(b *pebble.Batch, off int64, ev *hlog.Event, pl *hlog.SubscriptionCreatedV1) (*Outcome, error) {
	now := ev.Time
	old, err := subscriberHolder(b, ev.Project, ev.Queue, pl.Subscriber, now)
	if err != nil {
		return nil, err
	}
	if old != nil {
		if old.Confirmed {
			return createConflict, nil
		}
		// Re-subscribing while unconfirmed names the same subscription
		// and sends the confirmation again; 200 tells it apart from a new
		// one.
		return &Outcome{Status: 200, ID: old.ID}, a.askConfirmation(b, off, ev, old, pl.ConfirmUntil)
	}
	s := &Subscription{
		ID: PositionID(a.p, off, 0), Source: ev.Queue, Subscriber: pl.Subscriber,
		TTL: pl.TTL, Created: now, Expires: expiresAt(now, pl.TTL), Options: pl.Options,
		Socket: pl.Socket, Secret: pl.Secret, Confirm: pl.Confirm,
	}
	if len(s.Options) == 0 {
		s.Options = []byte("{}")
	}
	if err := a.putSubscription(b, ev, s, nil); err != nil {
		return nil, err
	}
	return &Outcome{Status: 201, ID: s.ID}, a.askConfirmation(b, off, ev, s, pl.ConfirmUntil)
}

// askConfirmation makes the delivery of a SubscriptionConfirmation to s
// when the event asked for one.
func (a *applier) askConfirmation(b *pebble.Batch, off int64, ev *hlog.Event, s *Subscription, until int64) error {
	if until == 0 || s.Socket {
		return nil
	}
	return a.putDelivery(b, ev.Project, ev.Queue, s.ID, off, 0, &Delivery{Kind: DeliverConfirmation, Until: until})
}

// putSubscription writes s and keeps its index entries in step; old is
// its previous version (nil for a new one).
func (a *applier) putSubscription(b *pebble.Batch, ev *hlog.Event, s, old *Subscription) error {
	if err := a.putSub(b, ev.Project, ev.Queue, s); err != nil {
		return err
	}
	prefix := dataPrefix(ev.Project, ev.Queue)
	if old != nil && old.Subscriber != s.Subscriber {
		if err := b.Delete(subUniqKey(ev.Project, ev.Queue, old.Subscriber), nil); err != nil {
			return err
		}
	}
	if err := b.Set(subUniqKey(ev.Project, ev.Queue, s.Subscriber), []byte(s.ID), nil); err != nil {
		return err
	}
	if old != nil && old.Expires != s.Expires {
		if err := b.Delete(expiryKey(a.p, old.Expires, kindSubscription, prefix, []byte(s.ID)), nil); err != nil {
			return err
		}
	}
	return a.index(b, s.Expires, kindSubscription, prefix, []byte(s.ID))
}

func (a *applier) updateSubscription(b *pebble.Batch, ev *hlog.Event, pl *hlog.SubscriptionUpdatedV1) (*Outcome, error) {
	now := ev.Time
	s, err := liveSubscription(b, ev.Project, ev.Queue, pl.ID, now)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return subscriptionNotFound(pl.ID), nil
	}
	old := *s
	if pl.Subscriber != nil && *pl.Subscriber != s.Subscriber {
		holder, err := subscriberHolder(b, ev.Project, ev.Queue, *pl.Subscriber, now)
		if err != nil {
			return nil, err
		}
		if holder != nil {
			return updateConflict, nil
		}
		s.Subscriber = *pl.Subscriber
	}
	if pl.TTL != nil {
		s.TTL, s.Expires = *pl.TTL, expiresAt(now, *pl.TTL)
	}
	if pl.Options != nil {
		s.Options = pl.Options
	}
	// An update is the owner's answer to a suspension: delivery resumes.
	s.Delivery.Suspended = false
	return &Outcome{Status: 204}, a.putSubscription(b, ev, s, &old)
}

func (a *applier) confirmSubscription(b *pebble.Batch, off int64, ev *hlog.Event, pl *hlog.SubscriptionConfirmedV1) (*Outcome, error) {
	s, err := liveSubscription(b, ev.Project, ev.Queue, pl.ID, ev.Time)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return subscriptionNotFound(pl.ID), nil
	}
	s.Confirmed = pl.Confirmed
	if !pl.Confirmed && pl.ConfirmUntil != 0 && !s.Socket {
		d := &Delivery{Kind: DeliverUnsubscribed, Until: pl.ConfirmUntil}
		if err := a.putDelivery(b, ev.Project, ev.Queue, s.ID, off, 0, d); err != nil {
			return nil, err
		}
	}
	return &Outcome{Status: 204}, a.putSub(b, ev.Project, ev.Queue, s)
}

func (a *applier) deleteSubscription(b *pebble.Batch, ev *hlog.Event, id string) error {
	if !ValidID(id) {
		return nil
	}
	s, err := getRecord[Subscription](b, subKey(ev.Project, ev.Queue, id))
	if err != nil || s == nil {
		return err
	}
	return a.removeSubscription(b, ev.Project, ev.Queue, s)
}

func (a *applier) removeSubscription(b *pebble.Batch, project, queue string, s *Subscription) error {
	if err := a.deleteSub(b, project, queue, s.ID); err != nil {
		return err
	}
	if err := b.Delete(subUniqKey(project, queue, s.Subscriber), nil); err != nil {
		return err
	}
	if err := a.dropDeliveries(b, project, queue, s.ID); err != nil {
		return err
	}
	return b.Delete(expiryKey(a.p, s.Expires, kindSubscription, dataPrefix(project, queue), []byte(s.ID)), nil)
}

// purgeSubscriptions deletes every subscription of the queue.
func (a *applier) purgeSubscriptions(b *pebble.Batch, ev *hlog.Event) error {
	var subs []*Subscription
	err := scanSubscriptions(b, ev.Project, ev.Queue, "", func(s *Subscription) bool {
		subs = append(subs, s)
		return true
	})
	if err != nil {
		return err
	}
	for _, s := range subs {
		if err := a.removeSubscription(b, ev.Project, ev.Queue, s); err != nil {
			return err
		}
	}
	return nil
}

// sweepSubscription removes subscription id if it expired at now.
func (a *applier) sweepSubscription(b *pebble.Batch, project, queue, id string, now int64) error {
	s, err := getRecord[Subscription](b, subKey(project, queue, id))
	if err != nil || s == nil || s.Live(now) {
		return err
	}
	if err := a.deleteSub(b, project, queue, id); err != nil {
		return err
	}
	if err := a.dropDeliveries(b, project, queue, id); err != nil {
		return err
	}
	// The index may already name a newer subscription of the subscriber.
	v, closer, err := b.Get(subUniqKey(project, queue, s.Subscriber))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	same := string(v) == id
	closer.Close()
	if !same {
		return nil
	}
	return b.Delete(subUniqKey(project, queue, s.Subscriber), nil)
}

// subscriptions returns every stored subscription of a queue, live or
// not, from the applier's cache when it has them: every post asks, and
// most queues have none.
func (a *applier) subscriptions(b *pebble.Batch, project, queue string) ([]Subscription, error) {
	k := string(subsPrefix(project, queue))
	if subs, ok := a.subs[k]; ok {
		return subs, nil
	}
	var subs []Subscription
	err := scanSubscriptions(b, project, queue, "", func(s *Subscription) bool {
		subs = append(subs, *s)
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(a.subs) >= maxCachedQueues {
		clear(a.subs)
	}
	a.subs[k] = subs
	return subs, nil
}

// putSub writes a subscription record, and through to the cache: the
// notifier's delivery reports rewrite busy subscriptions all the time.
func (a *applier) putSub(b *pebble.Batch, project, queue string, s *Subscription) error {
	a.cacheSubs(project, queue, s.ID, s)
	return putRecord(b, subKey(project, queue, s.ID), s)
}

// deleteSub deletes a subscription record.
func (a *applier) deleteSub(b *pebble.Batch, project, queue, id string) error {
	a.cacheSubs(project, queue, id, nil)
	return b.Delete(subKey(project, queue, id), nil)
}

// cacheSubs replaces subscription id of a cached queue with s (nil:
// removes it). The cached slice is never changed in place.
func (a *applier) cacheSubs(project, queue, id string, s *Subscription) {
	k := string(subsPrefix(project, queue))
	subs, ok := a.subs[k]
	if !ok {
		return
	}
	next := make([]Subscription, 0, len(subs)+1)
	for _, x := range subs {
		if x.ID != id {
			next = append(next, x)
		}
	}
	if s != nil {
		next = append(next, *s)
	}
	a.subs[k] = next
}

// scanSubscriptions calls fn with each stored subscription of the queue
// with id > after, in id (creation) order, until fn returns false.
func scanSubscriptions(r pebble.Reader, project, queue, after string, fn func(*Subscription) bool) error {
	prefix := subsPrefix(project, queue)
	lo := prefix
	if after != "" {
		lo = append(subKey(project, queue, after), 0)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		var s Subscription
		if err := hlog.Unmarshal(it.Value(), &s); err != nil {
			return fmt.Errorf("projection: decode subscription %x: %w", it.Key(), err)
		}
		if !fn(&s) {
			break
		}
	}
	return it.Error()
}

// --- queries for the API ---

// Subscription returns a live subscription of the queue, or nil.
func (s *Store) Subscription(project, queue, id string, now int64) (*Subscription, error) {
	return liveSubscription(s.db, project, queue, id, now)
}

// Subscriptions returns up to limit live subscriptions of the queue with
// ids after marker, in creation order.
func (s *Store) Subscriptions(project, queue, marker string, limit int, now int64) ([]Subscription, error) {
	var out []Subscription
	err := scanSubscriptions(s.db, project, queue, marker, func(sub *Subscription) bool {
		if sub.Live(now) {
			out = append(out, *sub)
		}
		return len(out) < limit
	})
	return out, err
}

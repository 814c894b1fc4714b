package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// SubscriberTypes are the subscriber URI schemes Herald accepts (Zaqar's
// transport.subscriber_types).
var SubscriberTypes = []string{"http", "https", "mailto", "trust+http", "trust+https"}

// maxUnixSeconds is the last second Python's datetime can represent; Zaqar
// refuses subscription TTLs that reach past it.
const maxUnixSeconds = 253402300799

// subscriberScheme returns the scheme of a subscriber URI the way Python's
// urllib.parse does: the lowercased text before the first ':' when it is
// made of scheme characters and starts with a letter.
func subscriberScheme(u string) string {
	i := strings.IndexByte(u, ':')
	if i <= 0 || !isLetter(u[0]) {
		return ""
	}
	for j := 0; j < i; j++ {
		c := u[j]
		if !isLetter(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.' {
			return ""
		}
	}
	return strings.ToLower(u[:i])
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// subscriptionFields are the validated fields of a subscription create or
// update; nil means absent.
type subscriptionFields struct {
	Subscriber *string
	TTL        *int64
	Options    []byte
}

// parseSubscription validates a subscription document with Zaqar's rules
// (contract §3.10.1): typed fields are checked only when truthy.
func (s *Service) parseSubscription(doc map[string]any) (*subscriptionFields, *Error) {
	var f subscriptionFields
	if v, ok := doc["subscriber"]; ok && v != nil {
		sub, isStr := v.(string)
		scheme := ""
		if isStr {
			scheme = subscriberScheme(sub)
		}
		supported := false
		for _, t := range SubscriberTypes {
			supported = supported || scheme == t
		}
		if !supported {
			return nil, BadRequest("The subscriber type of subscription must be supported in the list %s.", pyList(SubscriberTypes))
		}
		f.Subscriber = &sub
	}
	if opts, ok := doc["options"]; ok && projection.Truthy(opts) {
		m, isObj := opts.(map[string]any)
		if !isObj {
			return nil, BadRequest("Options must be a dict.")
		}
		if err := projection.ValidateRetryPolicy(m["_retry_policy"]); err != nil {
			return nil, BadRequest("%s", err.Error())
		}
		f.Options = projection.EncodeJSON(m)
	} else if ok && opts != nil {
		f.Options = []byte("{}")
	}
	if v, ok := doc["ttl"]; ok && v != nil {
		ttl, isInt := projection.IntOf(v)
		switch {
		case projection.Truthy(v) && !isInt:
			return nil, BadRequest("TTL must be an integer.")
		case ttl != 0 && ttl < 60:
			return nil, BadRequest("The TTL for a subscription must be at least 60 seconds long.")
		case ttl > maxUnixSeconds-s.now().Unix():
			return nil, BadRequest("The TTL seconds for a subscription plus current time must be less than 9999-12-31 23:59:59.999999.")
		}
		f.TTL = &ttl
	}
	return &f, nil
}

// SubscriptionJSON renders a subscription for both transports;
// python-zaqarclient needs every one of these keys (contract M9).
// Subscriptions have no href.
func SubscriptionJSON(s *projection.Subscription, now int64) map[string]any {
	return map[string]any{
		"id": s.ID, "source": QueueName(s.Source), "subscriber": s.Subscriber, "ttl": s.TTL,
		"age": Age(s.Created, now), "options": json.RawMessage(s.Options), "confirmed": s.Confirmed,
	}
}

// pyList renders strings the way Python prints a list of them.
func pyList(items []string) string {
	l := make([]any, len(items))
	for i, s := range items {
		l[i] = s
	}
	return pyRepr(l)
}

// CreateSubscription subscribes to queue with the fields of doc and
// returns the subscription id and whether it is new: a new one, or that
// of the same subscriber's unconfirmed subscription. The queue is created
// first if needed, even when doc turns out to be invalid (contract
// §2.5.2).
func (s *Service) CreateSubscription(ctx context.Context, c Caller, queue string, doc map[string]any) (string, bool, error) {
	if _, err := s.PrepareQueue(ctx, c, queue); err != nil {
		return "", false, err
	}
	if _, ok := doc["subscriber"]; !ok {
		return "", false, BadRequest("Missing parameter subscriber in body.")
	}
	f, e := s.parseSubscription(doc)
	if e != nil {
		return "", false, e
	}
	if f.Subscriber == nil || *f.Subscriber == "" {
		return "", false, BadRequest("The subscriber type of subscription must be supported in the list %s.", pyList(SubscriberTypes))
	}
	pl := &hlog.SubscriptionCreatedV1{Subscriber: *f.Subscriber, TTL: s.cfg.DefaultSubscriptionTTL, Options: f.Options}
	if f.TTL != nil {
		pl.TTL = *f.TTL
	}
	ev, err := s.event(hlog.SubscriptionCreated, c, queue, pl)
	if err != nil {
		return "", false, err
	}
	_, _, out, err := s.write(ctx, c, ev)
	if err != nil {
		return "", false, err
	}
	return out.ID, out.Status == 201, nil
}

// UpdateSubscription changes the subscriber, ttl and/or options of a
// subscription (contract §2.5.4). doc is the parsed body, nil when the
// request had none.
func (s *Service) UpdateSubscription(ctx context.Context, c Caller, queue, id string, doc any) error {
	m, isObj := doc.(map[string]any)
	if !projection.Truthy(doc) {
		return BadRequest("No subscription to create.")
	}
	if !isObj {
		return BadRequest("Subscriptions must be a dict.")
	}
	f, e := s.parseSubscription(m)
	if e != nil {
		return e
	}
	if f.Subscriber == nil && f.TTL == nil && f.Options == nil {
		return &Error{Status: 400, Title: "Unable to update subscription",
			Description: fmt.Sprintf("Subscription %s could not be updated.", id)}
	}
	if f.Subscriber != nil && *f.Subscriber == "" {
		return BadRequest("The subscriber type of subscription must be supported in the list %s.", pyList(SubscriberTypes))
	}
	ev, err := s.event(hlog.SubscriptionUpdated, c, queue, &hlog.SubscriptionUpdatedV1{ID: id, Subscriber: f.Subscriber, TTL: f.TTL, Options: f.Options})
	if err != nil {
		return err
	}
	_, _, _, err = s.write(ctx, c, ev)
	return err
}

// DeleteSubscription deletes a subscription of queue; unknown ids are fine.
func (s *Service) DeleteSubscription(ctx context.Context, c Caller, queue, id string) error {
	ev, err := s.event(hlog.SubscriptionDeleted, c, queue, &hlog.SubscriptionDeletedV1{ID: id})
	if err != nil {
		return err
	}
	_, _, _, err = s.write(ctx, c, ev)
	return err
}

// ConfirmSubscription sets the confirmed flag from doc["confirmed"].
func (s *Service) ConfirmSubscription(ctx context.Context, c Caller, queue, id string, doc map[string]any) error {
	confirmed, ok := doc["confirmed"].(bool)
	if !ok {
		return BadRequest("The 'confirmed' should be boolean.")
	}
	ev, err := s.event(hlog.SubscriptionConfirmed, c, queue, &hlog.SubscriptionConfirmedV1{ID: id, Confirmed: confirmed})
	if err != nil {
		return err
	}
	_, _, _, err = s.write(ctx, c, ev)
	return err
}

// GetSubscription returns a live subscription of queue.
func (s *Service) GetSubscription(ctx context.Context, c Caller, queue, id string) (*projection.Subscription, error) {
	store, err := s.storeFor(ctx, c, queue)
	if err != nil {
		return nil, err
	}
	sub, err := store.Subscription(c.Project, queue, id, s.Now())
	if err != nil {
		return nil, Unavailable("Subscription could not be retrieved.", err)
	}
	if sub == nil {
		return nil, NotFound("Subscription %s does not exist", id)
	}
	return sub, nil
}

// ListSubscriptions lists the queue's live subscriptions after marker.
func (s *Service) ListSubscriptions(ctx context.Context, c Caller, queue, marker string, limit int) ([]projection.Subscription, error) {
	if limit == 0 {
		limit = 10
	}
	if limit < 1 || limit > s.cfg.MaxSubscriptionsPerPage {
		return nil, BadRequest("Limit must be at least 1 and may not be greater than %d.", s.cfg.MaxSubscriptionsPerPage)
	}
	store, err := s.storeFor(ctx, c, queue)
	if err != nil {
		return nil, err
	}
	subs, err := store.Subscriptions(c.Project, queue, marker, limit, s.Now())
	if err != nil {
		return nil, Unavailable("Subscriptions could not be listed.", err)
	}
	return subs, nil
}

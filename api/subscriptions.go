package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

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
//
// Beyond Zaqar, a subscription served by the notifier carries its delivery
// status under "delivery" (clients ignore unknown keys).
func SubscriptionJSON(s *projection.Subscription, now int64) map[string]any {
	out := map[string]any{
		"id": s.ID, "source": QueueName(s.Source), "subscriber": s.Subscriber, "ttl": s.TTL,
		"age": Age(s.Created, now), "options": json.RawMessage(s.Options), "confirmed": s.Confirmed,
	}
	if !s.Socket {
		out["delivery"] = deliveryJSON(&s.Delivery)
	}
	return out
}

func deliveryJSON(d *projection.DeliveryStatus) map[string]any {
	state := "active"
	if d.Suspended {
		state = "suspended"
	}
	stamp := func(ns int64) any {
		if ns == 0 {
			return nil
		}
		return time.Unix(0, ns).UTC().Format(time.RFC3339)
	}
	out := map[string]any{
		"state": state, "delivered": d.Delivered, "dropped": d.Dropped,
		"consecutive_failures": d.Failures,
		"last_delivered":       nil, "last_delivered_at": stamp(d.LastAt),
		"last_error": nil, "last_error_at": stamp(d.ErrorAt),
	}
	if d.Last != "" {
		out["last_delivered"] = d.Last
	}
	if d.LastError != "" {
		out["last_error"] = d.LastError
	}
	return out
}

// NotificationPayload is what a subscriber receives for one posted
// message (contract §3.10.2): the message as accepted — ttl, body, and
// delay when it had one (every message of a delay-enabled queue has one,
// maybe 0) — with Message_Type and queue_name. Both the WebSocket hub and
// the notifier send it.
func NotificationPayload(queue string, ttl, delay int64, delayed bool, body []byte) map[string]any {
	p := map[string]any{"ttl": ttl, "body": json.RawMessage(body),
		"Message_Type": "Notification", "queue_name": QueueName(queue)}
	if delayed || delay > 0 {
		p["delay"] = delay
	}
	return p
}

// pyList renders strings the way Python prints a list of them.
func pyList(items []string) string {
	l := make([]any, len(items))
	for i, s := range items {
		l[i] = s
	}
	return pyRepr(l)
}

// NewSubscription is the answer to a subscription create.
type NewSubscription struct {
	ID string
	// Created is false when the subscriber already had an unconfirmed
	// subscription of the queue: ID names that one.
	Created bool
	// Secret signs the webhook requests of the subscription (extension).
	Secret string
}

// CreateSubscription subscribes to queue with the fields of doc. A socket
// subscription belongs to a WebSocket connection, which receives its
// notifications itself; the others are the notifier's. The queue is
// created first if needed, even when doc turns out to be invalid
// (contract §2.5.2).
func (s *Service) CreateSubscription(ctx context.Context, c Caller, queue string, doc map[string]any, socket bool) (NewSubscription, error) {
	var none NewSubscription
	if _, err := s.PrepareQueue(ctx, c, queue); err != nil {
		return none, err
	}
	if _, ok := doc["subscriber"]; !ok {
		return none, BadRequest("Missing parameter subscriber in body.")
	}
	f, e := s.parseSubscription(doc)
	if e != nil {
		return none, e
	}
	if f.Subscriber == nil || *f.Subscriber == "" {
		return none, BadRequest("The subscriber type of subscription must be supported in the list %s.", pyList(SubscriberTypes))
	}
	pl := &hlog.SubscriptionCreatedV1{Subscriber: *f.Subscriber, TTL: s.cfg.DefaultSubscriptionTTL, Options: f.Options, Socket: socket}
	if f.TTL != nil {
		pl.TTL = *f.TTL
	}
	if !socket {
		pl.Secret = newSecret()
		pl.Confirm = s.cfg.RequireConfirmation
		pl.ConfirmUntil = s.confirmUntil(pl.TTL)
	}
	ev, err := s.event(hlog.SubscriptionCreated, c, queue, pl)
	if err != nil {
		return none, err
	}
	_, _, out, err := s.write(ctx, c, ev)
	if err != nil {
		return none, err
	}
	made := NewSubscription{ID: out.ID, Created: out.Status == 201, Secret: pl.Secret}
	if !made.Created || out.Repeat {
		// The secret is the first request's (an Idempotency-Key repeat)
		// or the existing subscription's.
		sub, err := s.GetSubscription(ctx, c, queue, out.ID)
		if err != nil {
			return none, err
		}
		made.Secret = sub.Secret
	}
	return made, nil
}

// confirmUntil is the expiry (Unix seconds) of the signed URL of a
// confirmation request valid for ttl seconds, or 0 when this node sends
// none (contract §3.10.4: confirmation needs both the option and a key).
func (s *Service) confirmUntil(ttl int64) int64 {
	if !s.cfg.RequireConfirmation || s.cfg.SignedURLKey == "" {
		return 0
	}
	return min(s.now().Unix()+ttl, maxUnixSeconds)
}

// newSecret returns a fresh webhook signing secret.
func newSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
	pl := &hlog.SubscriptionConfirmedV1{ID: id, Confirmed: confirmed}
	if !confirmed {
		// "You have unsubscribed", with a URL to subscribe again.
		pl.ConfirmUntil = s.confirmUntil(s.cfg.DefaultSubscriptionTTL)
	}
	ev, err := s.event(hlog.SubscriptionConfirmed, c, queue, pl)
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

package projection

import (
	"context"
	"testing"
	"time"

	hlog "github.com/heraldmq/herald/log"
)

// TestDeliveriesFollowSubscriptions checks which pending deliveries apply
// makes, and that the notifier's reports and subscription changes remove
// them.
func TestDeliveriesFollowSubscriptions(t *testing.T) {
	l, s, p := running(t, ProjectorOptions{})
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	add := func(typ hlog.Type, queue string, payload any) int64 {
		t.Helper()
		ev, err := hlog.NewEvent(typ, "p", queue, now, payload)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := ev.Record()
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := p.WaitApplied(ctx, rec.Partition, rec.Offset); err != nil {
			t.Fatal(err)
		}
		now += int64(time.Second)
		return rec.Offset
	}
	sub := func(subscriber string, pl hlog.SubscriptionCreatedV1) (string, int64) {
		pl.Subscriber, pl.TTL = subscriber, 3600
		off := add(hlog.SubscriptionCreated, "q", &pl)
		return PositionID(0, off, 0), off
	}
	pending := func(id string) []Delivery {
		t.Helper()
		ds, err := s.PendingDeliveries(0, DeliveryTarget{"p", "q", id}, -1, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}

	plain, _ := sub("http://a", hlog.SubscriptionCreatedV1{Secret: "k"})
	socket, _ := sub("http://node:9000/conn", hlog.SubscriptionCreatedV1{Socket: true})
	unconfirmed, confOff := sub("http://b", hlog.SubscriptionCreatedV1{Confirm: true, ConfirmUntil: 1900000000})
	post := add(hlog.MessagesPosted, "q", &hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{
		{TTL: 60, Body: []byte(`{"n":1}`)}, {TTL: 120, Delay: 5, Body: []byte(`"two"`)}}})

	ds := pending(plain)
	if len(ds) != 2 || ds[0].Index != 0 || ds[1].Offset != post ||
		string(ds[0].Body) != `{"n":1}` || ds[1].Delay != 5 || ds[1].TTL != 120 || ds[0].Kind != DeliverNotification ||
		ds[0].Offset != post || ds[1].Index != 1 {
		t.Fatalf("plain subscription pending %+v, want the two posted messages", ds)
	}
	if ds := pending(socket); len(ds) != 0 {
		t.Fatalf("WebSocket subscription has %d pending deliveries; its socket gets them", len(ds))
	}
	// Unconfirmed while confirmation is required: only the request.
	if ds := pending(unconfirmed); len(ds) != 1 || ds[0].Kind != DeliverConfirmation || ds[0].Until != 1900000000 || ds[0].Offset != confOff {
		t.Fatalf("unconfirmed subscription pending %+v, want its confirmation request only", ds)
	}
	var targets []DeliveryTarget
	s.PendingSubscriptions(0, func(t DeliveryTarget) bool { targets = append(targets, t); return true })
	if len(targets) != 2 || targets[0].ID != plain || targets[1].ID != unconfirmed {
		t.Fatalf("subscriptions with pending deliveries %v, want %s and %s", targets, plain, unconfirmed)
	}

	// Subscribing again while unconfirmed asks again; confirming lets
	// messages through; unconfirming sends the unsubscribe message.
	again := add(hlog.SubscriptionCreated, "q", &hlog.SubscriptionCreatedV1{Subscriber: "http://b", TTL: 60, ConfirmUntil: 1900000001})
	add(hlog.SubscriptionConfirmed, "q", &hlog.SubscriptionConfirmedV1{ID: unconfirmed, Confirmed: true})
	post2 := add(hlog.MessagesPosted, "q", &hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{{TTL: 60, Body: []byte(`3`)}}})
	bye := add(hlog.SubscriptionConfirmed, "q", &hlog.SubscriptionConfirmedV1{ID: unconfirmed, Confirmed: false, ConfirmUntil: 1900000002})
	ds = pending(unconfirmed)
	if len(ds) != 4 || ds[1].Offset != again || ds[1].Kind != DeliverConfirmation || ds[2].Offset != post2 ||
		ds[2].Kind != DeliverNotification || ds[3].Offset != bye || ds[3].Kind != DeliverUnsubscribed || ds[3].Until != 1900000002 {
		t.Fatalf("pending %+v, want confirmation, confirmation, message, unsubscribed", ds)
	}

	// A report removes what it covers and records the status.
	add(hlog.SubscriptionDelivered, "q", &hlog.SubscriptionDeliveredV1{ID: plain, Through: post, Index: 0, Delivered: 1, Failures: 2, LastError: "HTTP 503", ErrorAt: 7})
	if ds := pending(plain); len(ds) != 2 || ds[0].Offset != post || ds[0].Index != 1 {
		t.Fatalf("after a report through the first message, pending %+v", ds)
	}
	got, err := s.Subscription("p", "q", plain, now)
	if err != nil || got == nil {
		t.Fatal(got, err)
	}
	want := DeliveryStatus{Delivered: 1, Last: PositionID(0, post, 0), LastAt: now - int64(time.Second), Failures: 2, LastError: "HTTP 503", ErrorAt: 7}
	if got.Delivery != want {
		t.Fatalf("status %+v, want %+v", got.Delivery, want)
	}
	// A status-only report keeps the pending ones; suspension is lifted
	// by an update.
	add(hlog.SubscriptionDelivered, "q", &hlog.SubscriptionDeliveredV1{ID: plain, Through: -1, Failures: 3, Suspended: true})
	if got, _ := s.Subscription("p", "q", plain, now); !got.Delivery.Suspended || got.Delivery.Failures != 3 || got.Delivery.LastError != "HTTP 503" || len(pending(plain)) != 2 {
		t.Fatalf("after a suspending report %+v, %d pending", got.Delivery, len(pending(plain)))
	}
	ttl := int64(600)
	add(hlog.SubscriptionUpdated, "q", &hlog.SubscriptionUpdatedV1{ID: plain, TTL: &ttl})
	if got, _ := s.Subscription("p", "q", plain, now); got.Delivery.Suspended {
		t.Fatalf("an update left the subscription suspended: %+v", got.Delivery)
	}
	// Deleting the subscription drops its deliveries.
	add(hlog.SubscriptionDeleted, "q", &hlog.SubscriptionDeletedV1{ID: plain})
	if ds := pending(plain); len(ds) != 0 {
		t.Fatalf("deleted subscription still has %d pending deliveries", len(ds))
	}
	// So does expiry: the sweep at a later event removes them.
	now += int64(2 * time.Hour)
	add(hlog.QueueCreated, "other", &hlog.QueueCreatedV1{Metadata: []byte(`{}`)})
	if ds := pending(unconfirmed); len(ds) != 0 {
		t.Fatalf("expired subscription still has %d pending deliveries", len(ds))
	}
}

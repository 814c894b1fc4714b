package notifier

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/heraldmq/herald/api"
	"github.com/heraldmq/herald/projection"
)

// Zaqar's message types.
const (
	typeSubscribe   = "SubscriptionConfirmation"
	typeUnsubscribe = "UnsubscribeConfirmation"
)

// confirmPath is the path a subscription is confirmed at.
func confirmPath(queue, id string) string {
	kind := "queues"
	if strings.HasPrefix(queue, projection.TopicPrefix) {
		kind = "topics"
	}
	return fmt.Sprintf("/v2/%s/%s/subscriptions/%s/confirm", kind, api.QueueName(queue), id)
}

// payload is what a delivery sends (contract §3.10.2, §3.10.4).
func (n *Notifier) payload(t target, d *projection.Delivery) map[string]any {
	name := api.QueueName(t.Queue)
	if d.Kind == projection.DeliverNotification {
		return api.NotificationPayload(t.Queue, d.TTL, d.Delay, d.Delayed, d.Body)
	}
	path := confirmPath(t.Queue, t.ID)
	expires := time.Unix(d.Until, 0).UTC()
	m := map[string]any{
		"Message_Type":    typeSubscribe,
		"Message":         "You have chosen to subscribe to the queue: " + name,
		"URL-Signature":   api.Sign(n.cfg.SignedURLKey, []string{path}, []string{"PUT"}, t.Project, expires),
		"URL-Methods":     "PUT",
		"URL-Paths":       path,
		"X-Project-ID":    t.Project,
		"URL-Expires":     expires.Format(api.SignedDateFormat),
		"SubscribeBody":   map[string]bool{"confirmed": true},
		"UnsubscribeBody": map[string]bool{"confirmed": false},
		"queue_name":      name,
	}
	if d.Kind == projection.DeliverUnsubscribed {
		m["Message_Type"] = typeUnsubscribe
		m["Message"] = "You have unsubscribed successfully to the queue: " + name +
			", you can resubscribe it by using confirmed=True."
	}
	if n.cfg.PublicURL != "" {
		m["WSGISubscribeURL"] = strings.TrimRight(n.cfg.PublicURL, "/") + path
	}
	if n.cfg.PublicWSURL != "" {
		m["WebSocketSubscribeURL"] = strings.TrimRight(n.cfg.PublicWSURL, "/") + path
	}
	return m
}

// confirmationLink is the link a confirmation e-mail carries when the
// operator runs a confirmation page (contract §3.10.4 item 4); empty
// without one. m is the confirmation's payload.
func (n *Notifier) confirmationLink(m map[string]any) string {
	if n.cfg.ConfirmationPage == "" {
		return ""
	}
	s := func(k string) string { v, _ := m[k].(string); return v }
	q := url.Values{}
	q.Set("Signature", s("URL-Signature"))
	q.Set("Methods", s("URL-Methods"))
	q.Set("Paths", s("URL-Paths"))
	q.Set("Project", s("X-Project-ID"))
	q.Set("Expires", s("URL-Expires"))
	q.Set("Url", s("WSGISubscribeURL"))
	q.Set("Queue", s("queue_name"))
	return n.cfg.ConfirmationPage + "?" + q.Encode()
}

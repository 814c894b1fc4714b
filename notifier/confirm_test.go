package notifier

import (
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldmq/herald/api"
	"github.com/heraldmq/herald/projection"
)

const signedKey = "k"

// confirmationKeys are the keys of a (un)subscribe confirmation message
// (contract §3.10.4) when the notifier knows its public REST URL.
var confirmationKeys = []string{"Message", "Message_Type", "SubscribeBody", "URL-Expires", "URL-Methods",
	"URL-Paths", "URL-Signature", "UnsubscribeBody", "WSGISubscribeURL", "X-Project-ID", "queue_name"}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// checkConfirmation checks a (un)subscribe confirmation message for
// subscription id of queue (named name in the API): its keys and
// values, and that its signed URL lets the subscriber PUT the confirm
// path — and nothing else — until about ttl seconds from now.
func checkConfirmation(t *testing.T, h *harness, m map[string]any, kind, name, kindPath, id string, ttl int64, keys []string) {
	t.Helper()
	if got := keysOf(m); !slices.Equal(got, keys) {
		t.Errorf("keys %v, want %v", got, keys)
	}
	path := "/v2/" + kindPath + "/" + name + "/subscriptions/" + id + "/confirm"
	message := "You have chosen to subscribe to the queue: " + name
	if kind == "UnsubscribeConfirmation" {
		message = "You have unsubscribed successfully to the queue: " + name + ", you can resubscribe it by using confirmed=True."
	}
	for k, v := range map[string]any{
		"Message_Type": kind, "Message": message, "URL-Methods": "PUT", "URL-Paths": path,
		"X-Project-ID": testProject, "queue_name": name,
		"SubscribeBody": map[string]any{"confirmed": true}, "UnsubscribeBody": map[string]any{"confirmed": false},
	} {
		if !reflect.DeepEqual(m[k], v) {
			t.Errorf("%s: %#v, want %#v", k, m[k], v)
		}
	}
	if _, ok := m["WSGISubscribeURL"]; ok {
		if got := m["WSGISubscribeURL"]; got != "http://herald.example"+path {
			t.Errorf("WSGISubscribeURL %v", got)
		}
	}
	if _, ok := m["WebSocketSubscribeURL"]; ok {
		if got := m["WebSocketSubscribeURL"]; got != "ws://herald.example:9000"+path {
			t.Errorf("WebSocketSubscribeURL %v", got)
		}
	}
	expires, _ := m["URL-Expires"].(string)
	exp, err := time.Parse(api.SignedDateFormat, expires)
	if err != nil {
		t.Fatalf("URL-Expires %q: %v", expires, err)
	}
	if d := exp.Unix() - time.Now().Unix(); d < ttl-60 || d > ttl+1 {
		t.Errorf("URL-Expires %s is %ds from now, want about %d", expires, d, ttl)
	}
	sig, _ := m["URL-Signature"].(string)
	if want := api.Sign(signedKey, []string{path}, []string{"PUT"}, testProject, exp); sig != want {
		t.Errorf("URL-Signature %q, want %q", sig, want)
	}
	// What the REST layer checks of the subscriber's PUT.
	if !h.svc.VerifySigned("PUT", path, sig, expires, "PUT", path, testProject) {
		t.Errorf("the signed URL does not verify for PUT %s", path)
	}
	if h.svc.VerifySigned("DELETE", path, sig, expires, "PUT", path, testProject) ||
		h.svc.VerifySigned("PUT", path, sig, expires, "PUT,DELETE", path, testProject) ||
		h.svc.VerifySigned("PUT", path, sig, expires, "PUT", path, "other-project") {
		t.Errorf("the signed URL verifies beyond PUT %s", path)
	}
}

// pendingFor reports whether the projection holds pending deliveries of
// subscription id.
func pendingFor(t *testing.T, h *harness, id string) bool {
	t.Helper()
	found := false
	for p := range h.log.Partitions() {
		err := h.r.Store.PendingSubscriptions(int32(p), func(tg projection.DeliveryTarget) bool {
			found = found || tg.ID == id
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return found
}

// byType splits a receiver's accepted requests by Message_Type.
func byType(t *testing.T, rc *receiver) map[string][]hit {
	out := map[string][]hit{}
	for _, x := range rc.accepted() {
		kind, _ := decode(t, x.Body)["Message_Type"].(string)
		out[kind] = append(out[kind], x)
	}
	return out
}

// TestConfirmationFlow runs the opt-in confirmation flow of a webhook
// subscription: creating it sends one SubscriptionConfirmation whose
// signed URL confirms it; messages posted before confirmation are not
// notified; after confirmation they are; unconfirming sends an
// UnsubscribeConfirmation and stops notifications; subscribing again
// while unconfirmed sends the confirmation request again.
func TestConfirmationFlow(t *testing.T) {
	h := newHarness(t, api.Config{RequireConfirmation: true, SignedURLKey: signedKey})
	rc := newReceiver(t, nil)
	h.start(Config{SignedURLKey: signedKey, PublicURL: "http://herald.example/", PublicWSURL: "ws://herald.example:9000"})
	keys := slices.Sorted(slices.Values(append(slices.Clone(confirmationKeys), "WebSocketSubscribeURL")))

	made := h.subscribe("q", rc.URL, "")
	if !made.Created {
		t.Fatal("not created")
	}
	eventually(t, "the confirmation request", func() bool { return len(rc.accepted()) == 1 }, rc.describe)
	x := rc.accepted()[0]
	checkConfirmation(t, h, decode(t, x.Body), "SubscriptionConfirmation", "q", "queues", made.ID, 3600, keys)
	if x.Header.Get(HeaderSubscription) != made.ID || x.Header.Get(HeaderDelivery) == "" ||
		x.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", x.Header)
	}
	ts, _ := strconv.ParseInt(x.Header.Get(HeaderTimestamp), 10, 64)
	if !Verify(made.Secret, ts, x.Body, x.Header.Get(HeaderSignature)) {
		t.Errorf("confirmation request not signed with the subscription's secret")
	}
	if got := subscriptionField(h, "q", made.ID, "confirmed"); got != false {
		t.Errorf("confirmed %v before confirmation", got)
	}

	// Unconfirmed: messages make no deliveries at all.
	h.postBodies("q", `"early 1"`, `"early 2"`)
	eventually(t, "the confirmation reported", func() bool { return !pendingFor(t, h, made.ID) }, nil)
	time.Sleep(100 * time.Millisecond)
	if n := len(rc.all()); n != 1 {
		t.Fatalf("%d requests before confirmation, want the confirmation request only: %s", n, rc.describe())
	}

	h.confirm("q", made.ID, true)
	if got := subscriptionField(h, "q", made.ID, "confirmed"); got != true {
		t.Errorf("confirmed %v after confirmation", got)
	}
	ids := h.postBodies("q", `"after 1"`, `"after 2"`)
	eventually(t, "notifications", func() bool { return rc.hasAll(ids) }, rc.describe)
	notes := byType(t, rc)["Notification"]
	if len(notes) != 2 {
		t.Fatalf("%d notifications, want the 2 posted after confirmation: %s", len(notes), rc.describe())
	}
	for _, x := range notes {
		if body := decode(t, x.Body)["body"]; body != "after 1" && body != "after 2" {
			t.Errorf("notified %v", body)
		}
	}

	h.confirm("q", made.ID, false)
	eventually(t, "the unsubscribe confirmation", func() bool { return len(byType(t, rc)["UnsubscribeConfirmation"]) == 1 }, rc.describe)
	checkConfirmation(t, h, decode(t, byType(t, rc)["UnsubscribeConfirmation"][0].Body),
		"UnsubscribeConfirmation", "q", "queues", made.ID, 3600, keys)
	h.postBodies("q", `"unsubscribed"`)
	if pendingFor(t, h, made.ID) {
		eventually(t, "no pending deliveries", func() bool { return !pendingFor(t, h, made.ID) }, rc.describe)
	}

	again := h.subscribe("q", rc.URL, "")
	if again.ID != made.ID || again.Created || again.Secret != made.Secret {
		t.Fatalf("re-subscribe: %+v, want subscription %s again", again, made.ID)
	}
	eventually(t, "the second confirmation request", func() bool { return len(byType(t, rc)["SubscriptionConfirmation"]) == 2 }, rc.describe)
	second := byType(t, rc)["SubscriptionConfirmation"][1]
	checkConfirmation(t, h, decode(t, second.Body), "SubscriptionConfirmation", "q", "queues", made.ID, 3600, keys)
	eventually(t, "everything reported", func() bool { return !pendingFor(t, h, made.ID) }, nil)
	time.Sleep(50 * time.Millisecond)
	kinds := byType(t, rc)
	if len(kinds["Notification"]) != 2 || len(kinds["SubscriptionConfirmation"]) != 2 ||
		len(kinds["UnsubscribeConfirmation"]) != 1 || len(rc.all()) != 5 {
		t.Errorf("requests: %s", rc.describe())
	}
}

// TestConfirmationOfTopicSubscription checks the confirm path of a topic
// subscription (/v2/topics/...) and that without public URLs the
// confirmation names none.
func TestConfirmationOfTopicSubscription(t *testing.T) {
	h := newHarness(t, api.Config{RequireConfirmation: true, SignedURLKey: signedKey})
	rc := newReceiver(t, nil)
	h.start(Config{SignedURLKey: signedKey})
	made := h.subscribe(api.TopicQueue("news"), rc.URL, "")
	eventually(t, "the confirmation request", func() bool { return len(rc.accepted()) == 1 }, rc.describe)
	keys := slices.DeleteFunc(slices.Clone(confirmationKeys), func(k string) bool { return k == "WSGISubscribeURL" })
	checkConfirmation(t, h, decode(t, rc.accepted()[0].Body), "SubscriptionConfirmation", "news", "topics", made.ID, 3600, keys)
}

// TestNoConfirmationUnlessRequired checks that without
// RequireConfirmation no confirmation request is sent and messages are
// notified at once; and that RequireConfirmation without a signing key
// sends nothing at all (contract §3.10.4: no confirmation message, and
// unconfirmed subscriptions get no notifications).
func TestNoConfirmationUnlessRequired(t *testing.T) {
	t.Run("not required", func(t *testing.T) {
		h := newHarness(t, api.Config{SignedURLKey: signedKey})
		rc := newReceiver(t, nil)
		h.start(Config{SignedURLKey: signedKey, PublicURL: "http://herald.example"})
		sub := h.subscribe("q", rc.URL, "")
		ids := h.postBodies("q", `1`, `2`)
		waitDelivered(t, h, rc, "q", sub.ID, ids, 2)
		if kinds := byType(t, rc); len(kinds["Notification"]) != 2 || len(rc.all()) != 2 {
			t.Errorf("requests: %s", rc.describe())
		}
		if got := subscriptionField(h, "q", sub.ID, "confirmed"); got != false {
			t.Errorf("confirmed %v", got)
		}
	})
	t.Run("required without key", func(t *testing.T) {
		h := newHarness(t, api.Config{RequireConfirmation: true})
		rc := newReceiver(t, nil)
		h.start(Config{PublicURL: "http://herald.example"})
		sub := h.subscribe("q", rc.URL, "")
		h.postBodies("q", `1`)
		if pendingFor(t, h, sub.ID) {
			t.Fatal("deliveries pending for an unconfirmed subscription without a signing key")
		}
		time.Sleep(100 * time.Millisecond)
		if n := len(rc.all()); n != 0 {
			t.Errorf("%d requests: %s", n, rc.describe())
		}
	})
}

// TestMailtoConfirmation checks the confirmation e-mail of a mailto
// subscription: with a confirmation page it links there with the signed
// URL's parts (contract §3.10.4 item 4), and unsubscribing mails again.
func TestMailtoConfirmation(t *testing.T) {
	h := newHarness(t, api.Config{RequireConfirmation: true, SignedURLKey: signedKey})
	s := newSMTPServer(t, nil)
	h.start(Config{SignedURLKey: signedKey, PublicURL: "http://herald.example", Mail: s.config("herald@example.net"),
		ConfirmationPage: "https://confirm.example/page"})
	made := h.subscribe("q", "mailto:ops@example.com", "")
	eventually(t, "the confirmation mail", func() bool { return len(s.received()) == 1 }, s.describe)
	m := s.received()[0]
	if m.header("Subject") != "Confirm your subscription" || !slices.Equal(m.To, []string{"ops@example.com"}) {
		t.Errorf("subject %q to %v", m.header("Subject"), m.To)
	}
	body := strings.TrimSpace(string(m.Body))
	link := body[strings.LastIndex(body, "\n")+1:]
	if !strings.HasPrefix(body, "To confirm the subscription, open:") || !strings.HasPrefix(link, "https://confirm.example/page?") {
		t.Fatalf("body %q", body)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	path := "/v2/queues/q/subscriptions/" + made.ID + "/confirm"
	for k, v := range map[string]string{"Methods": "PUT", "Paths": path, "Project": testProject, "Queue": "q",
		"Url": "http://herald.example" + path} {
		if q.Get(k) != v {
			t.Errorf("link %s=%q, want %q", k, q.Get(k), v)
		}
	}
	if !h.svc.VerifySigned("PUT", path, q.Get("Signature"), q.Get("Expires"), q.Get("Methods"), q.Get("Paths"), q.Get("Project")) {
		t.Errorf("the link's signature does not verify: %s", link)
	}

	h.confirm("q", made.ID, true)
	h.postBodies("q", `1`)
	eventually(t, "the notification mail", func() bool { return len(s.received()) == 2 }, s.describe)
	if got := s.received()[1]; !jsonEqual(t, got.Body, `{"ttl": 3600, "body": 1, "Message_Type": "Notification", "queue_name": "q"}`) {
		t.Errorf("notification mail body %q", got.Body)
	}
	h.confirm("q", made.ID, false)
	eventually(t, "the unsubscribe mail", func() bool { return len(s.received()) == 3 }, s.describe)
	if got := s.received()[2].header("Subject"); got != "You have unsubscribed" {
		t.Errorf("subject %q", got)
	}
}

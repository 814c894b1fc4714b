package tests

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// End-to-end conformance tests for subscriptions (contract §2.5, §3.9,
// §3.10.1, §3.10.5 validation, §6 M9-M11, Q1, Q7, Q12, B8, B17;
// checklist items 51-59).

const sbSubscriber = "http://fake:8080"

// sbKeys are the keys of a subscription object (contract §2.5, M9).
// sbNoDeliveries is the delivery status of a subscription that has had
// nothing to deliver.
var sbNoDeliveries = map[string]any{"state": "active", "delivered": 0.0, "dropped": 0.0, "consecutive_failures": 0.0,
	"last_delivered": nil, "last_delivered_at": nil, "last_error": nil, "last_error_at": nil}

var sbKeys = []string{"age", "confirmed", "delivery", "id", "options", "source", "subscriber", "ttl"}

func sbPath(q string) string            { return "/v2/queues/" + q + "/subscriptions" }
func sbItemPath(q, id string) string    { return sbPath(q) + "/" + id }
func sbConfirmPath(q, id string) string { return sbItemPath(q, id) + "/confirm" }

// sbCreate subscribes with body, expects 201 and returns the id. It checks
// the body and the Location header (the collection path, Q12).
func sbCreate(c *client, q string, body any) string {
	c.t.Helper()
	r := c.do("POST", sbPath(q), req{Body: body}).expect(c.t, 201)
	if loc := r.Header.Get("Location"); loc != sbPath(q) {
		c.t.Fatalf("subscription POST Location %q, want %s", loc, sbPath(q))
	}
	m := r.JSON(c.t)
	id, ok := m["subscription_id"].(string)
	secret, _ := m["signing_secret"].(string)
	if !ok || id == "" || len(secret) != 64 || len(m) != 2 {
		c.t.Fatalf("subscription POST body %s, want a subscription_id and a signing_secret", r.Body)
	}
	return id
}

// sbSubscribe subscribes sbSubscriber (or another subscriber) with ttl.
func sbSubscribe(c *client, q, subscriber string, ttl int) string {
	c.t.Helper()
	return sbCreate(c, q, map[string]any{"subscriber": subscriber, "ttl": ttl, "options": map[string]any{}})
}

// sbDecoded returns v as it reads back from JSON (numbers as float64).
func sbDecoded(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// sbResubscribe subscribes sbSubscriber to q again after subscription
// old is gone and returns the new id, which must differ from old.
func sbResubscribe(c *client, q, old string, ttl int) string {
	c.t.Helper()
	id := sbSubscribe(c, q, sbSubscriber, ttl)
	if id == old {
		c.t.Fatalf("subscribing again returned the id %s of the subscription that is gone", old)
	}
	return id
}

// sbGet returns the subscription object, expecting 200 and exactly the
// keys of sbKeys.
func sbGet(c *client, q, id string) map[string]any {
	c.t.Helper()
	m := c.get(sbItemPath(q, id)).expect(c.t, 200).JSON(c.t)
	if got := keys(m); !reflect.DeepEqual(got, sbKeys) {
		c.t.Fatalf("subscription keys %v, want %v", got, sbKeys)
	}
	return m
}

// sbList returns one page of the queue's subscriptions and its links.
func sbList(c *client, path string) ([]map[string]any, []any) {
	c.t.Helper()
	body := c.get(path).expect(c.t, 200).JSON(c.t)
	raw, ok := body["subscriptions"].([]any)
	links, lok := body["links"].([]any)
	if !ok || !lok || len(body) != 2 {
		c.t.Fatalf("subscription list %v, want subscriptions and links", body)
	}
	out := make([]map[string]any, len(raw))
	for i, e := range raw {
		out[i] = e.(map[string]any)
		if got := keys(out[i]); !reflect.DeepEqual(got, sbKeys) {
			c.t.Fatalf("listed subscription keys %v, want %v", got, sbKeys)
		}
	}
	return out, links
}

// sbListIDs returns the ids of the first page (limit 20) of q's list.
func sbListIDs(c *client, q string) []string {
	c.t.Helper()
	subs, _ := sbList(c, sbPath(q)+"?limit=20")
	return mcIDs(subs)
}

// sbExpectEmpty fails unless q's list is {"subscriptions": [], "links": []}.
func sbExpectEmpty(c *client, q string) {
	c.t.Helper()
	if subs, links := sbList(c, sbPath(q)); len(subs) != 0 || len(links) != 0 {
		c.t.Fatalf("subscriptions %v links %v, want both empty", subs, links)
	}
}

// sbPatch sends a PATCH with body (nil: none) to subscription id.
func sbPatch(c *client, q, id string, body any) *resp {
	c.t.Helper()
	return c.do("PATCH", sbItemPath(q, id), req{Body: body})
}

// sbConfirm sends a confirm PUT with body to subscription id.
func sbConfirm(c *client, q, id string, body any) *resp {
	c.t.Helper()
	return c.do("PUT", sbConfirmPath(q, id), req{Body: body})
}

func TestSubscriptionItem51Create(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		id := sbCreate(c, "q", map[string]any{"subscriber": sbSubscriber, "ttl": 600, "options": map[string]any{}})
		subs, links := sbList(c, sbPath("q"))
		if len(subs) != 1 || len(links) != 1 {
			t.Fatalf("list %v links %v, want one subscription and a next link", subs, links)
		}
		want := map[string]any{"id": id, "source": "q", "subscriber": sbSubscriber, "ttl": 600.0, "age": 0.0,
			"options": map[string]any{}, "confirmed": false, "delivery": sbNoDeliveries}
		for _, got := range []map[string]any{subs[0], sbGet(c, "q", id)} {
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("subscription %v, want %v", got, want)
			}
		}
	})
}

func TestSubscriptionItem52CreateValidation(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		invalid := []struct {
			name string
			body any // nil: no body
			desc string
		}{
			{"no body", nil, "Missing parameter subscriber in body."},
			{"empty object", map[string]any{}, "Missing parameter"},
			{"scheme fake", map[string]any{"subscriber": "fake"}, "must be supported in the list"},
			{"scheme email", map[string]any{"subscriber": "email://fake"}, "must be supported in the list"},
			{"empty subscriber", map[string]any{"subscriber": ""}, "must be supported in the list"}, // B17
			{"subscriber not a string", map[string]any{"subscriber": 123}, "must be supported in the list"},
			{"options string", map[string]any{"subscriber": sbSubscriber, "options": "123"}, "Options must be a dict."},
			{"options list", map[string]any{"subscriber": sbSubscriber, "options": []any{1}}, "Options must be a dict."},
			{"ttl string", map[string]any{"subscriber": sbSubscriber, "ttl": "123"}, "TTL must be an integer."},
			{"ttl float", map[string]any{"subscriber": sbSubscriber, "ttl": 100.5}, "TTL must be an integer."},
			{"ttl 50", map[string]any{"subscriber": sbSubscriber, "ttl": 50}, "at least 60 seconds"},
			{"ttl negative", map[string]any{"subscriber": sbSubscriber, "ttl": -1}, "at least 60 seconds"},
			{"ttl past year 9999", map[string]any{"subscriber": sbSubscriber, "ttl": 99999999999999999}, "9999-12-31"},
			{"unparseable", Raw(`{"subscriber":`), "Request body could not be parsed."},
		}
		for _, tc := range invalid {
			t.Run("invalid/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				c.do("POST", sbPath("q"), req{Body: tc.body}).expectError(t, 400, tc.desc)
				sbExpectEmpty(c, "q")
			})
		}

		valid := []struct {
			name    string
			body    map[string]any
			wantTTL int64
		}{
			{"mailto", map[string]any{"subscriber": "mailto:fake@123.com"}, 3600},
			{"mailto with subject", map[string]any{"subscriber": "mailto:fake@123.com?subject=Hi"}, 3600},
			{"https and ttl 60", map[string]any{"subscriber": "https://fake", "ttl": 60}, 60},
			{"trust+http", map[string]any{"subscriber": "trust+http://fake", "options": map[string]any{"trust_id": "t"}}, 3600},
			{"null ttl and options", map[string]any{"subscriber": sbSubscriber, "ttl": nil, "options": nil}, 3600},
		}
		for _, tc := range valid {
			t.Run("valid/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				id := sbCreate(c, "q", tc.body)
				s := sbGet(c, "q", id)
				if s["subscriber"] != tc.body["subscriber"] || num(s["ttl"]) != tc.wantTTL || s["confirmed"] != false {
					t.Fatalf("subscription %v, want subscriber %v, ttl %d, unconfirmed", s, tc.body["subscriber"], tc.wantTTL)
				}
			})
		}
	})
}

func TestSubscriptionItem53Duplicate(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		id := sbSubscribe(c, "q", sbSubscriber, 600)
		// An unconfirmed duplicate names the existing subscription; its
		// own ttl and options are ignored.
		again := sbCreate(c, "q", map[string]any{"subscriber": sbSubscriber, "ttl": 900, "options": map[string]any{"k": "v"}})
		if again != id {
			t.Fatalf("second POST id %s, want the first %s", again, id)
		}
		if s := sbGet(c, "q", id); num(s["ttl"]) != 600 || !reflect.DeepEqual(s["options"], map[string]any{}) {
			t.Fatalf("duplicate POST changed the subscription: %v", s)
		}
		if ids := sbListIDs(c, "q"); !reflect.DeepEqual(ids, []string{id}) {
			t.Fatalf("listed %v, want only %s", ids, id)
		}
		// The same subscriber on another queue is another subscription.
		if other := sbSubscribe(c, "q2", sbSubscriber, 600); other == id {
			t.Fatalf("subscription of another queue has the same id %s", id)
		}

		mcNoContent(t, sbConfirm(c, "q", id, map[string]any{"confirmed": true}))
		r := c.post(sbPath("q"), map[string]any{"subscriber": sbSubscriber})
		r.expectError(t, 409, "Such subscription already exists.Subscriptions are unique by project + queue + subscriber URI.")
		if loc := r.Header.Get("Location"); loc != sbPath("q") {
			t.Fatalf("409 Location %q, want %s", loc, sbPath("q"))
		}
		// Unconfirming makes it re-subscribable again.
		mcNoContent(t, sbConfirm(c, "q", id, map[string]any{"confirmed": false}))
		if again := sbSubscribe(c, "q", sbSubscriber, 600); again != id {
			t.Fatalf("POST after unconfirming: id %s, want %s", again, id)
		}
	})
}

func TestSubscriptionItem54Get(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		id := sbSubscribe(c, "q", sbSubscriber, 600)
		c.put("/v2/queues/q2", nil).expect(t, 201)
		for _, path := range []string{
			sbItemPath("q", "123"),
			sbItemPath("q", mcUnknownID()),
			sbItemPath("q2", id),
			sbItemPath("nosuchqueue", id),
		} {
			c.get(path).expectError(t, 404, "")
		}
		sbExpectEmpty(c, "nosuchqueue")
		sbGet(c, "q", id)
	})
}

func TestSubscriptionItem55Update(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("ttl", func(t *testing.T) {
			c := newClient(t, n)
			id := sbSubscribe(c, "q", sbSubscriber, 600)
			r := sbPatch(c, "q", id, map[string]any{"ttl": 300})
			mcNoContent(t, r)
			if loc := r.Header.Get("Location"); loc != sbItemPath("q", id) {
				t.Fatalf("PATCH Location %q, want the request path", loc)
			}
			if s := sbGet(c, "q", id); num(s["ttl"]) != 300 {
				t.Fatalf("ttl %v after PATCH, want 300", s["ttl"])
			}
		})

		t.Run("subscriber and options", func(t *testing.T) {
			c := newClient(t, n)
			id := sbSubscribe(c, "q", sbSubscriber, 600)
			opts := map[string]any{"post_headers": map[string]any{"X-A": "b"}}
			mcNoContent(t, sbPatch(c, "q", id, map[string]any{"subscriber": "mailto:a@b.c", "options": opts}))
			s := sbGet(c, "q", id)
			if s["subscriber"] != "mailto:a@b.c" || !reflect.DeepEqual(s["options"], opts) || num(s["ttl"]) != 600 {
				t.Fatalf("after PATCH %v", s)
			}
			// The old subscriber is free again, the new one is taken.
			if other := sbSubscribe(c, "q", sbSubscriber, 600); other == id {
				t.Fatalf("old subscriber still names %s", id)
			}
			if again := sbSubscribe(c, "q", "mailto:a@b.c", 600); again != id {
				t.Fatalf("new subscriber names %s, want %s", again, id)
			}
		})

		invalid := []struct {
			name   string
			body   any // nil: no body
			status int
			desc   string
		}{
			{"no body", nil, 400, "No subscription to create."},
			{"empty object", map[string]any{}, 400, "No subscription to create."},
			{"list of int", []any{1}, 400, "Subscriptions must be a dict."},
			{"list of string", []any{"123"}, 400, "Subscriptions must be a dict."},
			{"ttl 50", map[string]any{"ttl": 50}, 400, "at least 60 seconds"},
			{"ttl string", map[string]any{"ttl": "123"}, 400, "TTL must be an integer."},
			{"ttl null", Raw(`{"ttl": null}`), 400, ""},
			{"only unknown keys", map[string]any{"foo": "bar"}, 400, ""}, // B17
			{"bad scheme", map[string]any{"subscriber": "fake"}, 400, "must be supported in the list"},
			{"empty subscriber", map[string]any{"subscriber": ""}, 400, "must be supported in the list"},
			{"options string", map[string]any{"options": "123"}, 400, "Options must be a dict."},
		}
		for _, tc := range invalid {
			t.Run("invalid/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				id := sbSubscribe(c, "q", sbSubscriber, 600)
				before := sbGet(c, "q", id)
				sbPatch(c, "q", id, tc.body).expectError(t, tc.status, tc.desc)
				if after := sbGet(c, "q", id); !reflect.DeepEqual(after, before) {
					t.Fatalf("rejected PATCH changed %v into %v", before, after)
				}
			})
		}

		t.Run("unknown id", func(t *testing.T) {
			c := newClient(t, n)
			id := sbSubscribe(c, "q", sbSubscriber, 600)
			sbPatch(c, "q", mcUnknownID(), map[string]any{"ttl": 300}).expectError(t, 404, "")
			sbPatch(c, "q", "123", map[string]any{"ttl": 300}).expectError(t, 404, "")
			c.put("/v2/queues/q2", nil).expect(t, 201)
			sbPatch(c, "q2", id, map[string]any{"ttl": 300}).expectError(t, 404, "")
			if s := sbGet(c, "q", id); num(s["ttl"]) != 600 {
				t.Fatalf("PATCH through another queue changed ttl to %v", s["ttl"])
			}
		})

		t.Run("subscriber of another subscription", func(t *testing.T) {
			c := newClient(t, n)
			id := sbSubscribe(c, "q", sbSubscriber, 600)
			sbSubscribe(c, "q", "http://other:8080", 600)
			sbPatch(c, "q", id, map[string]any{"subscriber": "http://other:8080"}).expectError(t, 409, "Such subscription already exists")
			if s := sbGet(c, "q", id); s["subscriber"] != sbSubscriber {
				t.Fatalf("subscriber %v after a 409", s["subscriber"])
			}
			// Its own subscriber is no conflict.
			mcNoContent(t, sbPatch(c, "q", id, map[string]any{"subscriber": sbSubscriber, "ttl": 120}))
		})
	})
}

func TestSubscriptionItem56Delete(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		id := sbSubscribe(c, "q", sbSubscriber, 600)
		c.put("/v2/queues/q2", nil).expect(t, 201)
		for _, path := range []string{
			sbItemPath("q", mcUnknownID()),
			sbItemPath("q", "123"),
			sbItemPath("q2", id),
			sbItemPath("nosuchqueue", id),
		} {
			mcNoContent(t, c.del(path))
		}
		sbGet(c, "q", id) // only a delete through its own queue removes it
		mcNoContent(t, c.del(sbItemPath("q", id)))
		c.get(sbItemPath("q", id)).expectError(t, 404, "")
		sbExpectEmpty(c, "q")
		mcNoContent(t, c.del(sbItemPath("q", id)))
		sbResubscribe(c, "q", id, 600) // its subscriber is free again
	})
}

func TestSubscriptionItem57Confirm(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		invalid := []struct {
			name string
			body any
		}{
			{"number", map[string]any{"confirmed": 123}},
			{"string", map[string]any{"confirmed": "true"}},
			{"null", Raw(`{"confirmed": null}`)},
			{"missing", map[string]any{}},
			{"no body", nil},
		}
		for _, tc := range invalid {
			t.Run("invalid/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				id := sbSubscribe(c, "q", sbSubscriber, 600)
				sbConfirm(c, "q", id, tc.body).expectError(t, 400, "The 'confirmed' should be boolean.")
				if s := sbGet(c, "q", id); s["confirmed"] != false {
					t.Fatalf("confirmed %v after a rejected confirm", s["confirmed"])
				}
			})
		}

		t.Run("unparseable", func(t *testing.T) {
			c := newClient(t, n)
			id := sbSubscribe(c, "q", sbSubscriber, 600)
			sbConfirm(c, "q", id, Raw(`{"confirmed":`)).expectError(t, 400, "Request body could not be parsed.")
		})

		t.Run("unknown subscription", func(t *testing.T) {
			c := newClient(t, n)
			id := sbSubscribe(c, "q", sbSubscriber, 600)
			sbConfirm(c, "q", mcUnknownID(), map[string]any{"confirmed": true}).expectError(t, 404, "")
			sbConfirm(c, "q", "123", map[string]any{"confirmed": true}).expectError(t, 404, "")
			c.put("/v2/queues/q2", nil).expect(t, 201)
			sbConfirm(c, "q2", id, map[string]any{"confirmed": true}).expectError(t, 404, "")
			if s := sbGet(c, "q", id); s["confirmed"] != false {
				t.Fatalf("confirm through another queue confirmed it")
			}
		})

		t.Run("true then false", func(t *testing.T) {
			c := newClient(t, n)
			id := sbSubscribe(c, "q", sbSubscriber, 600)
			for _, v := range []bool{true, true, false} {
				r := sbConfirm(c, "q", id, map[string]any{"confirmed": v})
				mcNoContent(t, r)
				if loc := r.Header.Get("Location"); loc != sbConfirmPath("q", id) {
					t.Fatalf("confirm Location %q, want the request path", loc)
				}
				if s := sbGet(c, "q", id); s["confirmed"] != v {
					t.Fatalf("confirmed %v, want %v", s["confirmed"], v)
				}
			}
		})
	})
}

func TestSubscriptionItem58Paging(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		var ids []string
		for i := range 15 {
			ids = append(ids, sbSubscribe(c, "q", fmt.Sprintf("http://fake:%d", 8000+i), 600))
		}
		first, links := sbList(c, sbPath("q")+"?limit=10")
		mcEqualIDs(t, "first page", mcIDs(first), ids[:10])
		next := sbNextLink(t, links)
		if want := sbPath("q") + "?limit=10&marker=" + ids[9]; next != want {
			t.Fatalf("next link %q, want %q", next, want)
		}
		second, links := sbList(c, next)
		mcEqualIDs(t, "second page", mcIDs(second), ids[10:])
		last, links := sbList(c, sbNextLink(t, links))
		if len(last) != 0 || len(links) != 0 {
			t.Fatalf("page after the last: %v links %v, want both empty", last, links)
		}

		// Without limit a page holds 10; limit is 1..20.
		page, _ := sbList(c, sbPath("q"))
		mcEqualIDs(t, "default page", mcIDs(page), ids[:10])
		page, _ = sbList(c, sbPath("q")+"?limit=20&detailed=False")
		mcEqualIDs(t, "limit 20", mcIDs(page), ids)
		for _, bad := range []string{"0", "21", "-1", "abc"} {
			c.get(sbPath("q")+"?limit="+bad).expect(t, 400)
		}
	})
}

// sbNextLink returns the href of the one next link of a non-empty page.
func sbNextLink(t testing.TB, links []any) string {
	t.Helper()
	if len(links) != 1 {
		t.Fatalf("links %v, want one next link", links)
	}
	l := links[0].(map[string]any)
	href, _ := l["href"].(string)
	if l["rel"] != "next" || href == "" {
		t.Fatalf("link %v", l)
	}
	return href
}

func TestSubscriptionItem59Purge(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		cases := []struct {
			name                  string
			body                  any // nil: no body
			status                int
			desc                  string
			messagesGone, subGone bool
		}{
			{"wrong key", map[string]any{"wrong_key": []any{"messages"}}, 400, `Post body must contain key "resource_types".`, false, false},
			{"wrong value", map[string]any{"resource_types": []any{"wrong_value"}}, 400, "Resource types must be a sub set of", false, false},
			{"not a list", map[string]any{"resource_types": "messages"}, 400, "Resource types must be a sub set of", false, false},
			{"nothing", map[string]any{"resource_types": []any{}}, 204, "", false, false},
			{"messages", map[string]any{"resource_types": []any{"messages"}}, 204, "", true, false},
			{"subscriptions", map[string]any{"resource_types": []any{"subscriptions"}}, 204, "", false, true},
			{"both", map[string]any{"resource_types": []any{"messages", "subscriptions"}}, 204, "", true, true},
			{"no body", nil, 204, "", true, true},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := newClient(t, n)
				ids := c.postMessages("q", msg(1), msg(2), msg(3))
				_, claimed := mcClaim(c, "q", "limit=1", nil)
				subs := []string{sbSubscribe(c, "q", sbSubscriber, 600), sbSubscribe(c, "q", "mailto:a@b.c", 600)}
				r := c.do("POST", "/v2/queues/q/purge", req{Body: tc.body})
				if tc.status == 204 {
					mcNoContent(t, r)
				} else {
					r.expectError(t, tc.status, tc.desc)
				}
				// Claimed messages survive every purge (contract §3.9).
				wantMsgs := ids
				if tc.messagesGone {
					wantMsgs = mcIDs(claimed)
				}
				mcEqualIDs(t, "messages", mcIDs(mcList(c, "q", "echo=true&include_claimed=true")), wantMsgs)
				wantSubs := subs
				if tc.subGone {
					wantSubs = nil
				}
				mcEqualIDs(t, "subscriptions", sbListIDs(c, "q"), wantSubs)
			})
		}
	})
}

func TestSubscriptionShape(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		opts := map[string]any{"post_data": `{"m": "$zaqar_message$"}`, "post_headers": map[string]any{"X-A": "b"}, "ünï": "çødé"}
		id := sbCreate(c, "q", map[string]any{"subscriber": "https://fake/hook?a=1", "ttl": 120, "options": opts})
		if len(id) != 24 {
			t.Fatalf("subscription id %q, want 24 characters like Zaqar's", id)
		}
		n.Clock.Advance(7 * time.Second)
		want := map[string]any{"id": id, "source": "q", "subscriber": "https://fake/hook?a=1", "ttl": 120.0, "age": 7.0,
			"options": opts, "confirmed": false, "delivery": sbNoDeliveries}
		if got := sbGet(c, "q", id); !reflect.DeepEqual(got, want) {
			t.Fatalf("GET %v, want %v", got, want)
		}
		if subs, _ := sbList(c, sbPath("q")); len(subs) != 1 || !reflect.DeepEqual(subs[0], want) {
			t.Fatalf("list %v, want [%v]", subs, want)
		}
	})
}

func TestSubscriptionExpiry(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("ttl 0 expires at once", func(t *testing.T) { // Q7
			c := newClient(t, n)
			id := sbCreate(c, "q", map[string]any{"subscriber": sbSubscriber, "ttl": 0})
			c.get(sbItemPath("q", id)).expectError(t, 404, "")
			sbExpectEmpty(c, "q")
			sbResubscribe(c, "q", id, 600)
		})

		t.Run("gone after its ttl", func(t *testing.T) {
			c := newClient(t, n)
			id := sbSubscribe(c, "q", sbSubscriber, 60)
			n.Clock.Advance(59 * time.Second)
			if s := sbGet(c, "q", id); num(s["age"]) != 59 || num(s["ttl"]) != 60 {
				t.Fatalf("after 59 s: %v", s)
			}
			n.Clock.Advance(time.Second)
			c.get(sbItemPath("q", id)).expectError(t, 404, "")
			sbExpectEmpty(c, "q")
			sbPatch(c, "q", id, map[string]any{"ttl": 600}).expectError(t, 404, "")
			sbConfirm(c, "q", id, map[string]any{"confirmed": true}).expectError(t, 404, "")
			again := sbResubscribe(c, "q", id, 60)
			if s := sbGet(c, "q", again); num(s["age"]) != 0 || s["confirmed"] != false {
				t.Fatalf("new subscription %v", s)
			}
			if ids := sbListIDs(c, "q"); !reflect.DeepEqual(ids, []string{again}) {
				t.Fatalf("listed %v, want only %s", ids, again)
			}
		})

		t.Run("confirmed one expires too", func(t *testing.T) {
			c := newClient(t, n)
			id := sbSubscribe(c, "q", sbSubscriber, 60)
			mcNoContent(t, sbConfirm(c, "q", id, map[string]any{"confirmed": true}))
			n.Clock.Advance(61 * time.Second)
			sbResubscribe(c, "q", id, 600) // no 409: the confirmed one is gone
		})

		t.Run("ttl PATCH restarts expiry", func(t *testing.T) {
			c := newClient(t, n)
			id := sbSubscribe(c, "q", sbSubscriber, 60)
			n.Clock.Advance(50 * time.Second)
			mcNoContent(t, sbPatch(c, "q", id, map[string]any{"ttl": 60}))
			n.Clock.Advance(50 * time.Second)
			// 100 s after creation, 50 s after the PATCH: alive, and age
			// still counts from creation.
			if s := sbGet(c, "q", id); num(s["age"]) != 100 || num(s["ttl"]) != 60 {
				t.Fatalf("after PATCH: %v, want age 100 ttl 60", s)
			}
			n.Clock.Advance(10 * time.Second)
			c.get(sbItemPath("q", id)).expectError(t, 404, "")
		})

		t.Run("PATCH without ttl keeps expiry", func(t *testing.T) {
			c := newClient(t, n)
			id := sbSubscribe(c, "q", sbSubscriber, 60)
			n.Clock.Advance(50 * time.Second)
			mcNoContent(t, sbPatch(c, "q", id, map[string]any{"options": map[string]any{"k": "v"}}))
			n.Clock.Advance(10 * time.Second)
			c.get(sbItemPath("q", id)).expectError(t, 404, "")
		})
	})
}

func TestSubscriptionRetryPolicyValidation(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		cases := []struct {
			name   string
			policy any
			ok     bool
		}{
			{"not an object", "linear", false},
			{"a list", []any{1}, false},
			{"a number", 5, false},
			{"bad backoff function", map[string]any{"retry_backoff_function": "quadratic"}, false},
			{"backoff function not a string", map[string]any{"retry_backoff_function": 1}, false},
			{"delays too close", map[string]any{"minimum_delay": 5, "maximum_delay": 14}, false},
			{"maximum below minimum", map[string]any{"minimum_delay": 40}, false},
			{"delay not an int", map[string]any{"minimum_delay": "5"}, false},
			{"override not a boolean", map[string]any{"ignore_subscription_override": "yes"}, false},
			{"delays 10 apart", map[string]any{"minimum_delay": 5, "maximum_delay": 15, "retry_backoff_function": "geometric"}, true},
			{"defaults", map[string]any{"retries_with_no_delay": 2, "ignore_subscription_override": true}, true},
			{"empty", map[string]any{}, true},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := newClient(t, n)
				opts := map[string]any{"_retry_policy": tc.policy}
				if !tc.ok {
					c.post(sbPath("q"), map[string]any{"subscriber": sbSubscriber, "options": opts}).expect(t, 400)
					id := sbSubscribe(c, "q", sbSubscriber, 600)
					sbPatch(c, "q", id, map[string]any{"options": opts}).expect(t, 400)
					if s := sbGet(c, "q", id); !reflect.DeepEqual(s["options"], map[string]any{}) {
						t.Fatalf("rejected PATCH changed options to %v", s["options"])
					}
					return
				}
				id := sbCreate(c, "q", map[string]any{"subscriber": sbSubscriber, "options": opts})
				if s := sbGet(c, "q", id); !reflect.DeepEqual(s["options"], sbDecoded(t, opts)) {
					t.Fatalf("options %v, want %v", s["options"], opts)
				}
				mcNoContent(t, sbPatch(c, "q", id, map[string]any{"options": opts}))
			})
		}
	})
}

func TestSubscriptionQueueLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("queue delete keeps subscriptions", func(t *testing.T) { // §2.2.5
			c := newClient(t, n)
			c.postMessages("q", msg(1))
			id := sbSubscribe(c, "q", sbSubscriber, 600)
			mcNoContent(t, c.del("/v2/queues/q"))
			sbGet(c, "q", id)
			if ids := sbListIDs(c, "q"); !reflect.DeepEqual(ids, []string{id}) {
				t.Fatalf("after queue delete: listed %v, want [%s]", ids, id)
			}
			c.put("/v2/queues/q", nil).expect(t, 201)
			sbGet(c, "q", id)
			if again := sbSubscribe(c, "q", sbSubscriber, 600); again != id {
				t.Fatalf("re-subscribing after the queue came back: %s, want %s", again, id)
			}
		})

		t.Run("purge deletes all of 15 subscriptions", func(t *testing.T) { // B8
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			for i := range 15 {
				sbSubscribe(c, "q", fmt.Sprintf("http://fake:%d", 8000+i), 600)
			}
			mcNoContent(t, c.post("/v2/queues/q/purge", map[string]any{"resource_types": []any{"subscriptions"}}))
			sbExpectEmpty(c, "q")
			mcEqualIDs(t, "messages", mcIDs(mcList(c, "q", "echo=true")), ids)
		})

		t.Run("POST creates the queue before validating", func(t *testing.T) { // Q1
			for _, body := range []any{nil, map[string]any{"subscriber": "fake"}, map[string]any{"subscriber": sbSubscriber, "ttl": 1}} {
				c := newClient(t, n)
				c.do("POST", sbPath("q"), req{Body: body}).expect(t, 400)
				if names := qtNames(t, c); !reflect.DeepEqual(names, []string{"q"}) {
					t.Fatalf("queues %v after a rejected subscription POST (%v), want [q]", names, body)
				}
			}
		})

		t.Run("unparseable POST creates no queue", func(t *testing.T) {
			c := newClient(t, n)
			c.do("POST", sbPath("q"), req{Body: Raw(`{"subscriber"`)}).expect(t, 400)
			if names := qtNames(t, c); len(names) != 0 {
				t.Fatalf("queues %v after an unparseable subscription POST, want none", names)
			}
		})

		t.Run("valid POST creates the queue", func(t *testing.T) { // M3
			c := newClient(t, n)
			sbSubscribe(c, "q", sbSubscriber, 600)
			if names := qtNames(t, c); !reflect.DeepEqual(names, []string{"q"}) {
				t.Fatalf("queues %v, want [q]", names)
			}
		})
	})
}

func TestSubscriptionTenantIsolation(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		id := sbSubscribe(c, "q", sbSubscriber, 600)
		before := sbGet(c, "q", id)
		other := c.inProject("other-" + newID()[:12])
		other.put("/v2/queues/q", nil).expect(t, 201)

		sbExpectEmpty(other, "q")
		other.get(sbItemPath("q", id)).expectError(t, 404, "")
		sbPatch(other, "q", id, map[string]any{"ttl": 300}).expectError(t, 404, "")
		sbConfirm(other, "q", id, map[string]any{"confirmed": true}).expectError(t, 404, "")
		mcNoContent(t, other.del(sbItemPath("q", id)))
		mcNoContent(t, other.post("/v2/queues/q/purge", nil))
		if after := sbGet(c, "q", id); !reflect.DeepEqual(after, before) {
			t.Fatalf("another project changed %v into %v", before, after)
		}

		// The same subscriber in the other project is its own subscription,
		// and confirming it there does not make ours conflict.
		theirs := sbSubscribe(other, "q", sbSubscriber, 600)
		if theirs == id {
			t.Fatalf("other project got the same subscription id %s", id)
		}
		mcNoContent(t, sbConfirm(other, "q", theirs, map[string]any{"confirmed": true}))
		if again := sbSubscribe(c, "q", sbSubscriber, 600); again != id {
			t.Fatalf("re-subscribing in the first project: %s, want %s", again, id)
		}
		if ids := sbListIDs(c, "q"); !reflect.DeepEqual(ids, []string{id}) {
			t.Fatalf("first project lists %v, want [%s]", ids, id)
		}
	})
}

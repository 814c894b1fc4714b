package tests

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// End-to-end conformance tests for the claim routes and claim-aware message
// deletion (contract §2.3.7, §2.4, §3.5, §3.6; checklist items 39-48).

var mcClaimLocation = regexp.MustCompile(`^/v2/queues/([^/]+)/claims/([^/?]+)$`)

// mcClaim creates a claim on queue q (query without '?', body nil for no
// body), expects 201 and returns the claim id from Location and the claimed
// messages. It checks Location and that every href names the claim.
func mcClaim(c *client, q, query string, body any) (string, []map[string]any) {
	c.t.Helper()
	p := "/v2/queues/" + q + "/claims"
	if query != "" {
		p += "?" + query
	}
	r := c.do("POST", p, req{Body: body}).expect(c.t, 201)
	loc := r.Header.Get("Location")
	m := mcClaimLocation.FindStringSubmatch(loc)
	if m == nil || m[1] != q {
		c.t.Fatalf("claim Location %q", loc)
	}
	cid := m[2]
	msgs := mcMessages(c.t, r)
	for _, msg := range msgs {
		if want := mcMsgHref(q, msg["id"].(string)) + "?claim_id=" + cid; msg["href"] != want {
			c.t.Fatalf("claimed message href %v, want %s", msg["href"], want)
		}
	}
	return cid, msgs
}

// mcGetClaim returns the claim object, expecting 200.
func mcGetClaim(c *client, q, cid string) map[string]any {
	c.t.Helper()
	return c.get("/v2/queues/"+q+"/claims/"+cid).expect(c.t, 200).JSON(c.t)
}

// mcClaimMessageIDs returns the ids of the messages a claim holds.
func mcClaimMessageIDs(c *client, q, cid string) []string {
	c.t.Helper()
	raw := mcGetClaim(c, q, cid)["messages"].([]any)
	out := make([]string, len(raw))
	for i, m := range raw {
		out[i] = m.(map[string]any)["id"].(string)
	}
	return out
}

// mcMessageTTL returns the ttl GET reports for a message.
func mcMessageTTL(c *client, q, id string) int64 {
	c.t.Helper()
	return num(c.get(mcMsgHref(q, id)).expect(c.t, 200).JSON(c.t)["ttl"])
}

// mcNoContent checks a 204 without body.
func mcNoContent(t testing.TB, r *resp) {
	t.Helper()
	r.expect(t, 204)
	if len(r.Body) != 0 {
		t.Fatalf("204 with body %q", r.Body)
	}
}

func TestClaimsCreate(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("empty object body", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			cid, msgs := mcClaim(c, "q", "", map[string]any{})
			mcEqualIDs(t, "claimed", mcIDs(msgs), ids)
			if cl := mcGetClaim(c, "q", cid); num(cl["ttl"]) != 300 {
				t.Fatalf("claim ttl %v, want default 300", cl["ttl"])
			}
			for _, m := range msgs {
				if num(m["ttl"]) != 3600 {
					t.Fatalf("message ttl %v, want 3600 (outlives the claim)", m["ttl"])
				}
			}
		})

		t.Run("no body", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			cid, msgs := mcClaim(c, "q", "", nil)
			mcEqualIDs(t, "claimed", mcIDs(msgs), ids)
			if cl := mcGetClaim(c, "q", cid); num(cl["ttl"]) != 300 {
				t.Fatalf("claim ttl %v, want default 300", cl["ttl"])
			}
		})

		t.Run("null ttl and grace are absent", func(t *testing.T) {
			// Herald's deliberate relaxation of contract B21.
			c := newClient(t, n)
			c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", Raw(`{"ttl": null, "grace": null}`))
			if cl := mcGetClaim(c, "q", cid); num(cl["ttl"]) != 300 {
				t.Fatalf("claim ttl %v, want default 300", cl["ttl"])
			}
		})

		t.Run("shape", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(map[string]any{"event": "x"}, "ttl", 600), msg(2, "ttl", 600))
			r := c.post("/v2/queues/q/claims", map[string]any{"ttl": 120, "grace": 60}).expect(t, 201)
			body := r.JSON(t)
			if got := keys(body); !reflect.DeepEqual(got, []string{"messages"}) {
				t.Fatalf("claim body keys %v, want only messages", got)
			}
			m := mcClaimLocation.FindStringSubmatch(r.Header.Get("Location"))
			if m == nil || m[1] != "q" || !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(m[2]) {
				t.Fatalf("Location %q", r.Header.Get("Location"))
			}
			cid := m[2]
			msgs := mcMessages(t, r)
			mcEqualIDs(t, "claimed", mcIDs(msgs), ids)
			for i, msg := range msgs {
				if k := keys(msg); !reflect.DeepEqual(k, []string{"age", "body", "href", "id", "ttl"}) {
					t.Fatalf("message keys %v", k)
				}
				href := msg["href"].(string)
				if href != mcMsgHref("q", ids[i])+"?claim_id="+cid || href[strings.LastIndex(href, "=")+1:] != cid {
					t.Fatalf("href %q, want it to end with ?claim_id=%s", href, cid)
				}
				if num(msg["ttl"]) != 600 || num(msg["age"]) != 0 {
					t.Fatalf("message %v", msg)
				}
			}
			if !reflect.DeepEqual(msgs[0]["body"], map[string]any{"event": "x"}) {
				t.Fatalf("body %v", msgs[0]["body"])
			}
		})

		invalidBodies := []struct{ name, body, desc string }{
			{"truncated", `[`, "Request body could not be parsed."},
			{"string", `"fail"`, "Request body could not be parsed."},
			{"number", `123`, "Request body could not be parsed."},
			{"null", `null`, "Request body could not be parsed."},
			{"empty array", `[]`, "Document type not supported."},
			{"array of object", `[{"ttl":60}]`, "Document type not supported."},
			{"ttl string", `{"ttl":"60"}`, `The value of the "ttl" field must be a int.`},
			{"ttl float", `{"ttl":60.5}`, `The value of the "ttl" field must be a int.`},
			{"ttl integral float", `{"ttl":100.0}`, `The value of the "ttl" field must be a int.`},
			{"grace string", `{"grace":"60"}`, `The value of the "grace" field must be a int.`},
			{"ttl big int", `{"ttl":9223372036854775808}`, "JSON contains integer that is too large."},
		}
		for _, tc := range invalidBodies {
			t.Run("invalid body/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				ids := c.postMessages("q", msg(1))
				c.do("POST", "/v2/queues/q/claims", req{Body: Raw(tc.body)}).expectError(t, 400, tc.desc)
				mcEqualIDs(t, "still unclaimed", mcIDs(mcList(c, "q", "echo=true")), ids)
			})
		}

		for _, limit := range []string{"21", "0", "-1", "abc", "1.5", "%20"} {
			t.Run("invalid limit/"+limit, func(t *testing.T) {
				c := newClient(t, n)
				ids := c.postMessages("q", msg(1))
				c.post("/v2/queues/q/claims?limit="+limit, map[string]any{}).expect(t, 400)
				mcEqualIDs(t, "still unclaimed", mcIDs(mcList(c, "q", "echo=true")), ids)
			})
		}

		badTimes := []struct {
			name string
			body map[string]any
			desc string
		}{
			{"ttl 59", map[string]any{"ttl": 59, "grace": 60}, "The TTL for a claim may not exceed 43200 seconds, and must be at least 60 seconds long."},
			{"grace 59", map[string]any{"ttl": 60, "grace": 59}, "The grace for a claim may not exceed 43200 seconds, and must be at least 60 seconds long."},
			{"ttl 43201", map[string]any{"ttl": 43201, "grace": 60}, "The TTL for a claim may not exceed 43200 seconds, and must be at least 60 seconds long."},
			{"grace 43201", map[string]any{"ttl": 60, "grace": 43201}, "The grace for a claim may not exceed 43200 seconds, and must be at least 60 seconds long."},
			{"ttl -1", map[string]any{"ttl": -1}, "The TTL for a claim"},
			{"ttl true", map[string]any{"ttl": true}, "The TTL for a claim"},
			{"grace 0", map[string]any{"grace": 0}, "The grace for a claim"},
			{"only ttl 59", map[string]any{"ttl": 59}, "The TTL for a claim"},
			{"only grace 43201", map[string]any{"grace": 43201}, "The grace for a claim"},
		}
		for _, tc := range badTimes {
			t.Run("bad ttl or grace/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				ids := c.postMessages("q", msg(1))
				c.post("/v2/queues/q/claims", tc.body).expectError(t, 400, tc.desc)
				mcEqualIDs(t, "still unclaimed", mcIDs(mcList(c, "q", "echo=true")), ids)
			})
		}

		goodTimes := []struct {
			name    string
			body    map[string]any
			wantTTL int64
		}{
			{"minimum", map[string]any{"ttl": 60, "grace": 60}, 60},
			{"maximum", map[string]any{"ttl": 43200, "grace": 43200}, 43200},
			{"only ttl", map[string]any{"ttl": 61}, 61},
			{"only grace", map[string]any{"grace": 43200}, 300},
			{"unknown keys", map[string]any{"ttl": 90, "foo": "bar"}, 90},
		}
		for _, tc := range goodTimes {
			t.Run("ttl and grace/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				c.postMessages("q", msg(1))
				cid, _ := mcClaim(c, "q", "", tc.body)
				if cl := mcGetClaim(c, "q", cid); num(cl["ttl"]) != tc.wantTTL {
					t.Fatalf("claim ttl %v, want %d", cl["ttl"], tc.wantTTL)
				}
			})
		}

		t.Run("limit", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2), msg(3), msg(4), msg(5))
			_, first := mcClaim(c, "q", "limit=2", nil)
			mcEqualIDs(t, "first claim", mcIDs(first), ids[:2])
			_, second := mcClaim(c, "q", "limit=%2B2", map[string]any{})
			mcEqualIDs(t, "second claim", mcIDs(second), ids[2:4])
			_, third := mcClaim(c, "q", "", map[string]any{})
			mcEqualIDs(t, "third claim", mcIDs(third), ids[4:])
			mcNoContent(t, c.post("/v2/queues/q/claims", map[string]any{}))
		})

		t.Run("default limit 10", func(t *testing.T) {
			c := newClient(t, n)
			var msgs []map[string]any
			for i := 0; i < 12; i++ {
				msgs = append(msgs, msg(i))
			}
			ids := c.postMessages("q", msgs...)
			_, claimed := mcClaim(c, "q", "", nil)
			mcEqualIDs(t, "claimed", mcIDs(claimed), ids[:10])
			_, rest := mcClaim(c, "q", "limit=20", nil)
			mcEqualIDs(t, "rest", mcIDs(rest), ids[10:])
		})

		t.Run("nothing claimable", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1))
			mcClaim(c, "q", "", nil)
			r := c.post("/v2/queues/q/claims", map[string]any{})
			mcNoContent(t, r)
			if loc := r.Header.Get("Location"); loc != "" {
				t.Fatalf("204 with Location %q", loc)
			}
		})

		t.Run("empty queue", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", nil).expect(t, 201)
			mcNoContent(t, c.post("/v2/queues/q/claims", map[string]any{}))
		})

		t.Run("missing queue", func(t *testing.T) {
			c := newClient(t, n)
			mcNoContent(t, c.post("/v2/queues/nosuchqueue/claims", map[string]any{}))
			mcNoContent(t, c.post("/v2/queues/nosuchqueue/claims", nil))
		})

		t.Run("unknown query parameter", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			_, claimed := mcClaim(c, "q", "Invalid=x", map[string]any{})
			mcEqualIDs(t, "claimed", mcIDs(claimed), ids)
		})

		t.Run("claims ignore echo", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			other := c.as(newID())
			otherIDs := other.postMessages("q", msg(2))
			_, claimed := mcClaim(c, "q", "", nil)
			mcEqualIDs(t, "claimed own and other", mcIDs(claimed), append(ids, otherIDs...))
		})

		t.Run("claimed messages hidden from listing", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2), msg(3))
			other := c.as(newID())
			cid, _ := mcClaim(c, "q", "limit=2", nil)
			mcEqualIDs(t, "default listing", mcIDs(mcList(other, "q", "")), ids[2:])
			mcEqualIDs(t, "echo=true", mcIDs(mcList(c, "q", "echo=true")), ids[2:])
			all := mcList(c, "q", "include_claimed=true&echo=true")
			mcEqualIDs(t, "include_claimed", mcIDs(all), ids)
			for i, m := range all {
				want := mcMsgHref("q", ids[i])
				if i < 2 {
					want += "?claim_id=" + cid
				}
				if m["href"] != want {
					t.Fatalf("listed href %v, want %s", m["href"], want)
				}
			}
			if got := mcList(c, "q", "include_claimed=true"); len(got) != 0 {
				t.Fatalf("own messages listed without echo: %v", mcIDs(got))
			}
			mcEqualIDs(t, "other include_claimed", mcIDs(mcList(other, "q", "include_claimed=true")), ids)
			if m := c.get(mcMsgHref("q", ids[0])).expect(t, 200).JSON(t); m["href"] != mcMsgHref("q", ids[0])+"?claim_id="+cid {
				t.Fatalf("GET claimed message href %v", m["href"])
			}
			got := mcMessages(t, c.get("/v2/queues/q/messages?ids="+ids[0]).expect(t, 200))
			mcEqualIDs(t, "by ids", mcIDs(got), ids[:1])
			mcExpectStats(c, "q", 3, 2, 1)
		})
	})
}

func TestClaimsGet(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("shape", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg("a"), msg("b"))
			cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 120, "grace": 60})
			cl := mcGetClaim(c, "q", cid)
			if got := keys(cl); !reflect.DeepEqual(got, []string{"age", "href", "messages", "ttl"}) {
				t.Fatalf("claim keys %v, want age, href, messages, ttl (no grace)", got)
			}
			if cl["href"] != "/v2/queues/q/claims/"+cid || num(cl["ttl"]) != 120 || num(cl["age"]) != 0 {
				t.Fatalf("claim %v", cl)
			}
			msgs := cl["messages"].([]any)
			if len(msgs) != 2 {
				t.Fatalf("claim messages %v", msgs)
			}
			for i, raw := range msgs {
				m := raw.(map[string]any)
				if k := keys(m); !reflect.DeepEqual(k, []string{"age", "body", "href", "id", "ttl"}) {
					t.Fatalf("message keys %v", k)
				}
				if m["id"] != ids[i] || m["href"] != mcMsgHref("q", ids[i])+"?claim_id="+cid {
					t.Fatalf("claim message %v", m)
				}
			}
			n.Clock.Advance(20 * time.Second)
			cl = mcGetClaim(c, "q", cid)
			if num(cl["age"]) != 20 || num(cl["ttl"]) != 120 {
				t.Fatalf("after 20 s: age %v ttl %v, want 20 and 120", cl["age"], cl["ttl"])
			}
			if m := cl["messages"].([]any)[0].(map[string]any); num(m["age"]) != 20 {
				t.Fatalf("message age %v, want 20", m["age"])
			}
		})

		t.Run("alive until ttl", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
			n.Clock.Advance(59 * time.Second)
			mcGetClaim(c, "q", cid)
		})

		t.Run("messages shrink on delete", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			cid, _ := mcClaim(c, "q", "", nil)
			c.del(mcMsgHref("q", ids[0])+"?claim_id="+cid).expect(t, 204)
			mcEqualIDs(t, "claim messages", mcClaimMessageIDs(c, "q", cid), ids[1:])
		})

		notFound := []struct {
			name string
			// act returns the path to GET after preparing the situation.
			act func(t *testing.T, c *client, ids []string, cid string) (*client, string)
		}{
			{"unknown", func(t *testing.T, c *client, _ []string, _ string) (*client, string) {
				return c, "/v2/queues/q/claims/" + mcUnknownID()
			}},
			{"malformed", func(t *testing.T, c *client, _ []string, _ string) (*client, string) {
				return c, "/v2/queues/q/claims/abc"
			}},
			{"other project", func(t *testing.T, c *client, _ []string, cid string) (*client, string) {
				b := c.inProject("other-" + newID()[:12])
				b.postMessages("q", msg(1))
				return b, "/v2/queues/q/claims/" + cid
			}},
			{"other queue", func(t *testing.T, c *client, _ []string, cid string) (*client, string) {
				c.postMessages("q2", msg(1))
				return c, "/v2/queues/q2/claims/" + cid
			}},
			{"missing queue", func(t *testing.T, c *client, _ []string, cid string) (*client, string) {
				return c, "/v2/queues/nosuchqueue/claims/" + cid
			}},
			{"queue deleted", func(t *testing.T, c *client, _ []string, cid string) (*client, string) {
				c.del("/v2/queues/q").expect(t, 204)
				return c, "/v2/queues/q/claims/" + cid
			}},
			{"queue deleted and recreated", func(t *testing.T, c *client, _ []string, cid string) (*client, string) {
				c.del("/v2/queues/q").expect(t, 204)
				c.postMessages("q", msg(1))
				return c, "/v2/queues/q/claims/" + cid
			}},
			{"expired", func(t *testing.T, c *client, _ []string, cid string) (*client, string) {
				n.Clock.Advance(61 * time.Second)
				return c, "/v2/queues/q/claims/" + cid
			}},
			{"released", func(t *testing.T, c *client, _ []string, cid string) (*client, string) {
				c.del("/v2/queues/q/claims/"+cid).expect(t, 204)
				return c, "/v2/queues/q/claims/" + cid
			}},
			{"messages deleted one by one", func(t *testing.T, c *client, ids []string, cid string) (*client, string) {
				for _, id := range ids {
					c.del(mcMsgHref("q", id)+"?claim_id="+cid).expect(t, 204)
				}
				return c, "/v2/queues/q/claims/" + cid
			}},
			{"messages bulk deleted", func(t *testing.T, c *client, ids []string, cid string) (*client, string) {
				c.del("/v2/queues/q/messages?ids="+strings.Join(ids, ",")).expect(t, 204)
				return c, "/v2/queues/q/claims/" + cid
			}},
		}
		for _, tc := range notFound {
			t.Run("not found/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				ids := c.postMessages("q", msg(1, "ttl", 60), msg(2, "ttl", 60))
				cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60, "grace": 60})
				who, path := tc.act(t, c, ids, cid)
				who.get(path).expectError(t, 404, "does not exist")
			})
		}
	})
}

func TestClaimsRenew(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("resets ttl and age", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 120})
			n.Clock.Advance(30 * time.Second)
			if cl := mcGetClaim(c, "q", cid); num(cl["age"]) != 30 {
				t.Fatalf("age %v, want 30", cl["age"])
			}
			mcNoContent(t, c.patch("/v2/queues/q/claims/"+cid, map[string]any{"ttl": 60, "grace": 60}))
			cl := mcGetClaim(c, "q", cid)
			if num(cl["ttl"]) != 60 || num(cl["age"]) != 0 {
				t.Fatalf("after renew: ttl %v age %v, want 60 and 0", cl["ttl"], cl["age"])
			}
		})

		t.Run("extends the claim", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
			n.Clock.Advance(50 * time.Second)
			c.patch("/v2/queues/q/claims/"+cid, map[string]any{"ttl": 100}).expect(t, 204)
			n.Clock.Advance(50 * time.Second) // 100 s after creation, 50 s after renewal
			mcEqualIDs(t, "claim messages", mcClaimMessageIDs(c, "q", cid), ids)
			mcNoContent(t, c.post("/v2/queues/q/claims", nil))
			c.del(mcMsgHref("q", ids[0])).expect(t, 403)
			n.Clock.Advance(51 * time.Second)
			c.get("/v2/queues/q/claims/"+cid).expect(t, 404)
			_, again := mcClaim(c, "q", "", nil)
			mcEqualIDs(t, "claimable after renewed expiry", mcIDs(again), ids)
		})

		t.Run("applies the grace rule", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1, "ttl", 60), msg(2, "ttl", 3600))
			cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60, "grace": 60})
			c.patch("/v2/queues/q/claims/"+cid, map[string]any{"ttl": 200, "grace": 30}).expect(t, 204)
			if ttl := mcMessageTTL(c, "q", ids[0]); ttl != 230 {
				t.Fatalf("short message ttl %d, want 230 (claim ttl + grace)", ttl)
			}
			if ttl := mcMessageTTL(c, "q", ids[1]); ttl != 3600 {
				t.Fatalf("long message ttl %d, want 3600", ttl)
			}
		})

		t.Run("empty body takes defaults", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
			c.patch("/v2/queues/q/claims/"+cid, map[string]any{}).expect(t, 204)
			if cl := mcGetClaim(c, "q", cid); num(cl["ttl"]) != 300 {
				t.Fatalf("ttl %v, want default 300", cl["ttl"])
			}
		})

		for _, grace := range []int64{0, -1, 1, 59, 43201, 100000} {
			t.Run(fmt.Sprintf("any grace/%d", grace), func(t *testing.T) {
				c := newClient(t, n)
				c.postMessages("q", msg(1))
				cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
				c.patch("/v2/queues/q/claims/"+cid, map[string]any{"ttl": 90, "grace": grace}).expect(t, 204)
				if cl := mcGetClaim(c, "q", cid); num(cl["ttl"]) != 90 {
					t.Fatalf("ttl %v, want 90", cl["ttl"])
				}
				c.patch("/v2/queues/q/claims/"+cid, map[string]any{"grace": grace}).expect(t, 204)
			})
		}

		invalid := []struct {
			name string
			body any // nil: no body
			desc string
		}{
			{"ttl 59", map[string]any{"ttl": 59}, "The TTL for a claim may not exceed 43200 seconds, and must be at least 60 seconds long."},
			{"ttl 59 grace 60", map[string]any{"ttl": 59, "grace": 60}, "The TTL for a claim"},
			{"ttl 43201", map[string]any{"ttl": 43201}, "The TTL for a claim"},
			{"ttl string", map[string]any{"ttl": "60"}, `The value of the "ttl" field must be a int.`},
			{"ttl float", Raw(`{"ttl": 60.5}`), `The value of the "ttl" field must be a int.`},
			{"grace string", map[string]any{"grace": "60"}, `The value of the "grace" field must be a int.`},
			{"no body", nil, ""},
			{"truncated", Raw(`[`), "Request body could not be parsed."},
			{"number", Raw(`123`), "Request body could not be parsed."},
			{"array", Raw(`[]`), "Document type not supported."},
		}
		for _, tc := range invalid {
			t.Run("invalid/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				c.postMessages("q", msg(1))
				cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 120})
				n.Clock.Advance(5 * time.Second)
				c.do("PATCH", "/v2/queues/q/claims/"+cid, req{Body: tc.body}).expectError(t, 400, tc.desc)
				if cl := mcGetClaim(c, "q", cid); num(cl["ttl"]) != 120 || num(cl["age"]) != 5 {
					t.Fatalf("claim changed by a rejected renew: %v", cl)
				}
			})
		}

		t.Run("invalid/no content length", func(t *testing.T) {
			// §2.4.3: the body is mandatory; without Content-Length there
			// is none (§1.4).
			c := newClient(t, n)
			c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 120})
			mcChunked(c, "PATCH", "/v2/queues/q/claims/"+cid, `{"ttl": 60}`).expectError(t, 400, "Request body can not be empty")
			if cl := mcGetClaim(c, "q", cid); num(cl["ttl"]) != 120 {
				t.Fatalf("claim changed by a rejected renew: %v", cl)
			}
		})

		notFound := []struct {
			name string
			act  func(t *testing.T, c *client, ids []string, cid string) (*client, string)
		}{
			{"unknown", func(t *testing.T, c *client, _ []string, _ string) (*client, string) {
				return c, "/v2/queues/q/claims/" + mcUnknownID()
			}},
			{"malformed", func(t *testing.T, c *client, _ []string, _ string) (*client, string) {
				return c, "/v2/queues/q/claims/abc"
			}},
			{"other queue", func(t *testing.T, c *client, _ []string, cid string) (*client, string) {
				c.postMessages("q2", msg(1))
				return c, "/v2/queues/q2/claims/" + cid
			}},
			{"missing queue", func(t *testing.T, c *client, _ []string, cid string) (*client, string) {
				return c, "/v2/queues/nosuchqueue/claims/" + cid
			}},
			{"queue deleted", func(t *testing.T, c *client, _ []string, cid string) (*client, string) {
				c.del("/v2/queues/q").expect(t, 204)
				return c, "/v2/queues/q/claims/" + cid
			}},
			{"expired", func(t *testing.T, c *client, _ []string, cid string) (*client, string) {
				n.Clock.Advance(61 * time.Second)
				return c, "/v2/queues/q/claims/" + cid
			}},
			{"released", func(t *testing.T, c *client, _ []string, cid string) (*client, string) {
				c.del("/v2/queues/q/claims/"+cid).expect(t, 204)
				return c, "/v2/queues/q/claims/" + cid
			}},
			{"messages deleted", func(t *testing.T, c *client, ids []string, cid string) (*client, string) {
				c.del("/v2/queues/q/messages?ids="+strings.Join(ids, ",")).expect(t, 204)
				return c, "/v2/queues/q/claims/" + cid
			}},
		}
		for _, tc := range notFound {
			t.Run("not found/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				ids := c.postMessages("q", msg(1), msg(2))
				cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
				who, path := tc.act(t, c, ids, cid)
				who.patch(path, map[string]any{"ttl": 60, "grace": 60}).expectError(t, 404, "does not exist")
				// A renew that failed must not have claimed anything.
				if tc.name == "expired" || tc.name == "released" {
					_, again := mcClaim(c, "q", "", nil)
					mcEqualIDs(t, "claimable", mcIDs(again), ids)
				}
			})
		}
	})
}

func TestClaimsRelease(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("releases messages", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2), msg(3))
			other := c.as(newID())
			cid, _ := mcClaim(c, "q", "limit=2", nil)
			mcEqualIDs(t, "listed while claimed", mcIDs(mcList(other, "q", "")), ids[2:])
			mcNoContent(t, c.del("/v2/queues/q/claims/"+cid))
			c.get("/v2/queues/q/claims/"+cid).expect(t, 404)
			listed := mcList(other, "q", "")
			mcEqualIDs(t, "listed after release", mcIDs(listed), ids)
			for i, m := range listed {
				if m["href"] != mcMsgHref("q", ids[i]) {
					t.Fatalf("href after release %v, want no claim_id", m["href"])
				}
			}
			mcExpectStats(c, "q", 3, 0, 3)
			_, again := mcClaim(c, "q", "", nil)
			mcEqualIDs(t, "claimable after release", mcIDs(again), ids)
		})

		t.Run("other claims untouched", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			c1, _ := mcClaim(c, "q", "limit=1", nil)
			c2, _ := mcClaim(c, "q", "limit=1", nil)
			c.del("/v2/queues/q/claims/"+c1).expect(t, 204)
			mcEqualIDs(t, "second claim", mcClaimMessageIDs(c, "q", c2), ids[1:])
			_, again := mcClaim(c, "q", "", nil)
			mcEqualIDs(t, "claimable", mcIDs(again), ids[:1])
		})

		t.Run("twice", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", nil)
			mcNoContent(t, c.del("/v2/queues/q/claims/"+cid))
			mcNoContent(t, c.del("/v2/queues/q/claims/"+cid))
		})

		t.Run("expired claim does not release its successor", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			old, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
			n.Clock.Advance(61 * time.Second)
			cur, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
			mcNoContent(t, c.del("/v2/queues/q/claims/"+old))
			mcEqualIDs(t, "current claim", mcClaimMessageIDs(c, "q", cur), ids)
			mcNoContent(t, c.post("/v2/queues/q/claims", nil))
		})

		for _, tc := range []struct{ name, path string }{
			{"unknown", "/v2/queues/q/claims/" + mcUnknownID()},
			{"malformed", "/v2/queues/q/claims/abc"},
			{"missing queue", "/v2/queues/nosuchqueue/claims/" + mcUnknownID()},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := newClient(t, n)
				ids := c.postMessages("q", msg(1))
				cid, _ := mcClaim(c, "q", "", nil)
				mcNoContent(t, c.del(tc.path))
				mcEqualIDs(t, "claim intact", mcClaimMessageIDs(c, "q", cid), ids)
			})
		}
	})
}

func TestClaimsDeleteMessage(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		const claimedDesc = "This message is claimed; it cannot be deleted without a valid claim ID."
		const notClaimedDesc = "A claim was specified, but the message is not currently claimed."
		const badClaimDesc = "The specified claim does not exist or has expired."

		// gone and present check whether message id of queue q exists.
		gone := func(c *client, id string) { c.t.Helper(); c.get(mcMsgHref("q", id)).expect(c.t, 404) }
		present := func(c *client, id string) { c.t.Helper(); c.get(mcMsgHref("q", id)).expect(c.t, 200) }
		unableToDelete := func(t *testing.T, r *resp, status int, desc string) {
			t.Helper()
			r.expectError(t, status, desc)
			if title := r.JSON(t)["title"]; title != "Unable to delete" {
				t.Fatalf("title %v, want Unable to delete", title)
			}
		}

		t.Run("malformed message id", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			mcNoContent(t, c.del("/v2/queues/q/messages/abc"))
			mcNoContent(t, c.del("/v2/queues/q/messages/-1"))
			present(c, ids[0])
		})

		t.Run("malformed message and claim id", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1))
			unableToDelete(t, c.del("/v2/queues/q/messages/abc?claim_id=123"), 400, badClaimDesc)
		})

		for _, claim := range []string{"123", "invalid", "ZZ" + mcUnknownID()[2:]} {
			t.Run("malformed claim id/unclaimed/"+claim, func(t *testing.T) {
				c := newClient(t, n)
				ids := c.postMessages("q", msg(1))
				unableToDelete(t, c.del(mcMsgHref("q", ids[0])+"?claim_id="+claim), 400, badClaimDesc)
				present(c, ids[0])
			})
			t.Run("malformed claim id/claimed/"+claim, func(t *testing.T) {
				c := newClient(t, n)
				ids := c.postMessages("q", msg(1))
				mcClaim(c, "q", "", nil)
				unableToDelete(t, c.del(mcMsgHref("q", ids[0])+"?claim_id="+claim), 400, badClaimDesc)
				present(c, ids[0])
			})
		}

		t.Run("malformed claim id/unknown message", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1))
			unableToDelete(t, c.del(mcMsgHref("q", mcUnknownID())+"?claim_id=123"), 400, badClaimDesc)
		})

		t.Run("unknown message", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", nil)
			mcNoContent(t, c.del(mcMsgHref("q", mcUnknownID())))
			mcNoContent(t, c.del(mcMsgHref("q", mcUnknownID())+"?claim_id="+cid))
			mcNoContent(t, c.del(mcMsgHref("nosuchqueue", ids[0])+"?claim_id="+cid))
			present(c, ids[0])
		})

		t.Run("claimed without claim id", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			mcClaim(c, "q", "", nil)
			unableToDelete(t, c.del(mcMsgHref("q", ids[0])), 403, claimedDesc)
			present(c, ids[0])
		})

		t.Run("unclaimed without claim id", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			mcNoContent(t, c.del(mcMsgHref("q", ids[0])))
			gone(c, ids[0])
			present(c, ids[1])
			mcNoContent(t, c.del(mcMsgHref("q", ids[0])))
		})

		t.Run("with its claim id", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			cid, _ := mcClaim(c, "q", "", nil)
			mcNoContent(t, c.del(mcMsgHref("q", ids[0])+"?claim_id="+cid))
			gone(c, ids[0])
			present(c, ids[1])
			mcExpectStats(c, "q", 1, 1, 0)
		})

		t.Run("with its expired claim id", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
			n.Clock.Advance(61 * time.Second)
			c.get("/v2/queues/q/claims/"+cid).expect(t, 404)
			mcNoContent(t, c.del(mcMsgHref("q", ids[0])+"?claim_id="+cid))
			gone(c, ids[0])
		})

		t.Run("claimed by another claim", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			c1, _ := mcClaim(c, "q", "limit=1", nil)
			c2, _ := mcClaim(c, "q", "limit=1", nil)
			unableToDelete(t, c.del(mcMsgHref("q", ids[0])+"?claim_id="+c2), 403, claimedDesc)
			unableToDelete(t, c.del(mcMsgHref("q", ids[1])+"?claim_id="+c1), 403, claimedDesc)
			unableToDelete(t, c.del(mcMsgHref("q", ids[0])+"?claim_id="+mcUnknownID()), 403, claimedDesc)
			present(c, ids[0])
			present(c, ids[1])
		})

		t.Run("released claim id", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", nil)
			c.del("/v2/queues/q/claims/"+cid).expect(t, 204)
			unableToDelete(t, c.del(mcMsgHref("q", ids[0])+"?claim_id="+cid), 400, notClaimedDesc)
			present(c, ids[0])
		})

		t.Run("never claimed with a claim id", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			cid, _ := mcClaim(c, "q", "limit=1", nil)
			unableToDelete(t, c.del(mcMsgHref("q", ids[1])+"?claim_id="+cid), 400, notClaimedDesc)
			unableToDelete(t, c.del(mcMsgHref("q", ids[1])+"?claim_id="+mcUnknownID()), 400, notClaimedDesc)
			present(c, ids[1])
		})

		t.Run("other claim id after expiry", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
			n.Clock.Advance(61 * time.Second)
			unableToDelete(t, c.del(mcMsgHref("q", ids[0])+"?claim_id="+mcUnknownID()), 400, notClaimedDesc)
			present(c, ids[0])
			mcNoContent(t, c.del(mcMsgHref("q", ids[0])+"?claim_id="+cid))
			gone(c, ids[0])
		})

		t.Run("empty claim id", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			mcClaim(c, "q", "limit=1", nil)
			unableToDelete(t, c.del(mcMsgHref("q", ids[0])+"?claim_id="), 403, claimedDesc)
			mcNoContent(t, c.del(mcMsgHref("q", ids[1])+"?claim_id="))
			gone(c, ids[1])
		})
	})
}

func TestClaimsGrace(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("short message outlives its claim", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1, "ttl", 60))
			_, claimed := mcClaim(c, "q", "", map[string]any{"ttl": 100, "grace": 60})
			if ttl := num(claimed[0]["ttl"]); ttl != 160 {
				t.Fatalf("claimed message ttl %d, want 160", ttl)
			}
			if ttl := mcMessageTTL(c, "q", ids[0]); ttl != 160 {
				t.Fatalf("message ttl %d, want 160", ttl)
			}
			n.Clock.Advance(90 * time.Second) // past the message's own ttl
			c.get(mcMsgHref("q", ids[0])).expect(t, 200)
			n.Clock.Advance(60 * time.Second) // 150 s: claim expired, grace left
			mcEqualIDs(t, "listed in grace", mcIDs(mcList(c, "q", "echo=true")), ids)
			mcExpectStats(c, "q", 1, 0, 1)
			n.Clock.Advance(11 * time.Second) // 161 s
			c.get(mcMsgHref("q", ids[0])).expect(t, 404)
			mcExpectStats(c, "q", 0, 0, 0)
		})

		t.Run("long message keeps its ttl", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1, "ttl", 3600), msg(2, "ttl", 60), msg(3, "ttl", 1000))
			_, claimed := mcClaim(c, "q", "", map[string]any{"ttl": 100, "grace": 60})
			want := []int64{3600, 160, 1000}
			for i, m := range claimed {
				if num(m["ttl"]) != want[i] {
					t.Fatalf("claimed message %d ttl %v, want %d", i, m["ttl"], want[i])
				}
				if ttl := mcMessageTTL(c, "q", ids[i]); ttl != want[i] {
					t.Fatalf("message %d ttl %d, want %d", i, ttl, want[i])
				}
			}
		})

		t.Run("default grace", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1, "ttl", 60))
			mcClaim(c, "q", "", map[string]any{"ttl": 120})
			if ttl := mcMessageTTL(c, "q", ids[0]); ttl != 180 {
				t.Fatalf("message ttl %d, want 180 (claim ttl 120 + default grace 60)", ttl)
			}
		})
	})
}

func TestClaimsExpiry(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("messages claimable again", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			other := c.as(newID())
			old, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
			n.Clock.Advance(59 * time.Second)
			mcNoContent(t, c.post("/v2/queues/q/claims", nil))
			if got := mcList(other, "q", ""); len(got) != 0 {
				t.Fatalf("claimed messages listed: %v", mcIDs(got))
			}
			mcExpectStats(c, "q", 2, 2, 0)
			n.Clock.Advance(2 * time.Second)
			c.get("/v2/queues/q/claims/"+old).expect(t, 404)
			c.patch("/v2/queues/q/claims/"+old, map[string]any{"ttl": 60}).expect(t, 404)
			mcEqualIDs(t, "listed after expiry", mcIDs(mcList(other, "q", "")), ids)
			mcExpectStats(c, "q", 2, 0, 2)
			cur, claimed := mcClaim(c, "q", "", nil)
			mcEqualIDs(t, "claimed again", mcIDs(claimed), ids)
			if cur == old {
				t.Fatalf("new claim reuses id %s", cur)
			}
			mcEqualIDs(t, "new claim", mcClaimMessageIDs(c, "q", cur), ids)
			c.del(mcMsgHref("q", ids[0])).expect(t, 403)
		})

		t.Run("unclaimed messages deletable after expiry", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			mcClaim(c, "q", "", map[string]any{"ttl": 60})
			n.Clock.Advance(61 * time.Second)
			mcNoContent(t, c.del(mcMsgHref("q", ids[0])))
			c.get(mcMsgHref("q", ids[0])).expect(t, 404)
		})

		t.Run("pop after expiry", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", map[string]any{"ttl": 60})
			if got := mcMessages(t, c.del("/v2/queues/q/messages?pop=1").expect(t, 200)); len(got) != 0 {
				t.Fatalf("popped claimed message")
			}
			n.Clock.Advance(61 * time.Second)
			popped := mcMessages(t, c.del("/v2/queues/q/messages?pop=1").expect(t, 200))
			mcEqualIDs(t, "popped", mcIDs(popped), ids)
			// The claim count is kept (B5); the stale claim id may be kept
			// or cleared (B20).
			if num(popped[0]["claim_count"]) != 1 {
				t.Fatalf("claim_count %v, want 1", popped[0]["claim_count"])
			}
			if v := popped[0]["claim_id"]; v != nil && v != cid {
				t.Fatalf("claim_id %v, want null or the stale %s", v, cid)
			}
		})

		t.Run("pop after release", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			cid, _ := mcClaim(c, "q", "", nil)
			c.patch("/v2/queues/q/claims/"+cid, map[string]any{"ttl": 90}).expect(t, 204)
			c.del("/v2/queues/q/claims/"+cid).expect(t, 204)
			popped := mcMessages(t, c.del("/v2/queues/q/messages?pop=1").expect(t, 200))
			mcEqualIDs(t, "popped", mcIDs(popped), ids)
			if num(popped[0]["claim_count"]) != 1 || popped[0]["claim_id"] != nil {
				t.Fatalf("popped %v, want claim_count 1 (B5) and claim_id null", popped[0])
			}
		})
	})
}

func TestClaimsTenantIsolation(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		// setup gives project A three messages in "shared", the first two
		// claimed with ttl 120, and a client of project B.
		setup := func(t *testing.T) (a, b *client, ids []string, cid string) {
			a = newClient(t, n)
			b = a.inProject("other-" + newID()[:12])
			ids = a.postMessages("shared", msg(1, "ttl", 60), msg(2), msg(3))
			cid, claimed := mcClaim(a, "shared", "limit=2", map[string]any{"ttl": 120, "grace": 60})
			mcEqualIDs(t, "claimed", mcIDs(claimed), ids[:2])
			return a, b, ids, cid
		}
		unchanged := func(t *testing.T, a *client, ids []string, cid string) {
			t.Helper()
			cl := mcGetClaim(a, "shared", cid)
			if num(cl["ttl"]) != 120 {
				t.Fatalf("A's claim ttl %v, want 120", cl["ttl"])
			}
			mcEqualIDs(t, "A's claim", mcClaimMessageIDs(a, "shared", cid), ids[:2])
			mcEqualIDs(t, "A's messages", mcIDs(mcList(a, "shared", "echo=true&include_claimed=true")), ids)
			mcEqualIDs(t, "A's unclaimed", mcIDs(mcList(a, "shared", "echo=true")), ids[2:])
			mcExpectStats(a, "shared", 3, 2, 1)
			if ttl := mcMessageTTL(a, "shared", ids[0]); ttl != 180 {
				t.Fatalf("A's message ttl %d, want 180", ttl)
			}
		}

		t.Run("claim", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			mcNoContent(t, b.post("/v2/queues/shared/claims", map[string]any{}))
			mcNoContent(t, b.post("/v2/queues/shared/claims?limit=20", nil))
			unchanged(t, a, ids, cid)
		})

		t.Run("claim own same-named queue", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			bids := b.postMessages("shared", msg("b"))
			_, claimed := mcClaim(b, "shared", "limit=20", nil)
			mcEqualIDs(t, "B claimed", mcIDs(claimed), bids)
			unchanged(t, a, ids, cid)
		})

		t.Run("get", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			b.get("/v2/queues/shared/claims/"+cid).expectError(t, 404, "does not exist")
			b.postMessages("shared", msg("b"))
			b.get("/v2/queues/shared/claims/"+cid).expectError(t, 404, "does not exist")
			unchanged(t, a, ids, cid)
		})

		t.Run("renew", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			b.patch("/v2/queues/shared/claims/"+cid, map[string]any{"ttl": 500, "grace": 500}).expectError(t, 404, "does not exist")
			unchanged(t, a, ids, cid)
		})

		t.Run("release", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			mcNoContent(t, b.del("/v2/queues/shared/claims/"+cid))
			unchanged(t, a, ids, cid)
		})

		t.Run("delete with claim id", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			for _, id := range ids[:2] {
				mcNoContent(t, b.del(mcMsgHref("shared", id)+"?claim_id="+cid))
				mcNoContent(t, b.del(mcMsgHref("shared", id)))
			}
			unchanged(t, a, ids, cid)
		})

		t.Run("bulk delete claimed", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			mcNoContent(t, b.del("/v2/queues/shared/messages?ids="+strings.Join(ids, ",")))
			unchanged(t, a, ids, cid)
		})

		t.Run("pop", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			if got := mcMessages(t, b.del("/v2/queues/shared/messages?pop=20").expect(t, 200)); len(got) != 0 {
				t.Fatalf("B popped %v", mcIDs(got))
			}
			unchanged(t, a, ids, cid)
		})
	})
}

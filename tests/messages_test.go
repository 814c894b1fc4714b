package tests

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// End-to-end conformance tests for the message routes (contract §2.3, §3.1-3.4,
// §3.6; checklist items 23-38, 43 and 50). Claim routes are in claims_test.go.
// Helpers shared by both files carry an "mc" prefix.

// mcMessages decodes the "messages" array of a response body.
func mcMessages(t testing.TB, r *resp) []map[string]any {
	t.Helper()
	raw, ok := r.JSON(t)["messages"].([]any)
	if !ok {
		t.Fatalf("body has no messages array: %s", r.Body)
	}
	out := make([]map[string]any, len(raw))
	for i, e := range raw {
		m, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("message %d is not an object: %s", i, r.Body)
		}
		out[i] = m
	}
	return out
}

// mcList lists queue q with the raw query string query, expecting 200.
func mcList(c *client, q, query string) []map[string]any {
	c.t.Helper()
	p := "/v2/queues/" + q + "/messages"
	if query != "" {
		p += "?" + query
	}
	return mcMessages(c.t, c.get(p).expect(c.t, 200))
}

// mcIDs returns the ids of msgs in order.
func mcIDs(msgs []map[string]any) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i], _ = m["id"].(string)
	}
	return out
}

// mcSorted returns a sorted copy of ids.
func mcSorted(ids []string) []string {
	out := append([]string(nil), ids...)
	sort.Strings(out)
	return out
}

// mcEqualIDs fails unless got and want hold the same ids in the same order.
func mcEqualIDs(t testing.TB, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: ids %v, want %v", what, got, want)
	}
}

// mcStats returns total, claimed and free of the queue's stats.
func mcStats(c *client, q string) (total, claimed, free int64) {
	c.t.Helper()
	m, ok := c.get("/v2/queues/"+q+"/stats").expect(c.t, 200).JSON(c.t)["messages"].(map[string]any)
	if !ok {
		c.t.Fatalf("stats without messages object")
	}
	return num(m["total"]), num(m["claimed"]), num(m["free"])
}

// mcExpectStats fails unless the queue's stats are total/claimed/free.
func mcExpectStats(c *client, q string, total, claimed, free int64) {
	c.t.Helper()
	gt, gc, gf := mcStats(c, q)
	if gt != total || gc != claimed || gf != free {
		c.t.Fatalf("stats of %s: total %d claimed %d free %d, want %d %d %d", q, gt, gc, gf, total, claimed, free)
	}
}

// mcPostRaw posts a raw message body to queue q.
func mcPostRaw(c *client, q, body string) *resp {
	c.t.Helper()
	return c.do("POST", "/v2/queues/"+q+"/messages", req{Body: Raw(body)})
}

// mcSizedBody is a valid message post body of exactly n bytes.
func mcSizedBody(n int) string {
	const head, tail = `{"messages":[{"body":"`, `"}]}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// mcChunked sends body without Content-Length.
func mcChunked(c *client, method, path, body string) *resp {
	c.t.Helper()
	return c.do(method, path, req{Body: Chunked(body)})
}

// mcMsgHref is the href of message id in queue q.
func mcMsgHref(q, id string) string { return "/v2/queues/" + q + "/messages/" + id }

// mcUnknownID is a well-formed message or claim id that matches nothing.
func mcUnknownID() string { return "ff" + newID()[:22] }

func TestMessagesPost(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("lazy queue creation", func(t *testing.T) {
			c := newClient(t, n)
			r := c.get("/v2/queues").expect(t, 200).JSON(t)
			if qs := r["queues"].([]any); len(qs) != 0 {
				t.Fatalf("new project lists queues: %v", qs)
			}
			c.postMessages("brandnew", msg("hello"))
			var names []string
			for _, q := range c.get("/v2/queues").expect(t, 200).JSON(t)["queues"].([]any) {
				names = append(names, q.(map[string]any)["name"].(string))
			}
			if !reflect.DeepEqual(names, []string{"brandnew"}) {
				t.Fatalf("queues %v, want [brandnew]", names)
			}
		})

		invalid := []struct {
			name, body, desc string
		}{
			{"empty object", `{}`, "No messages were found in the request body."},
			{"bare array", `[{"body":1,"ttl":100}]`, "No messages were found in the request body."},
			{"wrong key", `{"message":[{"body":1}]}`, "No messages were found in the request body."},
			{"empty messages", `{"messages":[]}`, "No messages to enqueu."},
			{"messages object", `{"messages":{}}`, "Document type not supported."},
			{"messages string", `{"messages":"x"}`, "Document type not supported."},
			{"number element", `{"messages":[1]}`, "Document type not supported."},
			{"array element", `{"messages":[{"body":1},[]]}`, "Document type not supported."},
			{"null element", `{"messages":[null]}`, "Document type not supported."},
			{"bare number", `123`, "Request body could not be parsed."},
			{"bare string", `"fail"`, "Request body could not be parsed."},
			{"bare null", `null`, "Request body could not be parsed."},
			{"truncated", `{"messages":[`, "Request body could not be parsed."},
			{"trailing garbage", `{"messages":[{"body":1}]} x`, "Request body could not be parsed."},
			{"missing body", `{"messages":[{"ttl":100}]}`, `Missing "body" field.`},
			{"second missing body", `{"messages":[{"body":1},{"ttl":100}]}`, `Missing "body" field.`},
		}
		for _, tc := range invalid {
			t.Run("invalid body/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				mcPostRaw(c, "q", tc.body).expectError(t, 400, tc.desc)
				if got := mcList(c, "q", "echo=true"); len(got) != 0 {
					t.Fatalf("rejected post stored %d messages", len(got))
				}
			})
		}

		t.Run("rejected post still creates the queue", func(t *testing.T) {
			// Contract Q1: the queue is created before the body is validated.
			c := newClient(t, n)
			mcPostRaw(c, "lazy", `{}`).expect(t, 400)
			qs := c.get("/v2/queues").expect(t, 200).JSON(t)["queues"].([]any)
			if len(qs) != 1 || qs[0].(map[string]any)["name"] != "lazy" {
				t.Fatalf("queues %v, want [lazy]", qs)
			}
		})

		t.Run("content type not enforced", func(t *testing.T) {
			c := newClient(t, n)
			r := c.do("POST", "/v2/queues/q/messages", req{Body: Raw(`{"messages":[{"body":1}]}`), Headers: map[string]string{"Content-Type": "text/plain"}})
			r.expect(t, 201)
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})

		t.Run("invalid body/no body", func(t *testing.T) {
			c := newClient(t, n)
			c.post("/v2/queues/q/messages", nil).expect(t, 400)
		})

		t.Run("invalid body/no content length", func(t *testing.T) {
			// §1.4: the body is read using Content-Length; a body without
			// it is "no body" (§2.3.1 step 3).
			c := newClient(t, n)
			mcChunked(c, "POST", "/v2/queues/q/messages", `{"messages":[{"body":1}]}`).expectError(t, 400, "Request body can not be empty")
			if got := mcList(c, "q", "echo=true"); len(got) != 0 {
				t.Fatalf("chunked post stored %d messages", len(got))
			}
		})

		badTTL := []struct{ name, ttl, desc string }{
			{"59", `59`, "The TTL for a message may not exceed 1209600 seconds, and must be at least 60 seconds long."},
			{"1209601", `1209601`, "The TTL for a message may not exceed 1209600 seconds, and must be at least 60 seconds long."},
			{"-1", `-1`, "The TTL for a message may not exceed 1209600 seconds, and must be at least 60 seconds long."},
			{"0", `0`, "The TTL for a message may not exceed 1209600 seconds, and must be at least 60 seconds long."},
			{"true", `true`, "The TTL for a message may not exceed 1209600 seconds, and must be at least 60 seconds long."},
			{"string", `"200"`, `The value of the "ttl" field must be a int.`},
			{"float", `100.5`, `The value of the "ttl" field must be a int.`},
			{"integral float", `100.0`, `The value of the "ttl" field must be a int.`},
			{"exponent", `1e2`, `The value of the "ttl" field must be a int.`},
			{"null", `null`, `The value of the "ttl" field must be a int.`},
			{"object", `{}`, `The value of the "ttl" field must be a int.`},
		}
		for _, tc := range badTTL {
			t.Run("bad ttl/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				// The bad message comes second: the post is all or nothing.
				mcPostRaw(c, "q", `{"messages":[{"body":1},{"body":2,"ttl":`+tc.ttl+`}]}`).expectError(t, 400, tc.desc)
				if got := mcList(c, "q", "echo=true"); len(got) != 0 {
					t.Fatalf("rejected post stored %d messages", len(got))
				}
			})
		}

		for _, ttl := range []int{60, 1209600} {
			t.Run(fmt.Sprintf("ttl bound %d", ttl), func(t *testing.T) {
				c := newClient(t, n)
				ids := c.postMessages("q", msg(1, "ttl", ttl))
				m := c.get(mcMsgHref("q", ids[0])).expect(t, 200).JSON(t)
				if num(m["ttl"]) != int64(ttl) {
					t.Fatalf("ttl %v, want %d", m["ttl"], ttl)
				}
			})
		}

		t.Run("body null", func(t *testing.T) {
			c := newClient(t, n)
			r := mcPostRaw(c, "q", `{"messages":[{"body":null}]}`).expect(t, 201)
			href := r.JSON(t)["resources"].([]any)[0].(string)
			m := c.get(href).expect(t, 200).JSON(t)
			if v, ok := m["body"]; !ok || v != nil {
				t.Fatalf("body %#v, want null", m["body"])
			}
		})

		t.Run("bodies round trip", func(t *testing.T) {
			c := newClient(t, n)
			bodies := []any{"text", 42.0, 1.5, true, []any{1.0, "two"}, map[string]any{"event": "BackupStarted", "nested": map[string]any{"k": []any{}}}, "ünïcødé ✓"}
			var msgs []map[string]any
			for _, b := range bodies {
				msgs = append(msgs, msg(b))
			}
			ids := c.postMessages("q", msgs...)
			if r := c.get(mcMsgHref("q", ids[len(ids)-1])).expect(t, 200); !strings.Contains(string(r.Body), "ünïcødé ✓") {
				t.Fatalf("non-ASCII not written literally: %s", r.Body)
			}
			for i, id := range ids {
				got := c.get(mcMsgHref("q", id)).expect(t, 200).JSON(t)["body"]
				if !reflect.DeepEqual(got, bodies[i]) {
					t.Fatalf("body %d: %#v, want %#v", i, got, bodies[i])
				}
			}
		})

		t.Run("unknown fields dropped", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1, "foo", "bar", "claim_id", "x", "id", "y"))
			m := c.get(mcMsgHref("q", ids[0])).expect(t, 200).JSON(t)
			if got := keys(m); !reflect.DeepEqual(got, []string{"age", "body", "href", "id", "ttl"}) {
				t.Fatalf("keys %v", got)
			}
			if m["id"] != ids[0] {
				t.Fatalf("id %v, want %s", m["id"], ids[0])
			}
		})

		t.Run("default ttl", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			if m := c.get(mcMsgHref("q", ids[0])).expect(t, 200).JSON(t); num(m["ttl"]) != 3600 {
				t.Fatalf("ttl %v, want 3600", m["ttl"])
			}
		})

		t.Run("queue default ttl", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"_default_message_ttl": 999}).expect(t, 201)
			ids := c.postMessages("q", msg(1), msg(2, "ttl", 120))
			for i, want := range []int64{999, 120} {
				if m := c.get(mcMsgHref("q", ids[i])).expect(t, 200).JSON(t); num(m["ttl"]) != want {
					t.Fatalf("message %d ttl %v, want %d", i, m["ttl"], want)
				}
			}
		})

		t.Run("three messages", func(t *testing.T) {
			c := newClient(t, n)
			r := c.post("/v2/queues/q/messages", map[string]any{"messages": []any{msg(1), msg(2), msg(3)}}).expect(t, 201)
			body := r.JSON(t)
			if got := keys(body); !reflect.DeepEqual(got, []string{"resources"}) {
				t.Fatalf("keys %v, want [resources] (no partial)", got)
			}
			res := body["resources"].([]any)
			if len(res) != 3 {
				t.Fatalf("resources %v", res)
			}
			listed := mcIDs(mcList(c, "q", "echo=true"))
			if len(listed) != 3 {
				t.Fatalf("listed %v", listed)
			}
			for i, h := range res {
				if h != mcMsgHref("q", listed[i]) {
					t.Fatalf("resource %d %v, want %s (request order)", i, h, mcMsgHref("q", listed[i]))
				}
			}
			if loc, want := r.Header.Get("Location"), "/v2/queues/q/messages?ids="+strings.Join(listed, ","); loc != want {
				t.Fatalf("Location %q, want %q", loc, want)
			}
			for i, m := range mcList(c, "q", "echo=true") {
				if num(m["body"]) != int64(i+1) {
					t.Fatalf("message %d body %v", i, m["body"])
				}
			}
		})

		t.Run("size limit", func(t *testing.T) {
			c := newClient(t, n)
			mcPostRaw(c, "q", mcSizedBody(262145)).expectError(t, 400, "Message collection size is too large.")
			mcPostRaw(c, "q", mcSizedBody(262144)).expect(t, 201)
		})

		t.Run("queue post size limit", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"_max_messages_post_size": 1023}).expect(t, 201)
			mcPostRaw(c, "q", mcSizedBody(1200)).expectError(t, 400, "Message collection size is too large.")
			mcPostRaw(c, "q", mcSizedBody(1024)).expectError(t, 400, "Message collection size is too large.")
			mcPostRaw(c, "q", mcSizedBody(1023)).expect(t, 201)
			if got := mcList(c, "q", "echo=true"); len(got) != 1 {
				t.Fatalf("listed %d messages, want 1", len(got))
			}
		})

		t.Run("big integer", func(t *testing.T) {
			c := newClient(t, n)
			mcPostRaw(c, "q", `{"messages":[{"body":{"n":9223372036854775808}}]}`).expectError(t, 400, "JSON contains integer that is too large.")
			mcPostRaw(c, "q", `{"messages":[{"body":-9223372036854775809}]}`).expectError(t, 400, "JSON contains integer that is too large.")
			mcPostRaw(c, "q", `{"messages":[{"body":1,"ttl":9223372036854775808}]}`).expectError(t, 400, "JSON contains integer that is too large.")
			r := mcPostRaw(c, "q", `{"messages":[{"body":9223372036854775807}]}`).expect(t, 201)
			href := r.JSON(t)["resources"].([]any)[0].(string)
			if g := c.get(href).expect(t, 200); !strings.Contains(string(g.Body), `"body":9223372036854775807`) {
				t.Fatalf("largest int64 not returned exactly: %s", g.Body)
			}
		})
	})
}

func TestMessagesGet(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("shape", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(map[string]any{"event": "x"}, "ttl", 300))
			r := c.get(mcMsgHref("q", ids[0])).expect(t, 200)
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			m := r.JSON(t)
			if got := keys(m); !reflect.DeepEqual(got, []string{"age", "body", "href", "id", "ttl"}) {
				t.Fatalf("keys %v, want exactly id, href, ttl, age, body", got)
			}
			if m["id"] != ids[0] || m["href"] != mcMsgHref("q", ids[0]) || num(m["ttl"]) != 300 || num(m["age"]) != 0 {
				t.Fatalf("message %v", m)
			}
			if !reflect.DeepEqual(m["body"], map[string]any{"event": "x"}) {
				t.Fatalf("body %v", m["body"])
			}
			n.Clock.Advance(10 * time.Second)
			if m := c.get(mcMsgHref("q", ids[0])).expect(t, 200).JSON(t); num(m["age"]) != 10 || num(m["ttl"]) != 300 {
				t.Fatalf("after 10 s: age %v ttl %v, want 10 and 300", m["age"], m["ttl"])
			}
		})

		t.Run("other project", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			other := newClient(t, n)
			other.postMessages("q", msg(2))
			other.get(mcMsgHref("q", ids[0])).expectError(t, 404, "does not exist")
			c.get(mcMsgHref("q", ids[0])).expect(t, 200)
		})

		t.Run("other queue", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			c.postMessages("q2", msg(2))
			c.get(mcMsgHref("q2", ids[0])).expectError(t, 404, "does not exist")
		})

		notFound := []struct{ name, id string }{
			{"unknown id", mcUnknownID()},
			{"random uuid", "550e8400-e29b-41d4-a716-446655440000"},
			{"random hex uuid", newID()},
			{"malformed", "abc"},
			{"minus one", "-1"},
		}
		for _, tc := range notFound {
			t.Run("not found/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				c.postMessages("q", msg(1))
				r := c.get(mcMsgHref("q", tc.id))
				r.expectError(t, 404, "does not exist")
				if m := r.JSON(t); m["title"] != "Not found" {
					t.Fatalf("title %v", m["title"])
				}
			})
		}

		t.Run("not found/missing queue", func(t *testing.T) {
			c := newClient(t, n)
			c.get(mcMsgHref("nosuchqueue", mcUnknownID())).expect(t, 404)
		})

		t.Run("not found/queue deleted", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			c.del("/v2/queues/q").expect(t, 204)
			c.get(mcMsgHref("q", ids[0])).expect(t, 404)
			c.postMessages("q", msg(2))
			c.get(mcMsgHref("q", ids[0])).expect(t, 404)
		})

		t.Run("not found/description", func(t *testing.T) {
			c := newClient(t, n)
			id := mcUnknownID()
			c.get(mcMsgHref("q", id)).expectError(t, 404, "Message "+id+" does not exist in queue q for project "+c.Project)
		})
	})
}

func TestMessagesEcho(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("own messages hidden", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			if got := mcList(c, "q", ""); len(got) != 0 {
				t.Fatalf("own messages listed without echo: %v", mcIDs(got))
			}
			if got := mcList(c, "q", "echo=false"); len(got) != 0 {
				t.Fatalf("own messages listed with echo=false: %v", mcIDs(got))
			}
			mcEqualIDs(t, "echo=true", mcIDs(mcList(c, "q", "echo=true")), ids)
		})

		t.Run("other client sees them", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			other := c.as(newID())
			mcEqualIDs(t, "other client", mcIDs(mcList(other, "q", "")), ids)
			mcEqualIDs(t, "other client echo=false", mcIDs(mcList(other, "q", "echo=false")), ids)
		})

		t.Run("mixed posters", func(t *testing.T) {
			c := newClient(t, n)
			mine := c.postMessages("q", msg(1))
			other := c.as(newID())
			theirs := other.postMessages("q", msg(2))
			mcEqualIDs(t, "poster 1", mcIDs(mcList(c, "q", "")), theirs)
			mcEqualIDs(t, "poster 2", mcIDs(mcList(other, "q", "")), mine)
		})

		forms := []struct{ name, post, list string }{
			{"dashed then undashed", "550e8400-e29b-41d4-a716-446655440000", "550e8400e29b41d4a716446655440000"},
			{"undashed then dashed", "550e8400e29b41d4a716446655440000", "550e8400-e29b-41d4-a716-446655440000"},
			{"upper case braces", "{550E8400-E29B-41D4-A716-446655440000}", "550e8400e29b41d4a716446655440000"},
			{"urn", "urn:uuid:550e8400-e29b-41d4-a716-446655440000", "550e8400e29b41d4a716446655440000"},
		}
		for _, tc := range forms {
			t.Run("same uuid/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				ids := c.as(tc.post).postMessages("q", msg(1))
				lister := c.as(tc.list)
				if got := mcList(lister, "q", ""); len(got) != 0 {
					t.Fatalf("same client (other spelling) sees its messages: %v", mcIDs(got))
				}
				mcEqualIDs(t, "echo=true", mcIDs(mcList(lister, "q", "echo=true")), ids)
			})
		}
	})
}

func TestMessagesList(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		invalid := []struct{ name, query, title, desc string }{
			{"limit 21", "limit=21", "Invalid API request", "Limit must be at least 1 and may not be greater than 20."},
			{"limit 0", "limit=0", "Invalid API request", "Limit must be at least 1 and may not be greater than 20."},
			{"limit -1", "limit=-1", "Invalid API request", "Limit must be at least 1 and may not be greater than 20."},
			{"limit abc", "limit=abc", "Invalid parameter", "limit"},
			{"limit 5.0", "limit=5.0", "Invalid parameter", "limit"},
			{"echo maybe", "echo=maybe", "Invalid parameter", "echo"},
			{"include_claimed None", "include_claimed=None", "Invalid parameter", "include_claimed"},
			{"include_delayed x", "include_delayed=x", "Invalid parameter", "include_delayed"},
		}
		for _, tc := range invalid {
			t.Run("invalid/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				c.postMessages("q", msg(1))
				r := c.get("/v2/queues/q/messages?" + tc.query)
				r.expectError(t, 400, tc.desc)
				if got := r.JSON(t)["title"]; got != tc.title {
					t.Fatalf("title %v, want %q", got, tc.title)
				}
			})
		}

		valid := []struct {
			name, query string
			count       int
		}{
			{"echo True", "echo=True", 2},
			{"echo yes", "echo=yes", 2},
			{"echo 1", "echo=1", 2},
			{"echo on", "echo=on", 2},
			{"echo False", "echo=False", 0},
			{"limit +1", "limit=%2B1&echo=true", 1},
			{"limit 20", "limit=20&echo=true", 2},
			{"blank values are absent", "limit=&echo=true&marker=", 2},
			{"unknown param ignored", "foo=bar&echo=true", 2},
		}
		for _, tc := range valid {
			t.Run("valid/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				c.postMessages("q", msg(1), msg(2))
				if got := mcList(c, "q", tc.query); len(got) != tc.count {
					t.Fatalf("listed %d, want %d", len(got), tc.count)
				}
			})
		}

		t.Run("default limit 10", func(t *testing.T) {
			c := newClient(t, n)
			var msgs []map[string]any
			for i := 0; i < 12; i++ {
				msgs = append(msgs, msg(i))
			}
			ids := c.postMessages("q", msgs...)
			mcEqualIDs(t, "first page", mcIDs(mcList(c, "q", "echo=true")), ids[:10])
		})

		t.Run("paging", func(t *testing.T) {
			c := newClient(t, n)
			var msgs []map[string]any
			for i := 0; i < 10; i++ {
				msgs = append(msgs, msg(i))
			}
			ids := c.postMessages("q", msgs...)
			// The new marker goes last on the first page and takes the
			// place of the client's marker on the following ones (§1.8).
			first := regexp.MustCompile(`^/v2/queues/q/messages\?limit=3&echo=true&include_delayed=true&marker=[0-9]+$`)
			next := regexp.MustCompile(`^/v2/queues/q/messages\?marker=[0-9]+&limit=3&echo=true&include_delayed=true$`)
			path := "/v2/queues/q/messages?limit=3&echo=true"
			var sizes []int
			var seen []string
			for page := 0; ; page++ {
				if page > 6 {
					t.Fatalf("paging does not end: pages %v", sizes)
				}
				r := c.get(path).expect(t, 200)
				body := r.JSON(t)
				got := mcMessages(t, r)
				links, ok := body["links"].([]any)
				if !ok {
					t.Fatalf("page %d without links array: %s", page, r.Body)
				}
				if len(got) == 0 {
					if len(links) != 0 {
						t.Fatalf("empty page links %v, want []", links)
					}
					break
				}
				sizes = append(sizes, len(got))
				for _, m := range got {
					if int(num(m["body"])) != len(seen) {
						t.Fatalf("page %d: body %v out of order", page, m["body"])
					}
					seen = append(seen, m["id"].(string))
				}
				if len(links) != 1 {
					t.Fatalf("page %d links %v, want one next link", page, links)
				}
				l := links[0].(map[string]any)
				href, _ := l["href"].(string)
				if want := map[bool]*regexp.Regexp{true: first, false: next}[page == 0]; l["rel"] != "next" || !want.MatchString(href) {
					t.Fatalf("page %d next link %v", page, l)
				}
				path = href
			}
			if !reflect.DeepEqual(sizes, []int{3, 3, 3, 1}) {
				t.Fatalf("page sizes %v, want [3 3 3 1]", sizes)
			}
			mcEqualIDs(t, "paged ids", seen, ids)
		})

		t.Run("next link keeps filters", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1))
			r := c.get("/v2/queues/q/messages?include_claimed=true&echo=false&limit=5").expect(t, 200)
			if got := mcMessages(t, r); len(got) != 0 {
				t.Fatalf("listed own messages with echo=false")
			}
			r = c.get("/v2/queues/q/messages?limit=5&echo=true&include_claimed=false").expect(t, 200)
			l := r.JSON(t)["links"].([]any)[0].(map[string]any)
			if want := regexp.MustCompile(`^/v2/queues/q/messages\?limit=5&echo=true&include_claimed=false&include_delayed=true&marker=[0-9]+$`); !want.MatchString(l["href"].(string)) {
				t.Fatalf("next href %v", l["href"])
			}
		})

		t.Run("markers are queue counters", func(t *testing.T) {
			// §3.2: each queue counts from 1; recreating it restarts.
			c := newClient(t, n)
			marker := func() string {
				c.t.Helper()
				href := c.get("/v2/queues/q/messages?limit=2&echo=true").expect(t, 200).JSON(t)["links"].([]any)[0].(map[string]any)["href"].(string)
				return href[strings.LastIndex(href, "=")+1:]
			}
			c.postMessages("q", msg(1), msg(2), msg(3))
			c.postMessages("other", msg(1))
			if m := marker(); m != "2" {
				t.Fatalf("marker %s, want 2", m)
			}
			c.del("/v2/queues/q").expect(t, 204)
			c.postMessages("q", msg(4))
			if m := marker(); m != "1" {
				t.Fatalf("marker after recreation %s, want 1", m)
			}
		})

		t.Run("bad marker", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1), msg(2))
			r := c.get("/v2/queues/q/messages?echo=true&marker=sfhlsfdjh2048").expect(t, 200)
			body := r.JSON(t)
			if ms := body["messages"].([]any); len(ms) != 0 {
				t.Fatalf("messages %v, want []", ms)
			}
			if ls, ok := body["links"].([]any); !ok || len(ls) != 0 {
				t.Fatalf("links %v, want []", body["links"])
			}
		})

		t.Run("missing queue", func(t *testing.T) {
			c := newClient(t, n)
			r := c.get("/v2/queues/nosuchqueue/messages?echo=true").expect(t, 200)
			body := r.JSON(t)
			if ms, ok := body["messages"].([]any); !ok || len(ms) != 0 {
				t.Fatalf("messages %v, want []", body["messages"])
			}
			if ls, ok := body["links"].([]any); !ok || len(ls) != 0 {
				t.Fatalf("links %v, want []", body["links"])
			}
			if qs := c.get("/v2/queues").expect(t, 200).JSON(t)["queues"].([]any); len(qs) != 0 {
				t.Fatalf("listing created a queue: %v", qs)
			}
		})

		t.Run("listed message shape", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg("b", "ttl", 120))
			got := mcList(c, "q", "echo=true")
			if len(got) != 1 {
				t.Fatalf("listed %d", len(got))
			}
			m := got[0]
			if k := keys(m); !reflect.DeepEqual(k, []string{"age", "body", "href", "id", "ttl"}) {
				t.Fatalf("keys %v", k)
			}
			if m["id"] != ids[0] || m["href"] != mcMsgHref("q", ids[0]) || num(m["ttl"]) != 120 || m["body"] != "b" {
				t.Fatalf("message %v", m)
			}
		})
	})
}

func TestMessagesGetByIDs(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("two existing", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2), msg(3))
			r := c.get("/v2/queues/q/messages?ids="+ids[0]+","+ids[2]).expect(t, 200)
			body := r.JSON(t)
			if got := keys(body); !reflect.DeepEqual(got, []string{"messages"}) {
				t.Fatalf("keys %v, want only messages (no links)", got)
			}
			got := mcMessages(t, r)
			mcEqualIDs(t, "by ids", mcSorted(mcIDs(got)), mcSorted([]string{ids[0], ids[2]}))
			for _, m := range got {
				if k := keys(m); !reflect.DeepEqual(k, []string{"age", "body", "href", "id", "ttl"}) {
					t.Fatalf("keys %v", k)
				}
			}
		})

		t.Run("repeated ids form", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2), msg(3))
			got := mcMessages(t, c.get("/v2/queues/q/messages?ids="+ids[0]+"&ids="+ids[1]).expect(t, 200))
			mcEqualIDs(t, "repeated", mcSorted(mcIDs(got)), mcSorted(ids[:2]))
			got = mcMessages(t, c.get("/v2/queues/q/messages?ids="+ids[0]+","+ids[1]+"&ids="+ids[2]).expect(t, 200))
			mcEqualIDs(t, "mixed", mcSorted(mcIDs(got)), mcSorted(ids))
		})

		t.Run("own messages without echo", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			got := mcMessages(t, c.get("/v2/queues/q/messages?ids="+ids[0]).expect(t, 200))
			mcEqualIDs(t, "own", mcIDs(got), ids)
		})

		t.Run("some unknown", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			got := mcMessages(t, c.get("/v2/queues/q/messages?ids="+mcUnknownID()+","+ids[0]+",-1").expect(t, 200))
			mcEqualIDs(t, "found", mcIDs(got), ids)
		})

		t.Run("20 ids", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			list := []string{ids[0]}
			for len(list) < 20 {
				list = append(list, mcUnknownID())
			}
			got := mcMessages(t, c.get("/v2/queues/q/messages?ids="+strings.Join(list, ",")).expect(t, 200))
			mcEqualIDs(t, "found", mcIDs(got), ids)
		})

		t.Run("21 ids", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			list := []string{ids[0]}
			for len(list) < 21 {
				list = append(list, mcUnknownID())
			}
			c.get("/v2/queues/q/messages?ids="+strings.Join(list, ",")).expectError(t, 400, "Limit must be at least 1 and may not be greater than 20.")
		})

		notFound := []struct{ name, queue, ids string }{
			{"minus one", "q", "-1"},
			{"unknown", "q", mcUnknownID()},
			{"unknown pair", "q", mcUnknownID() + "," + mcUnknownID()},
			{"missing queue", "nosuchqueue", mcUnknownID()},
		}
		for _, tc := range notFound {
			t.Run("not found/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				c.postMessages("q", msg(1))
				c.get("/v2/queues/"+tc.queue+"/messages?ids="+tc.ids).expectError(t, 404, "No messages with IDs: [")
			})
		}

		t.Run("not found/other queue", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			c.postMessages("q2", msg(2))
			c.get("/v2/queues/q2/messages?ids="+ids[0]).expectError(t, 404, "No messages with IDs: [")
		})

		t.Run("not found/description", func(t *testing.T) {
			c := newClient(t, n)
			c.get("/v2/queues/q/messages?ids=-1").expectError(t, 404, "No messages with IDs: ['-1'] found in the queue q for project "+c.Project+".")
		})
	})
}

func TestMessagesBulkDelete(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("unknown ids", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			c.del("/v2/queues/q/messages?ids="+mcUnknownID()+",-1,abc").expect(t, 204)
			mcEqualIDs(t, "remaining", mcIDs(mcList(c, "q", "echo=true")), ids)
		})

		t.Run("missing queue", func(t *testing.T) {
			c := newClient(t, n)
			c.del("/v2/queues/nosuchqueue/messages?ids="+mcUnknownID()).expect(t, 204)
		})

		invalid := []struct{ name, query, desc string }{
			{"neither", "", `The request should have either "ids" or "pop" parameter in the request, to be able to delete.`},
			{"unknown param only", "?foo=bar", `The request should have either "ids" or "pop" parameter in the request, to be able to delete.`},
			{"both", "?pop=5&ids=" + mcUnknownID(), "pop and id params cannot be present together in the delete request."},
			{"pop 0", "?pop=0", "Pop value must be at least 1 and may not be greater than 20."},
			{"pop 21", "?pop=21", "Pop value must be at least 1 and may not be greater than 20."},
			{"pop -1", "?pop=-1", "Pop value must be at least 1 and may not be greater than 20."},
			{"pop space", "?pop=%20", "pop"},
			{"pop abc", "?pop=abc", "pop"},
			{"pop 5.0", "?pop=5.0", "pop"},
		}
		for _, tc := range invalid {
			t.Run("invalid/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				ids := c.postMessages("q", msg(1))
				c.del("/v2/queues/q/messages"+tc.query).expectError(t, 400, tc.desc)
				mcEqualIDs(t, "remaining", mcIDs(mcList(c, "q", "echo=true")), ids)
			})
		}

		t.Run("invalid/21 ids", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			list := []string{ids[0]}
			for len(list) < 21 {
				list = append(list, mcUnknownID())
			}
			c.del("/v2/queues/q/messages?ids="+strings.Join(list, ",")).expectError(t, 400, "ids parameter should have at least 1 and not greater than 20 values.")
			mcEqualIDs(t, "remaining", mcIDs(mcList(c, "q", "echo=true")), ids)
		})

		t.Run("blank pop is absent", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			c.del("/v2/queues/q/messages?pop=&ids="+ids[0]).expect(t, 204)
			mcEqualIDs(t, "remaining", mcIDs(mcList(c, "q", "echo=true")), ids[1:])
			c.del("/v2/queues/q/messages?pop=").expectError(t, 400, `The request should have either "ids" or "pop" parameter`)
		})

		t.Run("blank ids are absent", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			popped := mcMessages(t, c.del("/v2/queues/q/messages?ids=&pop=1").expect(t, 200))
			mcEqualIDs(t, "popped", mcIDs(popped), ids[:1])
			c.del("/v2/queues/q/messages?ids=").expectError(t, 400, `The request should have either "ids" or "pop" parameter`)
			mcEqualIDs(t, "remaining", mcIDs(mcList(c, "q", "echo=true")), ids[1:])
		})

		t.Run("comma form", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2), msg(3))
			c.del("/v2/queues/q/messages?ids="+ids[0]+","+ids[2]).expect(t, 204)
			mcEqualIDs(t, "remaining", mcIDs(mcList(c, "q", "echo=true")), ids[1:2])
		})

		t.Run("repeated form", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2), msg(3))
			c.del("/v2/queues/q/messages?ids="+ids[0]+"&ids="+ids[1]).expect(t, 204)
			mcEqualIDs(t, "remaining", mcIDs(mcList(c, "q", "echo=true")), ids[2:])
			c.get(mcMsgHref("q", ids[0])).expect(t, 404)
			c.get(mcMsgHref("q", ids[1])).expect(t, 404)
		})

		t.Run("deletes claimed messages", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2), msg(3))
			cid, claimed := mcClaim(c, "q", "limit=2", map[string]any{})
			mcEqualIDs(t, "claimed", mcIDs(claimed), ids[:2])
			c.del("/v2/queues/q/messages?ids="+ids[0]+","+ids[1]).expect(t, 204)
			c.get(mcMsgHref("q", ids[0])).expect(t, 404)
			c.get(mcMsgHref("q", ids[1])).expect(t, 404)
			mcExpectStats(c, "q", 1, 0, 1)
			c.get("/v2/queues/q/claims/"+cid).expect(t, 404)
		})

		t.Run("idempotent", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1))
			c.del("/v2/queues/q/messages?ids="+ids[0]).expect(t, 204)
			c.del("/v2/queues/q/messages?ids="+ids[0]).expect(t, 204)
			mcExpectStats(c, "q", 0, 0, 0)
		})
	})
}

func TestMessagesPop(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("raw format", func(t *testing.T) {
			c := newClient(t, n)
			var msgs []map[string]any
			for i := 0; i < 5; i++ {
				msgs = append(msgs, msg(i, "ttl", 300))
			}
			ids := c.postMessages("q", msgs...)
			r := c.del("/v2/queues/q/messages?pop=2").expect(t, 200)
			if got := keys(r.JSON(t)); !reflect.DeepEqual(got, []string{"messages"}) {
				t.Fatalf("keys %v", got)
			}
			popped := mcMessages(t, r)
			mcEqualIDs(t, "popped (queue order)", mcIDs(popped), ids[:2])
			for i, m := range popped {
				if k := keys(m); !reflect.DeepEqual(k, []string{"age", "body", "claim_count", "claim_id", "id", "ttl"}) {
					t.Fatalf("popped keys %v, want raw format without href", k)
				}
				if v, ok := m["claim_id"]; !ok || v != nil {
					t.Fatalf("claim_id %v, want null", m["claim_id"])
				}
				if num(m["claim_count"]) != 0 || num(m["ttl"]) != 300 || num(m["age"]) != 0 || num(m["body"]) != int64(i) {
					t.Fatalf("popped message %v", m)
				}
			}
			mcEqualIDs(t, "remaining", mcIDs(mcList(c, "q", "echo=true")), ids[2:])
			for _, id := range ids[:2] {
				c.get(mcMsgHref("q", id)).expect(t, 404)
			}
			mcExpectStats(c, "q", 3, 0, 3)
		})

		t.Run("more than available", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2))
			mcEqualIDs(t, "popped", mcIDs(mcMessages(t, c.del("/v2/queues/q/messages?pop=20").expect(t, 200))), ids)
			mcExpectStats(c, "q", 0, 0, 0)
		})

		t.Run("skips claimed", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2), msg(3))
			_, claimed := mcClaim(c, "q", "limit=1", nil)
			mcEqualIDs(t, "claimed", mcIDs(claimed), ids[:1])
			popped := mcMessages(t, c.del("/v2/queues/q/messages?pop=5").expect(t, 200))
			mcEqualIDs(t, "popped", mcIDs(popped), ids[1:])
			c.get(mcMsgHref("q", ids[0])).expect(t, 200)
			mcExpectStats(c, "q", 1, 1, 0)
			if got := mcMessages(t, c.del("/v2/queues/q/messages?pop=5").expect(t, 200)); len(got) != 0 {
				t.Fatalf("popped claimed messages %v", mcIDs(got))
			}
		})

		for _, q := range []string{"q", "nosuchqueue"} {
			t.Run("empty/"+q, func(t *testing.T) {
				c := newClient(t, n)
				if q == "q" {
					c.put("/v2/queues/q", nil).expect(t, 201)
				}
				r := c.del("/v2/queues/"+q+"/messages?pop=3").expect(t, 200)
				body := r.JSON(t)
				if ms, ok := body["messages"].([]any); !ok || len(ms) != 0 || len(body) != 1 {
					t.Fatalf("body %s, want {\"messages\": []}", r.Body)
				}
			})
		}
	})
}

func TestMessagesExpiry(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("alive until ttl", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1, "ttl", 60))
			n.Clock.Advance(59 * time.Second)
			c.get(mcMsgHref("q", ids[0])).expect(t, 200)
			mcEqualIDs(t, "listed", mcIDs(mcList(c, "q", "echo=true")), ids)
			mcExpectStats(c, "q", 1, 0, 1)
		})

		t.Run("expired message is gone", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg("short", "ttl", 60), msg("long", "ttl", 3600))
			n.Clock.Advance(61 * time.Second)
			mcEqualIDs(t, "listed", mcIDs(mcList(c, "q", "echo=true")), ids[1:])
			mcEqualIDs(t, "listed with claimed", mcIDs(mcList(c, "q", "echo=true&include_claimed=true")), ids[1:])
			c.get(mcMsgHref("q", ids[0])).expect(t, 404)
			c.get("/v2/queues/q/messages?ids="+ids[0]).expect(t, 404)
			mcEqualIDs(t, "by ids", mcIDs(mcMessages(t, c.get("/v2/queues/q/messages?ids="+ids[0]+","+ids[1]).expect(t, 200))), ids[1:])
			mcExpectStats(c, "q", 1, 0, 1)
			cid, claimed := mcClaim(c, "q", "", nil)
			mcEqualIDs(t, "claimed", mcIDs(claimed), ids[1:])
			c.del("/v2/queues/q/claims/"+cid).expect(t, 204)
			popped := mcMessages(t, c.del("/v2/queues/q/messages?pop=5").expect(t, 200))
			mcEqualIDs(t, "popped", mcIDs(popped), ids[1:])
		})

		t.Run("not claimable", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1, "ttl", 60))
			n.Clock.Advance(61 * time.Second)
			r := c.post("/v2/queues/q/claims", map[string]any{}).expect(t, 204)
			if len(r.Body) != 0 {
				t.Fatalf("204 with body %q", r.Body)
			}
		})

		t.Run("not poppable", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1, "ttl", 60))
			n.Clock.Advance(61 * time.Second)
			if got := mcMessages(t, c.del("/v2/queues/q/messages?pop=5").expect(t, 200)); len(got) != 0 {
				t.Fatalf("popped expired messages %v", got)
			}
			mcExpectStats(c, "q", 0, 0, 0)
		})

		t.Run("queue default ttl expires", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"_default_message_ttl": 120}).expect(t, 201)
			ids := c.postMessages("q", msg(1))
			n.Clock.Advance(119 * time.Second)
			c.get(mcMsgHref("q", ids[0])).expect(t, 200)
			n.Clock.Advance(2 * time.Second)
			c.get(mcMsgHref("q", ids[0])).expect(t, 404)
		})
	})
}

func TestMessagesDelayed(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		delayQueue := func(c *client) {
			c.t.Helper()
			c.put("/v2/queues/dq", map[string]any{"_default_message_delay": 30}).expect(c.t, 201)
		}

		t.Run("queue delay", func(t *testing.T) {
			c := newClient(t, n)
			delayQueue(c)
			ids := c.postMessages("dq", msg("later"))
			if got := mcList(c, "dq", "echo=true"); len(got) != 0 {
				t.Fatalf("delayed message listed: %v", mcIDs(got))
			}
			if got := mcList(c.as(newID()), "dq", "include_claimed=true"); len(got) != 0 {
				t.Fatalf("delayed message listed to other client: %v", mcIDs(got))
			}
			if r := c.post("/v2/queues/dq/claims", map[string]any{}); r.Status != 204 {
				t.Fatalf("claimed a delayed message: %d %s", r.Status, r.Body)
			}
			mcEqualIDs(t, "include_delayed", mcIDs(mcList(c, "dq", "echo=true&include_delayed=true")), ids)
			m := c.get(mcMsgHref("dq", ids[0])).expect(t, 200).JSON(t)
			if m["body"] != "later" || m["href"] != mcMsgHref("dq", ids[0]) {
				t.Fatalf("GET delayed message %v", m)
			}
			mcEqualIDs(t, "by ids", mcIDs(mcMessages(t, c.get("/v2/queues/dq/messages?ids="+ids[0]).expect(t, 200))), ids)
			mcExpectStats(c, "dq", 1, 0, 1)

			n.Clock.Advance(29 * time.Second)
			if got := mcList(c, "dq", "echo=true"); len(got) != 0 {
				t.Fatalf("delayed message listed after 29 s: %v", mcIDs(got))
			}
			n.Clock.Advance(2 * time.Second)
			mcEqualIDs(t, "after delay", mcIDs(mcList(c, "dq", "echo=true")), ids)
			_, claimed := mcClaim(c, "dq", "", nil)
			mcEqualIDs(t, "claimed after delay", mcIDs(claimed), ids)
		})

		t.Run("next link on delay queue", func(t *testing.T) {
			c := newClient(t, n)
			delayQueue(c)
			c.postMessages("dq", msg(1))
			r := c.get("/v2/queues/dq/messages?echo=true&include_delayed=true").expect(t, 200)
			href := r.JSON(t)["links"].([]any)[0].(map[string]any)["href"].(string)
			if !regexp.MustCompile(`^/v2/queues/dq/messages\?echo=true&include_delayed=true&marker=[0-9]+$`).MatchString(href) {
				t.Fatalf("next href %q", href)
			}
			n.Clock.Advance(31 * time.Second)
			r = c.get("/v2/queues/dq/messages?echo=true").expect(t, 200)
			href = r.JSON(t)["links"].([]any)[0].(map[string]any)["href"].(string)
			if !regexp.MustCompile(`^/v2/queues/dq/messages\?echo=true&marker=[0-9]+$`).MatchString(href) {
				t.Fatalf("next href %q (include_delayed must not be forced on a delay queue)", href)
			}
		})

		t.Run("per-message delay", func(t *testing.T) {
			c := newClient(t, n)
			delayQueue(c)
			ids := c.postMessages("dq", msg("now", "delay", 0), msg("later", "delay", 60), msg("default"))
			mcEqualIDs(t, "at once", mcIDs(mcList(c, "dq", "echo=true")), ids[:1])
			n.Clock.Advance(31 * time.Second)
			mcEqualIDs(t, "after 31 s", mcIDs(mcList(c, "dq", "echo=true")), []string{ids[0], ids[2]})
			n.Clock.Advance(30 * time.Second)
			mcEqualIDs(t, "after 61 s", mcIDs(mcList(c, "dq", "echo=true")), ids)
		})

		badDelay := []struct{ name, delay, desc string }{
			{"901", `901`, "The Delay for a message may not exceed 900 seconds"},
			{"-1", `-1`, "The Delay for a message may not exceed 900 seconds"},
			{"string", `"30"`, `The value of the "delay" field must be a int.`},
			{"float", `1.5`, `The value of the "delay" field must be a int.`},
		}
		for _, tc := range badDelay {
			t.Run("bad delay/"+tc.name, func(t *testing.T) {
				c := newClient(t, n)
				delayQueue(c)
				mcPostRaw(c, "dq", `{"messages":[{"body":1,"delay":`+tc.delay+`}]}`).expectError(t, 400, tc.desc)
				if got := mcList(c, "dq", "echo=true&include_delayed=true"); len(got) != 0 {
					t.Fatalf("rejected post stored %v", mcIDs(got))
				}
			})
		}

		t.Run("max delay", func(t *testing.T) {
			c := newClient(t, n)
			delayQueue(c)
			ids := c.postMessages("dq", msg(1, "delay", 900))
			n.Clock.Advance(899 * time.Second)
			if got := mcList(c, "dq", "echo=true"); len(got) != 0 {
				t.Fatalf("listed before 900 s: %v", mcIDs(got))
			}
			n.Clock.Advance(2 * time.Second)
			mcEqualIDs(t, "after 900 s", mcIDs(mcList(c, "dq", "echo=true")), ids)
		})

		t.Run("pop ignores delay", func(t *testing.T) {
			c := newClient(t, n)
			delayQueue(c)
			ids := c.postMessages("dq", msg(1))
			mcEqualIDs(t, "popped", mcIDs(mcMessages(t, c.del("/v2/queues/dq/messages?pop=1").expect(t, 200))), ids)
		})

		t.Run("queue without delay", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1, "delay", 30))
			mcEqualIDs(t, "listed at once", mcIDs(mcList(c, "q", "echo=true")), ids)
			_, claimed := mcClaim(c, "q", "", nil)
			mcEqualIDs(t, "claimable at once", mcIDs(claimed), ids)
		})

		t.Run("queue without delay ignores delay range", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1, "delay", 901))
			mcEqualIDs(t, "listed at once", mcIDs(mcList(c, "q", "echo=true")), ids)
		})

		t.Run("explicit zero queue delay", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"_default_message_delay": 0}).expect(t, 201)
			ids := c.postMessages("q", msg(1, "delay", 30))
			mcEqualIDs(t, "listed at once", mcIDs(mcList(c, "q", "echo=true")), ids)
		})
	})
}

func TestMessagesTenantIsolation(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		// setup gives project A three messages in queue "shared", the first
		// claimed, and returns A, a client of project B with the same
		// Client-ID, the message ids and the claim id.
		setup := func(t *testing.T) (a, b *client, ids []string, cid string) {
			a = newClient(t, n)
			b = a.inProject("other-" + newID()[:12])
			ids = a.postMessages("shared", msg(1), msg(2), msg(3))
			cid, claimed := mcClaim(a, "shared", "limit=1", map[string]any{"ttl": 120})
			mcEqualIDs(t, "claimed", mcIDs(claimed), ids[:1])
			return a, b, ids, cid
		}
		// unchanged checks that A's queue still holds all three messages with
		// the first one claimed by cid.
		unchanged := func(t *testing.T, a *client, ids []string, cid string) {
			t.Helper()
			mcEqualIDs(t, "A's messages", mcIDs(mcList(a, "shared", "echo=true&include_claimed=true")), ids)
			mcExpectStats(a, "shared", 3, 1, 2)
			m := a.get(mcMsgHref("shared", ids[0])).expect(t, 200).JSON(t)
			if m["href"] != mcMsgHref("shared", ids[0])+"?claim_id="+cid {
				t.Fatalf("A's claimed message href %v", m["href"])
			}
		}

		t.Run("list", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			for _, q := range []string{"echo=true", "echo=true&include_claimed=true", ""} {
				if got := mcList(b, "shared", q); len(got) != 0 {
					t.Fatalf("B lists A's messages (%s): %v", q, mcIDs(got))
				}
			}
			if qs := b.get("/v2/queues").expect(t, 200).JSON(t)["queues"].([]any); len(qs) != 0 {
				t.Fatalf("B lists A's queues: %v", qs)
			}
			mcExpectStats(b, "shared", 0, 0, 0)
			unchanged(t, a, ids, cid)
		})

		t.Run("same-named queue of B", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			bids := b.postMessages("shared", msg("b"))
			mcEqualIDs(t, "B's messages", mcIDs(mcList(b, "shared", "echo=true&include_claimed=true")), bids)
			unchanged(t, a, ids, cid)
			a.get(mcMsgHref("shared", bids[0])).expect(t, 404)
		})

		t.Run("get", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			for _, id := range ids {
				b.get(mcMsgHref("shared", id)).expectError(t, 404, "does not exist")
			}
			b.get("/v2/queues/shared/messages?ids="+strings.Join(ids, ",")).expectError(t, 404, "No messages with IDs")
			unchanged(t, a, ids, cid)
		})

		t.Run("pop", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			if got := mcMessages(t, b.del("/v2/queues/shared/messages?pop=20").expect(t, 200)); len(got) != 0 {
				t.Fatalf("B popped A's messages: %v", mcIDs(got))
			}
			unchanged(t, a, ids, cid)
		})

		t.Run("delete", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			b.del(mcMsgHref("shared", ids[1])).expect(t, 204)
			b.del(mcMsgHref("shared", ids[0])+"?claim_id="+cid).expect(t, 204)
			unchanged(t, a, ids, cid)
		})

		t.Run("bulk delete", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			b.del("/v2/queues/shared/messages?ids="+strings.Join(ids, ",")).expect(t, 204)
			b.del("/v2/queues/shared/messages?ids="+ids[0]+"&ids="+ids[1]).expect(t, 204)
			unchanged(t, a, ids, cid)
		})

		t.Run("queue delete and purge", func(t *testing.T) {
			a, b, ids, cid := setup(t)
			b.del("/v2/queues/shared").expect(t, 204)
			b.post("/v2/queues/shared/purge", map[string]any{"resource_types": []any{"messages"}}).expect(t, 204)
			unchanged(t, a, ids, cid)
		})

		t.Run("project id is exact", func(t *testing.T) {
			a, _, ids, cid := setup(t)
			for _, p := range []string{strings.ToUpper(a.Project), a.Project + "x", a.Project[:len(a.Project)-1]} {
				b := a.inProject(p)
				if got := mcList(b, "shared", "echo=true&include_claimed=true"); len(got) != 0 {
					t.Fatalf("project %q lists A's messages", p)
				}
				b.get(mcMsgHref("shared", ids[1])).expect(t, 404)
			}
			unchanged(t, a, ids, cid)
		})

	})
}

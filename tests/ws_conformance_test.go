package tests

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/heraldmq/herald/cmd/herald/server"
)

// The WebSocket conformance suite: every action of contract §4.5 in both
// frame encodings, with the success shapes and errors the contract gives,
// the request echo of §4.2, answer order, tenant isolation, notification
// encodings (§4.7) and checklist items 66-71. A real node, a real gorilla
// client.

// wcEncodings are the frame encodings every action is checked in.
var wcEncodings = []struct {
	name   string
	binary bool
}{{"json", false}, {"msgpack", true}}

// wcEach runs fn once per encoding, each against its own project on n.
func wcEach(t *testing.T, n *node, fn func(t *testing.T, w *wsClient, c *client, binary bool)) {
	for _, e := range wcEncodings {
		t.Run(e.name, func(t *testing.T) {
			c := newClient(t, n)
			fn(t, wsDial(t, n, c.Project), c, e.binary)
		})
	}
}

// send writes req as one frame: JSON text, or MessagePack binary.
func (w *wsClient) send(binary bool, req any) {
	w.t.Helper()
	mt, data := websocket.TextMessage, mustJSON(req)
	if binary {
		b, err := msgpack.Marshal(req)
		if err != nil {
			w.t.Fatal(err)
		}
		mt, data = websocket.BinaryMessage, b
	}
	if err := w.c.WriteMessage(mt, data); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// next reads the next frame within 10 s: whether it is binary, and its
// value.
func (w *wsClient) next() (bool, map[string]any) {
	w.t.Helper()
	w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	mt, data, err := w.c.ReadMessage()
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	return mt == websocket.BinaryMessage, wcDecode(w.t, mt, data)
}

// answer reads the next frame, which must be an answer in the encoding of
// the request it answers (contract §4.1).
func (w *wsClient) answer(binary bool) map[string]any {
	w.t.Helper()
	got, m := w.next()
	if _, ok := m["request"]; !ok {
		w.t.Fatalf("frame is not an answer: %v", m)
	}
	if got != binary {
		w.t.Fatalf("answer in a binary frame: %v, want %v: %v", got, binary, m)
	}
	return m
}

// wcDecode decodes a frame as the tests compare values: numbers float64.
func wcDecode(t testing.TB, mt int, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if mt == websocket.BinaryMessage {
		if err := msgpack.Unmarshal(data, &m); err != nil {
			t.Fatalf("frame is not a MessagePack map: %v: % x", err, data)
		}
		return normalize(m).(map[string]any)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("frame is not a JSON object: %v: %q", err, data)
	}
	return m
}

// call sends action with body (none when nil) and the client's headers,
// and returns the answer.
func (w *wsClient) call(binary bool, action string, body map[string]any) map[string]any {
	w.t.Helper()
	req := map[string]any{"action": action, "headers": w.headers()}
	if body != nil {
		req["body"] = body
	}
	w.send(binary, req)
	return w.answer(binary)
}

// wcExpect checks an answer's status and exact body.
func wcExpect(t testing.TB, m map[string]any, status int, body any) {
	t.Helper()
	expectStatus(t, m, status)
	if !jsonEqual(m["body"], body) {
		t.Fatalf("body %s, want %s", mustJSON(m["body"]), mustJSON(body))
	}
}

// wcBody checks an answer's status and returns its body as an object.
func wcBody(t testing.TB, m map[string]any, status int) map[string]any {
	t.Helper()
	expectStatus(t, m, status)
	b, ok := m["body"].(map[string]any)
	if !ok {
		t.Fatalf("body %v is not an object", m["body"])
	}
	return b
}

// wcExpectException checks a handler-level error: body exactly
// {"exception", "error"}, the exception containing substr and error equal
// to wantError (nil or a string).
func wcExpectException(t testing.TB, m map[string]any, status int, substr string, wantError any) {
	t.Helper()
	b := wcBody(t, m, status)
	if got := keys(b); !jsonEqual(got, []string{"error", "exception"}) {
		t.Fatalf("error body keys %v, want [error exception]: %v", got, b)
	}
	if e, _ := b["exception"].(string); !strings.Contains(e, substr) {
		t.Fatalf("exception %q does not contain %q", b["exception"], substr)
	}
	if b["error"] != wantError {
		t.Fatalf("error %#v, want %#v", b["error"], wantError)
	}
}

// wcMessage checks a WebSocket message object: exactly id, claim_id, ttl,
// age and body (contract §4.6).
func wcMessage(t testing.TB, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok || !jsonEqual(keys(m), []string{"age", "body", "claim_id", "id", "ttl"}) {
		t.Fatalf("message %v is not {id, claim_id, ttl, age, body}", v)
	}
	return m
}

// wcMessages checks a list of message objects and returns their ids.
func wcMessages(t testing.TB, v any) []string {
	t.Helper()
	arr, ok := v.([]any)
	if !ok {
		t.Fatalf("messages %v is not a list", v)
	}
	ids := make([]string, len(arr))
	for i, e := range arr {
		ids[i] = wcMessage(t, e)["id"].(string)
	}
	return ids
}

// wcPost posts bodies over the socket and returns the new ids.
func wcPost(t testing.TB, w *wsClient, binary bool, queue string, bodies ...any) []string {
	t.Helper()
	msgs := make([]any, len(bodies))
	for i, b := range bodies {
		msgs[i] = map[string]any{"body": b, "ttl": 300}
	}
	b := wcBody(t, w.call(binary, "message_post", map[string]any{"queue_name": queue, "messages": msgs}), 201)
	ids, _ := b["message_ids"].([]any)
	if !jsonEqual(keys(b), []string{"message_ids"}) || len(ids) != len(bodies) {
		t.Fatalf("message_post %v", b)
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.(string)
	}
	return out
}

// wcOnQueue returns a function sending action about queue with the
// further body fields it is given.
func wcOnQueue(w *wsClient, binary bool, action, queue string) func(body map[string]any) map[string]any {
	return func(body map[string]any) map[string]any {
		w.t.Helper()
		body["queue_name"] = queue
		return w.call(binary, action, body)
	}
}

// wcError is one request the server must refuse.
type wcError struct {
	name   string
	action string
	body   map[string]any
	status int
	// schema: a protocol-level {"error": "Schema validation failed."};
	// else a handler-level exception containing exception.
	schema    bool
	exception string
}

// wcRefuses sends each case and checks the refusal.
func wcRefuses(t *testing.T, w *wsClient, binary bool, cases []wcError) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := w.call(binary, tc.action, tc.body)
			if tc.schema {
				wcExpect(t, m, 400, map[string]any{"error": "Schema validation failed."})
				return
			}
			wcExpectException(t, m, tc.status, tc.exception, nil)
		})
	}
}

func TestWSQueueList(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		wcExpect(t, w.call(binary, "queue_list", nil), 200, map[string]any{"queues": []any{}})
		for _, q := range []string{"b", "a", "c"} {
			expectStatus(t, w.call(binary, "queue_create", map[string]any{"queue_name": q}), 201)
		}
		c.put("/v2/queues/d", map[string]any{"k": "v", "_default_message_ttl": 300}).expect(t, 201)
		names := func(qs ...string) map[string]any {
			items := make([]any, len(qs))
			for i, q := range qs {
				items[i] = map[string]any{"name": q}
			}
			return map[string]any{"queues": items}
		}
		// Items have only a name: no href, links or count.
		wcExpect(t, w.call(binary, "queue_list", map[string]any{}), 200, names("a", "b", "c", "d"))
		wcExpect(t, w.call(binary, "queue_list", map[string]any{"limit": 2}), 200, names("a", "b"))
		wcExpect(t, w.call(binary, "queue_list", map[string]any{"marker": "b"}), 200, names("c", "d"))
		wcExpect(t, w.call(binary, "queue_list", map[string]any{"marker": "c", "detailed": true}), 200,
			map[string]any{"queues": []any{map[string]any{"name": "d", "metadata": map[string]any{"k": "v", "_default_message_ttl": 300}}}})
		// Detailed metadata is the stored one: no reserved defaults.
		wcExpect(t, w.call(binary, "queue_list", map[string]any{"limit": 1, "detailed": true}), 200,
			map[string]any{"queues": []any{map[string]any{"name": "a", "metadata": map[string]any{}}}})
		wcRefuses(t, w, binary, []wcError{
			{name: "limit 0", action: "queue_list", body: map[string]any{"limit": 0}, status: 400, exception: "Limit must be at least 1"},
			{name: "limit 21", action: "queue_list", body: map[string]any{"limit": 21}, status: 400, exception: "Limit must be at least 1"},
			{name: "limit string", action: "queue_list", body: map[string]any{"limit": "5"}, schema: true},
			{name: "limit float", action: "queue_list", body: map[string]any{"limit": 5.5}, schema: true},
			{name: "detailed string", action: "queue_list", body: map[string]any{"detailed": "true"}, schema: true},
			{name: "marker number", action: "queue_list", body: map[string]any{"marker": 5}, schema: true},
		})
	})
}

func TestWSQueueCreateGetDelete(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		meta := map[string]any{"k": "v", "_default_message_ttl": 300}
		wcExpect(t, w.call(binary, "queue_create", map[string]any{"queue_name": "q", "metadata": meta}), 201, "Queue q created.")
		// An existing queue: 204, same sentence, metadata ignored.
		wcExpect(t, w.call(binary, "queue_create", map[string]any{"queue_name": "q", "metadata": map[string]any{"k": "new"}}), 204, "Queue q created.")
		// queue_get: the stored metadata, without reserved defaults.
		wcExpect(t, w.call(binary, "queue_get", map[string]any{"queue_name": "q"}), 200, meta)
		wcExpect(t, w.call(binary, "queue_get", map[string]any{"queue_name": "never-created"}), 200, map[string]any{})
		wcExpect(t, w.call(binary, "queue_create", map[string]any{"queue_name": "bare"}), 201, "Queue bare created.")
		wcExpect(t, w.call(binary, "queue_get", map[string]any{"queue_name": "bare"}), 200, map[string]any{})
		// REST sees what WS made, with its defaults.
		if got := c.get("/v2/queues/q").expect(t, 200).JSON(t); got["k"] != "v" || got["_default_message_ttl"] != 300.0 || got["_max_messages_post_size"] != 262144.0 {
			t.Fatalf("REST metadata of a WS queue %v", got)
		}
		long := strings.Repeat("x", 64)
		wcExpect(t, w.call(binary, "queue_create", map[string]any{"queue_name": long}), 201, "Queue "+long+" created.")
		wcExpect(t, w.call(binary, "queue_create", map[string]any{"queue_name": "Service.test_queue"}), 201, "Queue Service.test_queue created.")

		wcExpect(t, w.call(binary, "queue_delete", map[string]any{"queue_name": "q"}), 204, "Queue q removed.")
		wcExpect(t, w.call(binary, "queue_delete", map[string]any{"queue_name": "q"}), 204, "Queue q removed.")
		wcExpect(t, w.call(binary, "queue_get", map[string]any{"queue_name": "q"}), 200, map[string]any{})
		for _, q := range wcBody(t, w.call(binary, "queue_list", nil), 200)["queues"].([]any) {
			if q.(map[string]any)["name"] == "q" {
				t.Fatal("a deleted queue is still listed")
			}
		}

		wcRefuses(t, w, binary, []wcError{
			{name: "bad name", action: "queue_create", body: map[string]any{"queue_name": "Nice-Bo@t"}, status: 400, exception: "queue name"},
			{name: "65 chars", action: "queue_create", body: map[string]any{"queue_name": long + "x"}, status: 400, exception: "queue name"},
			{name: "non-ASCII", action: "queue_create", body: map[string]any{"queue_name": "qü"}, status: 400, exception: "queue name"},
			{name: "ttl 59", action: "queue_create", body: map[string]any{"queue_name": "m1", "metadata": map[string]any{"_default_message_ttl": 59}}, status: 400, exception: "default TTL for messages"},
			{name: "delay 901", action: "queue_create", body: map[string]any{"queue_name": "m2", "metadata": map[string]any{"_default_message_delay": 901}}, status: 400, exception: "default message delay"},
			{name: "claim count string", action: "queue_create", body: map[string]any{"queue_name": "m3", "metadata": map[string]any{"_max_claim_count": "123"}}, status: 400, exception: "max claim count must be an integer"},
			{name: "metadata too large", action: "queue_create", body: map[string]any{"queue_name": "m4", "metadata": map[string]any{"k": strings.Repeat("x", 65536)}}, status: 400, exception: "too large"},
			{name: "metadata not an object", action: "queue_create", body: map[string]any{"queue_name": "m5", "metadata": []any{}}, schema: true},
			{name: "name not a string", action: "queue_create", body: map[string]any{"queue_name": 5}, schema: true},
			{name: "no name", action: "queue_create", body: map[string]any{}, schema: true},
			{name: "no body", action: "queue_create", schema: true},
			{name: "get without name", action: "queue_get", body: map[string]any{}, schema: true},
			{name: "delete name not a string", action: "queue_delete", body: map[string]any{"queue_name": []any{}}, schema: true},
		})
		// Refused creations left nothing behind.
		for _, q := range []string{"m1", "m2", "m3", "m4"} {
			wcExpect(t, w.call(binary, "queue_get_stats", map[string]any{"queue_name": q}), 404,
				map[string]any{"messages": map[string]any{"claimed": 0, "free": 0, "total": 0}})
		}
	})
}

var wcCreated = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

func TestWSQueueStats(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		zero := map[string]any{"messages": map[string]any{"claimed": 0, "free": 0, "total": 0}}
		// A missing queue: 404 with zeros (REST says 200).
		wcExpect(t, w.call(binary, "queue_get_stats", map[string]any{"queue_name": "missing"}), 404, zero)
		expectStatus(t, w.call(binary, "queue_create", map[string]any{"queue_name": "q"}), 201)
		// Empty: no oldest/newest.
		wcExpect(t, w.call(binary, "queue_get_stats", map[string]any{"queue_name": "q"}), 200, zero)
		ids := wcPost(t, w, binary, "q", 1, 2, 3)
		n.Clock.Advance(7 * time.Second)
		expectStatus(t, w.call(binary, "claim_create", map[string]any{"queue_name": "q", "limit": 1}), 201)
		st := wcBody(t, w.call(binary, "queue_get_stats", map[string]any{"queue_name": "q"}), 200)["messages"].(map[string]any)
		if st["claimed"] != 1.0 || st["free"] != 2.0 || st["total"] != 3.0 {
			t.Fatalf("stats %v", st)
		}
		for key, id := range map[string]string{"oldest": ids[0], "newest": ids[2]} {
			m, _ := st[key].(map[string]any)
			if !jsonEqual(keys(m), []string{"age", "created", "id"}) {
				t.Fatalf("%s %v is not {id, age, created} (no href)", key, st[key])
			}
			if m["id"] != id || m["age"].(float64) < 7 || !wcCreated.MatchString(m["created"].(string)) {
				t.Fatalf("%s %v, want id %s, age >= 7", key, m, id)
			}
		}
		wcRefuses(t, w, binary, []wcError{
			{name: "no name", action: "queue_get_stats", body: map[string]any{}, schema: true},
		})
	})
}

func TestWSQueuePurge(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		count := func() (float64, int) {
			t.Helper()
			st := wcBody(t, w.call(binary, "queue_get_stats", map[string]any{"queue_name": "q"}), 200)["messages"].(map[string]any)
			subs := wcBody(t, w.call(binary, "subscription_list", map[string]any{"queue_name": "q"}), 200)["subscriptions"].([]any)
			return st["total"].(float64), len(subs)
		}
		wcPost(t, w, binary, "q", 1, 2, 3)
		expectStatus(t, w.call(binary, "claim_create", map[string]any{"queue_name": "q", "limit": 1}), 201)
		expectStatus(t, w.call(binary, "subscription_create", map[string]any{"queue_name": "q", "subscriber": "http://fake:8080", "ttl": 600}), 201)
		// Unknown resource types are not validated, just ignored.
		wcExpect(t, w.call(binary, "queue_purge", map[string]any{"queue_name": "q", "resource_types": []any{"wrong_value"}}), 204, map[string]any{})
		if msgs, subs := count(); msgs != 3 || subs != 1 {
			t.Fatalf("after purging nothing: %v messages, %d subscriptions", msgs, subs)
		}
		// Purge pops: the claimed message survives (contract §3.9).
		wcExpect(t, w.call(binary, "queue_purge", map[string]any{"queue_name": "q", "resource_types": []any{"messages", "wrong_value"}}), 204, map[string]any{})
		if msgs, subs := count(); msgs != 1 || subs != 1 {
			t.Fatalf("after purging messages: %v messages, %d subscriptions", msgs, subs)
		}
		wcPost(t, w, binary, "q", 3)
		wcExpect(t, w.call(binary, "queue_purge", map[string]any{"queue_name": "q"}), 204, map[string]any{})
		if msgs, subs := count(); msgs != 1 || subs != 0 {
			t.Fatalf("after purging all: %v messages, %d subscriptions", msgs, subs)
		}
		wcRefuses(t, w, binary, []wcError{
			{name: "types not a list", action: "queue_purge", body: map[string]any{"queue_name": "q", "resource_types": "messages"}, schema: true},
		})
	})
}

func TestWSMessageList(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		ids := wcPost(t, w, binary, "q", map[string]any{"k": 1}, "two", 3)
		// The poster's own messages are hidden without echo.
		if got := wcList(t, w, binary, "q", map[string]any{}); len(got) != 0 {
			t.Fatalf("own messages without echo: %v", got)
		}
		if got := wcList(t, w, binary, "q", map[string]any{"echo": true}); !jsonEqual(got, ids) {
			t.Fatalf("echo listing %v, want %v", got, ids)
		}
		peer := wsDial(t, n, c.Project)
		if got := wcList(t, peer, binary, "q", map[string]any{}); !jsonEqual(got, ids) {
			t.Fatalf("another client's listing %v, want %v", got, ids)
		}
		n.Clock.Advance(5 * time.Second)
		first := wcBody(t, peer.call(binary, "message_list", map[string]any{"queue_name": "q", "limit": 1}), 200)["messages"].([]any)
		if m := wcMessage(t, first[0]); len(first) != 1 || m["id"] != ids[0] || m["ttl"] != 300.0 || m["age"].(float64) < 5 || !jsonEqual(m["body"], map[string]any{"k": 1}) {
			t.Fatalf("limit 1: %v", first)
		}
		if got := wcList(t, peer, binary, "q", map[string]any{"marker": "sfhlsfdjh2048"}); len(got) != 0 {
			t.Fatalf("garbage marker: %v", got)
		}
		// Claimed messages show only with include_claimed, and even then
		// claim_id is null here.
		expectStatus(t, peer.call(binary, "claim_create", map[string]any{"queue_name": "q", "limit": 1}), 201)
		if got := wcList(t, peer, binary, "q", map[string]any{}); !jsonEqual(got, ids[1:]) {
			t.Fatalf("listing with one claimed %v", got)
		}
		if got := wcList(t, peer, binary, "q", map[string]any{"include_claimed": true}); !jsonEqual(got, ids) {
			t.Fatalf("include_claimed %v", got)
		}
		// Delayed messages (posted over REST: WS posts have no delay) show
		// only with include_delayed.
		c.put("/v2/queues/slow", map[string]any{"_default_message_delay": 30}).expect(t, 201)
		delayed := c.postMessages("slow", msg("later"))
		if got := wcList(t, peer, binary, "slow", map[string]any{}); len(got) != 0 {
			t.Fatalf("delayed message listed: %v", got)
		}
		if got := wcList(t, peer, binary, "slow", map[string]any{"include_delayed": true}); !jsonEqual(got, delayed) {
			t.Fatalf("include_delayed %v, want %v", got, delayed)
		}
		bad := &wsClient{t: t, c: peer.c, project: c.Project, client: "not-a-uuid"}
		wcRefuses(t, peer, binary, []wcError{
			{name: "limit 21", action: "message_list", body: map[string]any{"queue_name": "q", "limit": 21}, status: 400, exception: "Limit must be at least 1"},
			{name: "limit 0", action: "message_list", body: map[string]any{"queue_name": "q", "limit": 0}, status: 400, exception: "Limit must be at least 1"},
			{name: "limit string", action: "message_list", body: map[string]any{"queue_name": "q", "limit": "1"}, schema: true},
			{name: "echo string", action: "message_list", body: map[string]any{"queue_name": "q", "echo": "true"}, schema: true},
			{name: "include_claimed null", action: "message_list", body: map[string]any{"queue_name": "q", "include_claimed": nil}, schema: true},
			{name: "no name", action: "message_list", body: map[string]any{}, schema: true},
		})
		// Client-ID must be a UUID here.
		wcExpectException(t, bad.call(binary, "message_list", map[string]any{"queue_name": "q"}), 400, "UUID", nil)
	})
}

// wcList lists queue's messages through w with the extra body fields and
// returns their ids. The body is only "messages": no links, no marker (WS
// listing has no paging), and every claim_id is null.
func wcList(t testing.TB, w *wsClient, binary bool, queue string, body map[string]any) []string {
	t.Helper()
	body["queue_name"] = queue
	b := wcBody(t, w.call(binary, "message_list", body), 200)
	if !jsonEqual(keys(b), []string{"messages"}) {
		t.Fatalf("message_list body %v", b)
	}
	ids := wcMessages(t, b["messages"])
	for _, m := range b["messages"].([]any) {
		if m.(map[string]any)["claim_id"] != nil {
			t.Fatalf("message_list shows a claim id: %v", m)
		}
	}
	return ids
}

func TestWSMessageGet(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		ids := wcPost(t, w, binary, "q", map[string]any{"k": []any{1, "v"}}, nil)
		n.Clock.Advance(3 * time.Second)
		// A single object under the plural key.
		b := wcBody(t, w.call(binary, "message_get", map[string]any{"queue_name": "q", "message_id": ids[0]}), 200)
		if !jsonEqual(keys(b), []string{"messages"}) {
			t.Fatalf("message_get body %v", b)
		}
		m := wcMessage(t, b["messages"])
		if m["id"] != ids[0] || m["claim_id"] != nil || m["ttl"] != 300.0 || m["age"].(float64) < 3 || !jsonEqual(m["body"], map[string]any{"k": []any{1, "v"}}) {
			t.Fatalf("message_get %v", m)
		}
		if m := wcMessage(t, wcBody(t, w.call(binary, "message_get", map[string]any{"queue_name": "q", "message_id": ids[1]}), 200)["messages"]); m["body"] != nil {
			t.Fatalf("null body %v", m)
		}
		// Claimed messages are still got, by anyone of the project.
		expectStatus(t, w.call(binary, "claim_create", map[string]any{"queue_name": "q"}), 201)
		wcMessage(t, wcBody(t, w.call(binary, "message_get", map[string]any{"queue_name": "q", "message_id": ids[0]}), 200)["messages"])

		expectStatus(t, w.call(binary, "message_delete_many", map[string]any{"queue_name": "q", "message_ids": []any{ids[1]}}), 204)
		for _, id := range []string{ids[1], "nope", newID()} {
			wcExpectException(t, w.call(binary, "message_get", map[string]any{"queue_name": "q", "message_id": id}), 404, "does not exist", nil)
		}
		wcExpectException(t, w.call(binary, "message_get", map[string]any{"queue_name": "other", "message_id": ids[0]}), 404, "does not exist", nil)
		wcRefuses(t, w, binary, []wcError{
			{name: "no id", action: "message_get", body: map[string]any{"queue_name": "q"}, schema: true},
			{name: "id not a string", action: "message_get", body: map[string]any{"queue_name": "q", "message_id": 5}, schema: true},
		})
	})
}

func TestWSMessageGetMany(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		ids := wcPost(t, w, binary, "q", 1, 2, 3)
		getMany := func(queue string, ids ...any) []string {
			t.Helper()
			b := wcBody(t, w.call(binary, "message_get_many", map[string]any{"queue_name": queue, "message_ids": ids}), 200)
			if !jsonEqual(keys(b), []string{"messages"}) {
				t.Fatalf("message_get_many body %v", b)
			}
			return wcMessages(t, b["messages"])
		}
		if got := getMany("q", ids[2], ids[0]); len(got) != 2 || !strings.Contains(strings.Join(got, ","), ids[0]) || !strings.Contains(strings.Join(got, ","), ids[2]) {
			t.Fatalf("get_many %v", got)
		}
		// Nothing found: an empty list, not 404 (REST's answer).
		for _, tc := range [][]any{{newID()}, {"nope"}, {}} {
			if got := getMany("q", tc...); len(got) != 0 {
				t.Fatalf("get_many %v: %v", tc, got)
			}
		}
		if got := getMany("missing", ids[0]); len(got) != 0 {
			t.Fatalf("get_many on another queue: %v", got)
		}
		twenty := make([]any, 20)
		for i := range twenty {
			twenty[i] = ids[i%3]
		}
		getMany("q", twenty...)
		wcRefuses(t, w, binary, []wcError{
			{name: "21 ids", action: "message_get_many", body: map[string]any{"queue_name": "q", "message_ids": append(twenty, ids[0])}, status: 400, exception: "20"},
			{name: "ids not a list", action: "message_get_many", body: map[string]any{"queue_name": "q", "message_ids": ids[0]}, schema: true},
			{name: "no ids", action: "message_get_many", body: map[string]any{"queue_name": "q"}, schema: true},
		})
	})
}

func TestWSMessagePost(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		post := func(queue string, msgs ...any) map[string]any {
			t.Helper()
			return w.call(binary, "message_post", map[string]any{"queue_name": queue, "messages": msgs})
		}
		ttlOf := func(queue, id string) float64 {
			t.Helper()
			return wcMessage(t, wcBody(t, w.call(binary, "message_get", map[string]any{"queue_name": queue, "message_id": id}), 200)["messages"])["ttl"].(float64)
		}
		idsOf := func(m map[string]any) []any {
			t.Helper()
			b := wcBody(t, m, 201)
			if !jsonEqual(keys(b), []string{"message_ids"}) {
				t.Fatalf("message_post body %v", b)
			}
			return b["message_ids"].([]any)
		}
		// Lazy creation; ttl defaults as REST.
		ids := idsOf(post("fresh", map[string]any{"body": 1}, map[string]any{"body": 2, "ttl": 120}, map[string]any{"body": 3, "extra": true}))
		if len(ids) != 3 {
			t.Fatalf("ids %v", ids)
		}
		wcExpect(t, w.call(binary, "queue_list", nil), 200, map[string]any{"queues": []any{map[string]any{"name": "fresh"}}})
		if ttl := ttlOf("fresh", ids[0].(string)); ttl != 3600 {
			t.Fatalf("default ttl %v", ttl)
		}
		if ttl := ttlOf("fresh", ids[1].(string)); ttl != 120 {
			t.Fatalf("ttl %v", ttl)
		}
		expectStatus(t, w.call(binary, "queue_create", map[string]any{"queue_name": "q999", "metadata": map[string]any{"_default_message_ttl": 999}}), 201)
		if ttl := ttlOf("q999", idsOf(post("q999", map[string]any{"body": 1}))[0].(string)); ttl != 999 {
			t.Fatalf("queue default ttl %v", ttl)
		}

		// delay is ignored, even on a delay queue: the message is listed and
		// claimable at once.
		expectStatus(t, w.call(binary, "queue_create", map[string]any{"queue_name": "slow", "metadata": map[string]any{"_default_message_delay": 30}}), 201)
		slow := idsOf(post("slow", map[string]any{"body": "a"}, map[string]any{"body": "b", "delay": 30}))
		if got := wcList(t, w, binary, "slow", map[string]any{"echo": true}); !jsonEqual(got, slow) {
			t.Fatalf("WS-posted messages on a delay queue: %v, want %v", got, slow)
		}
		if got := wcMessages(t, wcBody(t, w.call(binary, "claim_create", map[string]any{"queue_name": "slow"}), 201)["messages"]); len(got) != 2 {
			t.Fatalf("claimable %v", got)
		}

		// The size limit is on the JSON length of "messages" (B19).
		expectStatus(t, w.call(binary, "queue_create", map[string]any{"queue_name": "small", "metadata": map[string]any{"_max_messages_post_size": 1023}}), 201)
		fits := []any{map[string]any{"body": strings.Repeat("x", 1023-len(`[{"body":""}]`))}}
		if len(mustJSON(fits)) != 1023 {
			t.Fatal("size arithmetic")
		}
		idsOf(post("small", fits...))
		fits[0].(map[string]any)["body"] = fits[0].(map[string]any)["body"].(string) + "x"
		wcExpectException(t, post("small", fits...), 400, "Message collection size is too large. Max size 1023", nil)

		wcRefuses(t, w, binary, []wcError{
			{name: "missing body", action: "message_post", body: map[string]any{"queue_name": "q", "messages": []any{map[string]any{"ttl": 60}}}, status: 400, exception: `Bad request. Missing "body" field.`},
			{name: "ttl string", action: "message_post", body: map[string]any{"queue_name": "q", "messages": []any{map[string]any{"body": 1, "ttl": "200"}}}, status: 400, exception: `Bad request. The value of the "ttl" field must be a int.`},
			{name: "ttl float", action: "message_post", body: map[string]any{"queue_name": "q", "messages": []any{map[string]any{"body": 1, "ttl": 100.5}}}, status: 400, exception: `Bad request. The value of the "ttl" field must be a int.`},
			{name: "ttl 59", action: "message_post", body: map[string]any{"queue_name": "q", "messages": []any{map[string]any{"body": 1, "ttl": 59}}}, status: 400, exception: "The TTL for a message"},
			{name: "ttl too long", action: "message_post", body: map[string]any{"queue_name": "q", "messages": []any{map[string]any{"body": 1, "ttl": 1209601}}}, status: 400, exception: "The TTL for a message"},
			{name: "empty list", action: "message_post", body: map[string]any{"queue_name": "q", "messages": []any{}}, status: 400, exception: ""},
			// Zaqar answers 500 (B7); Herald refuses it as a bad request.
			{name: "not an object", action: "message_post", body: map[string]any{"queue_name": "q", "messages": []any{1}}, status: 400, exception: "Document type not supported."},
			{name: "bad queue name", action: "message_post", body: map[string]any{"queue_name": "bad@name", "messages": []any{map[string]any{"body": 1}}}, status: 400, exception: "queue name"},
			{name: "messages not a list", action: "message_post", body: map[string]any{"queue_name": "q", "messages": map[string]any{"body": 1}}, schema: true},
			{name: "no messages", action: "message_post", body: map[string]any{"queue_name": "q"}, schema: true},
		})
		// Client-ID must be a UUID here.
		bad := &wsClient{t: t, c: w.c, project: c.Project, client: "not-a-uuid"}
		wcExpectException(t, bad.call(binary, "message_post", map[string]any{"queue_name": "q", "messages": []any{map[string]any{"body": 1}}}), 400, "UUID", nil)
		wcExpect(t, w.call(binary, "queue_get_stats", map[string]any{"queue_name": "bad@name"}), 404,
			map[string]any{"messages": map[string]any{"claimed": 0, "free": 0, "total": 0}})
	})
}

func TestWSMessageDelete(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		del := func(id string, claim any) map[string]any {
			t.Helper()
			body := map[string]any{"queue_name": "q", "message_id": id}
			if claim != nil {
				body["claim_id"] = claim
			}
			return w.call(binary, "message_delete", body)
		}
		exists := func(id string) bool {
			t.Helper()
			return status(t, w.call(binary, "message_get", map[string]any{"queue_name": "q", "message_id": id})) == 200
		}
		ids := wcPost(t, w, binary, "q", 1, 2, 3)
		wcExpect(t, del(ids[0], nil), 204, map[string]any{})
		if exists(ids[0]) {
			t.Fatal("deleted message still there")
		}
		// Idempotent, also for unknown and malformed ids.
		for _, id := range []string{ids[0], newID(), "nope"} {
			wcExpect(t, del(id, nil), 204, map[string]any{})
		}
		// A malformed claim id is refused before the lookup.
		wcExpectException(t, del(ids[1], "123"), 400, "The specified claim does not exist or has expired.", nil)
		wcExpectException(t, del(ids[1], newID()), 400, "The specified claim does not exist or has expired.", nil)
		if !exists(ids[1]) {
			t.Fatal("a refused delete deleted")
		}
		wcPost(t, w, binary, "other", 1)
		other := wcBody(t, w.call(binary, "claim_create", map[string]any{"queue_name": "other"}), 201)["claim_id"].(string)
		cid := wcBody(t, w.call(binary, "claim_create", map[string]any{"queue_name": "q", "limit": 1}), 201)["claim_id"].(string)
		wcExpectException(t, del(ids[1], nil), 403, "This message is claimed; it cannot be deleted without a valid claim ID.", nil)
		wcExpectException(t, del(ids[1], other), 403, "This message is claimed; it cannot be deleted without a valid claim ID.", nil)
		wcExpect(t, del(ids[1], cid), 204, map[string]any{})
		if exists(ids[1]) {
			t.Fatal("deleted claimed message still there")
		}
		// A claim given for a message no claim holds (here: released).
		cid = wcBody(t, w.call(binary, "claim_create", map[string]any{"queue_name": "q"}), 201)["claim_id"].(string)
		expectStatus(t, w.call(binary, "claim_delete", map[string]any{"queue_name": "q", "claim_id": cid}), 204)
		wcExpectException(t, del(ids[2], cid), 400, "A claim was specified, but the message is not currently claimed.", nil)
		wcExpectException(t, del(ids[2], other), 400, "A claim was specified, but the message is not currently claimed.", nil)
		if !exists(ids[2]) {
			t.Fatal("delete with a released claim deleted")
		}
		wcRefuses(t, w, binary, []wcError{
			{name: "no id", action: "message_delete", body: map[string]any{"queue_name": "q"}, schema: true},
			{name: "claim id not a string", action: "message_delete", body: map[string]any{"queue_name": "q", "message_id": ids[2], "claim_id": 123}, schema: true},
		})
	})
}

func TestWSMessageDeleteMany(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		ids := wcPost(t, w, binary, "q", 1, 2, 3, 4, 5, 6, 7)
		wcExpect(t, w.call(binary, "message_delete_many", map[string]any{"queue_name": "q", "message_ids": []any{ids[0], ids[1], newID()}}), 204, map[string]any{})
		if got := wcList(t, w, binary, "q", map[string]any{"echo": true}); !jsonEqual(got, ids[2:]) {
			t.Fatalf("after deleting two: %v", got)
		}
		wcExpect(t, w.call(binary, "message_delete_many", map[string]any{"queue_name": "missing", "message_ids": []any{ids[2]}}), 204, map[string]any{})
		// Pop: the raw format, with claim_count and no href.
		b := wcBody(t, w.call(binary, "message_delete_many", map[string]any{"queue_name": "q", "pop": 2}), 200)
		popped, _ := b["messages"].([]any)
		if !jsonEqual(keys(b), []string{"messages"}) || len(popped) != 2 {
			t.Fatalf("pop %v", b)
		}
		for i, p := range popped {
			m := p.(map[string]any)
			if !jsonEqual(keys(m), []string{"age", "body", "claim_count", "claim_id", "id", "ttl"}) || m["id"] != ids[2+i] || m["body"] != float64(3+i) {
				t.Fatalf("popped %v", m)
			}
		}
		if got := wcList(t, w, binary, "q", map[string]any{"echo": true}); !jsonEqual(got, ids[4:]) {
			t.Fatalf("after pop: %v", got)
		}
		expectStatus(t, w.call(binary, "message_delete_many", map[string]any{"queue_name": "q", "pop": 20}), 200)
		wcExpect(t, w.call(binary, "message_delete_many", map[string]any{"queue_name": "q", "pop": 1}), 200, map[string]any{"messages": []any{}})

		many := make([]any, 21)
		for i := range many {
			many[i] = newID()
		}
		wcRefuses(t, w, binary, []wcError{
			{name: "neither", action: "message_delete_many", body: map[string]any{"queue_name": "q"}, status: 400, exception: `either "ids" or "pop"`},
			{name: "both", action: "message_delete_many", body: map[string]any{"queue_name": "q", "pop": 1, "message_ids": []any{ids[0]}}, status: 400, exception: "cannot be present together"},
			{name: "pop 0", action: "message_delete_many", body: map[string]any{"queue_name": "q", "pop": 0}, status: 400, exception: "Pop value must be at least 1"},
			{name: "pop 21", action: "message_delete_many", body: map[string]any{"queue_name": "q", "pop": 21}, status: 400, exception: "Pop value must be at least 1"},
			{name: "pop -1", action: "message_delete_many", body: map[string]any{"queue_name": "q", "pop": -1}, status: 400, exception: "Pop value must be at least 1"},
			{name: "21 ids", action: "message_delete_many", body: map[string]any{"queue_name": "q", "message_ids": many}, status: 400, exception: "20"},
			{name: "pop string", action: "message_delete_many", body: map[string]any{"queue_name": "q", "pop": "2"}, schema: true},
			{name: "ids not a list", action: "message_delete_many", body: map[string]any{"queue_name": "q", "message_ids": ids[0]}, schema: true},
			{name: "claim ids not a list", action: "message_delete_many", body: map[string]any{"queue_name": "q", "message_ids": []any{ids[0]}, "claim_ids": "x"}, schema: true},
		})
	})
}

func TestWSClaims(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		claim := wcOnQueue(w, binary, "claim_create", "q")
		noClaim := map[string]any{"claim_id": nil}
		// Nothing to claim: 204 {"claim_id": null}, on a missing queue too.
		wcExpect(t, claim(map[string]any{}), 204, noClaim)
		expectStatus(t, w.call(binary, "queue_create", map[string]any{"queue_name": "q"}), 201)
		wcExpect(t, claim(map[string]any{}), 204, noClaim)

		ids := wcPost(t, w, binary, "q", 1, 2, 3)
		b := wcBody(t, claim(map[string]any{"limit": 2, "ttl": 100, "grace": 60}), 201)
		if !jsonEqual(keys(b), []string{"claim_id", "messages"}) {
			t.Fatalf("claim_create body %v", b)
		}
		cid := b["claim_id"].(string)
		if got := wcMessages(t, b["messages"]); !jsonEqual(got, ids[:2]) {
			t.Fatalf("claimed %v, want %v", got, ids[:2])
		}
		for _, m := range b["messages"].([]any) {
			if m.(map[string]any)["claim_id"] != cid {
				t.Fatalf("claimed message %v without claim id %s", m, cid)
			}
		}
		// A message's lifetime stretches to cover claim ttl + grace.
		if m := wcMessage(t, wcBody(t, w.call(binary, "message_get", map[string]any{"queue_name": "q", "message_id": ids[0]}), 200)["messages"]); m["ttl"] != 300.0 {
			t.Fatalf("claimed message ttl %v", m["ttl"])
		}
		third := wcBody(t, claim(map[string]any{}), 201)
		if got := wcMessages(t, third["messages"]); !jsonEqual(got, ids[2:]) {
			t.Fatalf("second claim %v", got)
		}
		wcExpect(t, claim(map[string]any{}), 204, noClaim)

		// claim_get: age, ttl and messages; no href, no grace.
		n.Clock.Advance(4 * time.Second)
		get := func(id string) map[string]any {
			t.Helper()
			return w.call(binary, "claim_get", map[string]any{"queue_name": "q", "claim_id": id})
		}
		g := wcBody(t, get(cid), 200)
		if !jsonEqual(keys(g), []string{"age", "messages", "ttl"}) || g["ttl"] != 100.0 || g["age"].(float64) < 4 {
			t.Fatalf("claim_get %v", g)
		}
		if got := wcMessages(t, g["messages"]); !jsonEqual(got, ids[:2]) {
			t.Fatalf("claim_get messages %v", got)
		}
		for _, id := range []string{newID(), "nope"} {
			wcExpectException(t, get(id), 404, "", "Claim "+id+" does not exist.")
		}
		wcExpectException(t, w.call(binary, "claim_get", map[string]any{"queue_name": "missing", "claim_id": cid}), 404, "", "Claim "+cid+" does not exist.")

		// claim_update renews; only ttl is range-checked.
		wcExpect(t, w.call(binary, "claim_update", map[string]any{"queue_name": "q", "claim_id": cid, "ttl": 200, "grace": 1}), 204, "Claim "+cid+" updated.")
		if g := wcBody(t, get(cid), 200); g["ttl"] != 200.0 || g["age"].(float64) >= 4 {
			t.Fatalf("renewed claim %v", g)
		}
		wcExpectException(t, w.call(binary, "claim_update", map[string]any{"queue_name": "q", "claim_id": cid, "ttl": 59}), 400, "The TTL for a claim", nil)
		unknown := newID()
		wcExpectException(t, w.call(binary, "claim_update", map[string]any{"queue_name": "q", "claim_id": unknown, "ttl": 60}), 404, "", "Claim "+unknown+" does not exist.")

		// claim_delete releases: the messages are claimable again; unknown
		// claims are fine.
		wcExpect(t, w.call(binary, "claim_delete", map[string]any{"queue_name": "q", "claim_id": cid}), 204, "Claim "+cid+" deleted.")
		wcExpect(t, w.call(binary, "claim_delete", map[string]any{"queue_name": "q", "claim_id": cid}), 204, "Claim "+cid+" deleted.")
		wcExpect(t, w.call(binary, "claim_delete", map[string]any{"queue_name": "q", "claim_id": "nope"}), 204, "Claim nope deleted.")
		expectStatus(t, get(cid), 404)
		if got := wcMessages(t, wcBody(t, claim(map[string]any{}), 201)["messages"]); !jsonEqual(got, ids[:2]) {
			t.Fatalf("released messages claimed again: %v", got)
		}
		// An expired claim is gone.
		tid := third["claim_id"].(string)
		n.Clock.Advance(301 * time.Second)
		expectStatus(t, get(tid), 404)
		expectStatus(t, w.call(binary, "claim_update", map[string]any{"queue_name": "q", "claim_id": tid, "ttl": 60}), 404)

		wcRefuses(t, w, binary, []wcError{
			{name: "ttl 59", action: "claim_create", body: map[string]any{"queue_name": "q", "ttl": 59}, status: 400, exception: "The TTL for a claim"},
			{name: "ttl 43201", action: "claim_create", body: map[string]any{"queue_name": "q", "ttl": 43201}, status: 400, exception: "The TTL for a claim"},
			{name: "grace 59", action: "claim_create", body: map[string]any{"queue_name": "q", "grace": 59}, status: 400, exception: "The grace for a claim"},
			{name: "grace 43201", action: "claim_create", body: map[string]any{"queue_name": "q", "grace": 43201}, status: 400, exception: "The grace for a claim"},
			{name: "limit 21", action: "claim_create", body: map[string]any{"queue_name": "q", "limit": 21}, status: 400, exception: "Limit must be at least 1"},
			{name: "limit 0", action: "claim_create", body: map[string]any{"queue_name": "q", "limit": 0}, status: 400, exception: "Limit must be at least 1"},
			{name: "ttl string", action: "claim_create", body: map[string]any{"queue_name": "q", "ttl": "60"}, schema: true},
			{name: "ttl null", action: "claim_create", body: map[string]any{"queue_name": "q", "ttl": nil}, schema: true},
			{name: "grace float", action: "claim_create", body: map[string]any{"queue_name": "q", "grace": 60.5}, schema: true},
			{name: "get without id", action: "claim_get", body: map[string]any{"queue_name": "q"}, schema: true},
			{name: "update ttl string", action: "claim_update", body: map[string]any{"queue_name": "q", "claim_id": "x", "ttl": "60"}, schema: true},
			{name: "delete id not a string", action: "claim_delete", body: map[string]any{"queue_name": "q", "claim_id": 1}, schema: true},
		})
	})
}

func TestWSSubscriptions(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		create := wcOnQueue(w, binary, "subscription_create", "q")
		b := wcBody(t, create(map[string]any{"subscriber": "http://fake:8080", "ttl": 600, "options": map[string]any{"a": 1}}), 201)
		sid, _ := b["subscription_id"].(string)
		if !jsonEqual(keys(b), []string{"message", "signing_secret", "subscription_id"}) || b["message"] != "Subscription q created." || sid == "" {
			t.Fatalf("subscription_create %v", b)
		}
		// Lazy queue creation.
		wcExpect(t, w.call(binary, "queue_list", nil), 200, map[string]any{"queues": []any{map[string]any{"name": "q"}}})
		// A duplicate is 409 here even unconfirmed (REST answers 201).
		wcExpect(t, create(map[string]any{"subscriber": "http://fake:8080", "ttl": 600}), 409, "Subscription q not created.")
		c.post("/v2/queues/q/subscriptions", map[string]any{"subscriber": "http://fake:8080", "ttl": 600}).expect(t, 201)
		b2 := wcBody(t, create(map[string]any{"subscriber": "mailto:fake@123.com"}), 201)

		n.Clock.Advance(2 * time.Second)
		s := wcBody(t, w.call(binary, "subscription_get", map[string]any{"queue_name": "q", "subscription_id": sid}), 200)
		if !jsonEqual(keys(s), []string{"age", "confirmed", "delivery", "id", "options", "source", "subscriber", "ttl"}) {
			t.Fatalf("subscription_get %v", s)
		}
		if s["id"] != sid || s["source"] != "q" || s["subscriber"] != "http://fake:8080" || s["ttl"] != 600.0 ||
			s["confirmed"] != false || !jsonEqual(s["options"], map[string]any{"a": 1}) || s["age"].(float64) < 2 {
			t.Fatalf("subscription_get %v", s)
		}
		wcExpectException(t, w.call(binary, "subscription_get", map[string]any{"queue_name": "q", "subscription_id": "123"}), 404, "does not exist", nil)
		wcExpectException(t, w.call(binary, "subscription_get", map[string]any{"queue_name": "other", "subscription_id": sid}), 404, "does not exist", nil)

		l := wcBody(t, w.call(binary, "subscription_list", map[string]any{"queue_name": "q"}), 200)
		if !jsonEqual(keys(l), []string{"subscriptions"}) || len(l["subscriptions"].([]any)) != 2 {
			t.Fatalf("subscription_list %v", l)
		}
		if l := wcBody(t, w.call(binary, "subscription_list", map[string]any{"queue_name": "q", "limit": 1}), 200); len(l["subscriptions"].([]any)) != 1 {
			t.Fatalf("subscription_list limit 1: %v", l)
		}
		wcExpect(t, w.call(binary, "subscription_list", map[string]any{"queue_name": "missing"}), 200, map[string]any{"subscriptions": []any{}})

		wcExpect(t, w.call(binary, "subscription_delete", map[string]any{"queue_name": "q", "subscription_id": sid}), 204, "Subscription "+sid+" removed.")
		wcExpect(t, w.call(binary, "subscription_delete", map[string]any{"queue_name": "q", "subscription_id": sid}), 204, "Subscription "+sid+" removed.")
		other := b2["subscription_id"].(string)
		wcExpect(t, w.call(binary, "subscription_delete", map[string]any{"queue_name": "elsewhere", "subscription_id": other}), 204, "Subscription "+other+" removed.")
		if l := wcBody(t, w.call(binary, "subscription_list", map[string]any{"queue_name": "q"}), 200); len(l["subscriptions"].([]any)) != 1 {
			t.Fatalf("after deletes: %v", l)
		}

		wcRefuses(t, w, binary, []wcError{
			{name: "bad subscriber", action: "subscription_create", body: map[string]any{"queue_name": "q", "subscriber": "fake"}, status: 400, exception: "must be supported in the list"},
			{name: "email scheme", action: "subscription_create", body: map[string]any{"queue_name": "q", "subscriber": "email://fake"}, status: 400, exception: "must be supported in the list"},
			{name: "ttl 50", action: "subscription_create", body: map[string]any{"queue_name": "q", "subscriber": "http://x:1", "ttl": 50}, status: 400, exception: "at least 60 seconds"},
			{name: "ttl string", action: "subscription_create", body: map[string]any{"queue_name": "q", "subscriber": "http://x:1", "ttl": "123"}, schema: true},
			{name: "options string", action: "subscription_create", body: map[string]any{"queue_name": "q", "subscriber": "http://x:1", "options": "123"}, schema: true},
			{name: "subscriber number", action: "subscription_create", body: map[string]any{"queue_name": "q", "subscriber": 1}, schema: true},
			{name: "get without id", action: "subscription_get", body: map[string]any{"queue_name": "q"}, schema: true},
			{name: "list limit string", action: "subscription_list", body: map[string]any{"queue_name": "q", "limit": "1"}, schema: true},
			{name: "delete without id", action: "subscription_delete", body: map[string]any{"queue_name": "q"}, schema: true},
		})
		// subscription_create may create its queue: it validates the name.
		wcExpectException(t, w.call(binary, "subscription_create", map[string]any{"queue_name": "bad@q", "subscriber": "http://x:1"}), 400, "queue name", nil)
		wcExpectException(t, w.call(binary, "subscription_create", map[string]any{"queue_name": "bad@q"}), 400, "queue name", nil)
		wcExpect(t, w.call(binary, "subscription_list", map[string]any{"queue_name": "bad@q"}), 200, map[string]any{"subscriptions": []any{}})
	})
}

// TestWSAuthenticateWithoutAuth: without an auth strategy authenticate
// answers 200 instead of never (B1), echoing neither token nor headers.
func TestWSAuthenticateWithoutAuth(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		w.send(binary, map[string]any{"action": "authenticate", "headers": map[string]any{"X-Auth-Token": "any", "X-Project-ID": c.Project}})
		m := w.answer(binary)
		wcExpect(t, m, 200, map[string]any{"message": "Authentified."})
		if !jsonEqual(m["request"], map[string]any{"action": "authenticate", "body": map[string]any{}, "headers": map[string]any{}, "api": "v2"}) {
			t.Fatalf("authenticate echo %v", m["request"])
		}
		// Signature headers are ignored without an auth strategy.
		h := w.headers()
		h["URL-Signature"], h["URL-Methods"], h["URL-Paths"], h["URL-Expires"] = "bogus", []any{"GET"}, []any{"/v2/queues/q/messages"}, "2000-01-01T00:00:00"
		w.send(binary, map[string]any{"action": "queue_list", "headers": h})
		expectStatus(t, w.answer(binary), 200)
	})
}

// raw sends data as one frame and returns the answer, which must come in
// the same frame type.
func (w *wsClient) rawAnswer(binary bool, data []byte) map[string]any {
	w.t.Helper()
	mt := websocket.TextMessage
	if binary {
		mt = websocket.BinaryMessage
	}
	if err := w.c.WriteMessage(mt, data); err != nil {
		w.t.Fatalf("write: %v", err)
	}
	return w.answer(binary)
}

// wcEncode encodes v as a frame of the chosen encoding.
func wcEncode(t testing.TB, binary bool, v any) []byte {
	t.Helper()
	if !binary {
		return mustJSON(v)
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var wcNoEcho = map[string]any{"action": nil, "body": map[string]any{}, "headers": map[string]any{}, "api": "v2"}

// TestWSRequestEcho: the "request" member of every answer (contract
// §4.2): action (or null), body (or {}), headers (or {}) as decoded, and
// always "api": "v2".
func TestWSRequestEcho(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		h := w.headers()
		h["User-Agent"], h["X-Extra"] = "echo-test", []any{1, "two"}
		body := map[string]any{"limit": 5, "extra": map[string]any{"f": 1.5, "n": nil}}
		for _, tc := range []struct {
			name   string
			req    map[string]any
			status int
			echo   map[string]any
		}{
			{"everything", map[string]any{"action": "queue_list", "headers": h, "body": body}, 200,
				map[string]any{"action": "queue_list", "headers": h, "body": body, "api": "v2"}},
			{"no body", map[string]any{"action": "queue_list", "headers": h}, 200,
				map[string]any{"action": "queue_list", "headers": h, "body": map[string]any{}, "api": "v2"}},
			{"api given", map[string]any{"action": "queue_list", "headers": h, "api": "v1"}, 200,
				map[string]any{"action": "queue_list", "headers": h, "body": map[string]any{}, "api": "v2"}},
			{"no headers", map[string]any{"action": "queue_list", "body": body}, 400,
				map[string]any{"action": "queue_list", "headers": map[string]any{}, "body": body, "api": "v2"}},
			{"null headers", map[string]any{"action": "queue_list", "headers": nil}, 400,
				map[string]any{"action": "queue_list", "headers": map[string]any{}, "body": map[string]any{}, "api": "v2"}},
			{"no action", map[string]any{"headers": h, "body": body}, 400,
				map[string]any{"action": nil, "headers": h, "body": body, "api": "v2"}},
			{"unknown action", map[string]any{"action": "queue_glorify", "headers": h}, 400,
				map[string]any{"action": "queue_glorify", "headers": h, "body": map[string]any{}, "api": "v2"}},
			{"empty object", map[string]any{}, 400, wcNoEcho},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m := w.rawAnswer(binary, wcEncode(t, binary, tc.req))
				expectStatus(t, m, tc.status)
				if !jsonEqual(m["request"], tc.echo) {
					t.Fatalf("echo %s, want %s", mustJSON(m["request"]), mustJSON(tc.echo))
				}
				if got := keys(m); !jsonEqual(got, []string{"body", "headers", "request"}) {
					t.Fatalf("answer keys %v", got)
				}
				if got := keys(m["headers"].(map[string]any)); !jsonEqual(got, []string{"status"}) {
					t.Fatalf("answer headers %v", m["headers"])
				}
			})
		}
		// Frames that do not decode, or not to an object, echo nothing.
		for _, data := range [][]byte{wcEncode(t, binary, 123), wcEncode(t, binary, []any{"queue_list"}), {0xc1}} {
			m := w.rawAnswer(binary, data)
			expectStatus(t, m, 400)
			if !jsonEqual(m["request"], wcNoEcho) {
				t.Fatalf("echo of %q: %v", data, m["request"])
			}
		}
	})
}

// TestWSAnswersInOrder: requests sent back to back, in mixed encodings and
// with protocol errors among them, are answered one each, in order, each
// in its request's encoding (contract §4.1).
func TestWSAnswersInOrder(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	w := wsDial(t, n, c.Project)
	type sent struct {
		binary bool
		action any
		status int
	}
	var want []sent
	for i := 0; i < 60; i++ {
		binary := i%3 == 0
		var req map[string]any
		switch i % 5 {
		case 0, 1:
			req = map[string]any{"action": "message_post", "headers": w.headers(),
				"body": map[string]any{"queue_name": "q", "messages": []any{map[string]any{"body": i}}}}
			want = append(want, sent{binary, "message_post", 201})
		case 2:
			req = map[string]any{"action": "claim_create", "headers": w.headers(), "body": map[string]any{"queue_name": "q", "limit": 1}}
			want = append(want, sent{binary, "claim_create", 201})
		case 3:
			req = map[string]any{"action": fmt.Sprintf("nope_%d", i), "headers": w.headers()}
			want = append(want, sent{binary, fmt.Sprintf("nope_%d", i), 400})
		case 4:
			mt := websocket.TextMessage
			if binary {
				mt = websocket.BinaryMessage
			}
			if err := w.c.WriteMessage(mt, []byte{0xc1, '{'}); err != nil {
				t.Fatal(err)
			}
			want = append(want, sent{binary, nil, 400})
			continue
		}
		w.send(binary, req)
	}
	var posted []float64
	for i, s := range want {
		m := w.answer(s.binary)
		req := m["request"].(map[string]any)
		if req["action"] != s.action || status(t, m) != s.status {
			t.Fatalf("answer %d: %v %v, want %v %d", i, req["action"], m["headers"], s.action, s.status)
		}
		if s.action == "message_post" {
			posted = append(posted, req["body"].(map[string]any)["messages"].([]any)[0].(map[string]any)["body"].(float64))
		}
	}
	// The posts were applied in the order sent.
	msgs := c.get("/v2/queues/q/messages?include_claimed=true&limit=20").expect(t, 200).JSON(t)["messages"].([]any)
	var got []float64
	for _, m := range msgs {
		got = append(got, m.(map[string]any)["body"].(float64))
	}
	if !jsonEqual(got, posted[:min(len(posted), 20)]) {
		t.Fatalf("stored order %v, sent %v", got, posted)
	}
}

// wcOldStyle encodes v as MessagePack did before str8 and bin existed
// (Python msgpack with use_bin_type=False): strings are raw — fixraw up
// to 31 bytes, raw16 beyond. Only the shapes the tests use are supported.
func wcOldStyle(v any) []byte {
	var b []byte
	var enc func(v any)
	enc = func(v any) {
		switch x := v.(type) {
		case nil:
			b = append(b, 0xc0)
		case bool:
			b = append(b, map[bool]byte{false: 0xc2, true: 0xc3}[x])
		case int: // positive fixint
			b = append(b, byte(x))
		case string:
			if len(x) < 32 {
				b = append(b, 0xa0|byte(len(x)))
			} else {
				b = append(b, 0xda, byte(len(x)>>8), byte(len(x)))
			}
			b = append(b, x...)
		case []any:
			b = append(b, 0x90|byte(len(x)))
			for _, e := range x {
				enc(e)
			}
		case map[string]any:
			b = append(b, 0x80|byte(len(x)))
			for k, e := range x {
				enc(k)
				enc(e)
			}
		default:
			panic(fmt.Sprintf("wcOldStyle: %T", v))
		}
	}
	enc(v)
	return b
}

// TestWSMsgpackOldStyleStrings: MessagePack requests with old raw strings
// or bin strings are understood as text; answers use str (contract §4.1).
func TestWSMsgpackOldStyleStrings(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	w := wsDial(t, n, c.Project)
	long := strings.Repeat("déjà vu ", 6) // 54 bytes: raw16 in the old format
	m := w.rawAnswer(true, wcOldStyle(map[string]any{"action": "message_post", "headers": map[string]any{"Client-ID": w.client, "X-Project-ID": c.Project},
		"body": map[string]any{"queue_name": "old", "messages": []any{map[string]any{"body": map[string]any{"text": long, "ok": true}, "ttl": 120}}}}))
	ids := wcBody(t, m, 201)["message_ids"].([]any)
	if req := m["request"].(map[string]any); req["action"] != "message_post" || req["headers"].(map[string]any)["X-Project-ID"] != c.Project {
		t.Fatalf("echo %v", req)
	}
	got := c.get("/v2/queues/old/messages/"+ids[0].(string)).expect(t, 200).JSON(t)
	if !jsonEqual(got["body"], map[string]any{"text": long, "ok": true}) || got["ttl"] != 120.0 {
		t.Fatalf("stored message %v", got)
	}
	// bin-typed strings, as a client packing bytes sends them.
	m = w.rawAnswer(true, wcEncode(t, true, map[string]any{"action": []byte("message_get"),
		"headers": map[string]any{"Client-ID": []byte(w.client), "X-Project-ID": []byte(c.Project)},
		"body":    map[string]any{"queue_name": []byte("old"), "message_id": []byte(ids[0].(string))}}))
	if msg := wcMessage(t, wcBody(t, m, 200)["messages"]); !jsonEqual(msg["body"], map[string]any{"text": long, "ok": true}) {
		t.Fatalf("message_get with bin strings %v", msg)
	}
	// Raw bytes that are not UTF-8 are refused like Zaqar's UnicodeDecodeError.
	m = w.rawAnswer(true, []byte{0x81, 0xa1, 'x', 0xa2, 0xff, 0xfe}) // {"x": raw "\xff\xfe"}
	expectStatus(t, m, 400)
	if e, _ := m["body"].(map[string]any)["error"].(string); !strings.HasPrefix(e, "Can't decode binary (MessagePack) request. ") {
		t.Fatalf("error %q", e)
	}
}

// TestWSItem66ProtocolErrors: checklist item 66, and the decode failures
// of §4.3 step 1, in both encodings.
func TestWSItem66ProtocolErrors(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		decodeErr := "Can't decode text (JSON) request. "
		undecodable := []byte("\ufeff")
		if binary {
			decodeErr, undecodable = "Can't decode binary (MessagePack) request. ", []byte{0xc1}
		}
		noClient := map[string]any{"X-Project-ID": c.Project}
		for _, tc := range []struct {
			name  string
			frame []byte
			error string
			echo  map[string]any
		}{
			{"number", wcEncode(t, binary, 123), "Unexpected body type. Expected dict or dict like.", wcNoEcho},
			{"unknown action", wcEncode(t, binary, map[string]any{"action": "queue_glorify", "headers": w.headers(), "body": map[string]any{}}),
				"queue_glorify is not a valid action", map[string]any{"action": "queue_glorify", "headers": w.headers(), "body": map[string]any{}, "api": "v2"}},
			{"no action", wcEncode(t, binary, map[string]any{"headers": w.headers()}), "None is not a valid action",
				map[string]any{"action": nil, "headers": w.headers(), "body": map[string]any{}, "api": "v2"}},
			{"no Client-ID", wcEncode(t, binary, map[string]any{"action": "queue_list", "headers": noClient}), "Schema validation failed.",
				map[string]any{"action": "queue_list", "headers": noClient, "body": map[string]any{}, "api": "v2"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m := w.rawAnswer(binary, tc.frame)
				wcExpect(t, m, 400, map[string]any{"error": tc.error})
				if !jsonEqual(m["request"], tc.echo) {
					t.Fatalf("echo %v, want %v", m["request"], tc.echo)
				}
			})
		}
		m := w.rawAnswer(binary, undecodable)
		expectStatus(t, m, 400)
		if e, _ := wcBody(t, m, 400)["error"].(string); !strings.HasPrefix(e, decodeErr) || !jsonEqual(m["request"], wcNoEcho) {
			t.Fatalf("undecodable frame: %v", m)
		}
		// Schema rules of §4.3 step 4 beyond item 66.
		for _, h := range []map[string]any{
			{"Client-ID": w.client},
			{"Client-ID": 5, "X-Project-ID": c.Project},
			{"Client-ID": w.client, "X-Project-ID": c.Project, "User-Agent": 1},
		} {
			m := w.rawAnswer(binary, wcEncode(t, binary, map[string]any{"action": "queue_list", "headers": h}))
			wcExpect(t, m, 400, map[string]any{"error": "Schema validation failed."})
		}
		for _, body := range []any{"x", []any{}, 5} {
			m := w.rawAnswer(binary, wcEncode(t, binary, map[string]any{"action": "queue_get", "headers": w.headers(), "body": body}))
			wcExpect(t, m, 400, map[string]any{"error": "Schema validation failed."})
		}
		m = w.rawAnswer(binary, wcEncode(t, binary, map[string]any{"action": "queue_list", "headers": "x"}))
		wcExpect(t, m, 400, map[string]any{"error": "Schema validation failed."})
	})
}

// TestWSSchemaOnlyActionsAnswer: actions Zaqar's schema knows but never
// answers get an error frame instead of silence (B2).
func TestWSSchemaOnlyActionsAnswer(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		for _, a := range []string{"get_home_doc", "check_node_health", "ping_node", "pool_list", "pool_create", "pool_update",
			"pool_get", "pool_delete", "flavor_list", "flavor_create", "flavor_update", "flavor_get", "flavor_delete"} {
			wcExpect(t, w.call(binary, a, map[string]any{}), 400, map[string]any{"error": a + " is not a valid action"})
		}
	})
}

// TestWSItem67FreshQueueList: checklist item 67, the whole answer.
func TestWSItem67FreshQueueList(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		want := map[string]any{"body": map[string]any{"queues": []any{}}, "headers": map[string]any{"status": 200},
			"request": map[string]any{"action": "queue_list", "body": map[string]any{}, "api": "v2", "headers": w.headers()}}
		if m := w.call(binary, "queue_list", nil); !jsonEqual(m, want) {
			t.Fatalf("answer %s, want %s", mustJSON(m), mustJSON(want))
		}
	})
}

// TestWSItem68QueueCreateAndFrameTypes: checklist item 68; every answer
// to a binary request is binary, errors included.
func TestWSItem68QueueCreateAndFrameTypes(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		wcExpect(t, w.call(binary, "queue_create", map[string]any{"queue_name": "my_queue"}), 201, "Queue my_queue created.")
		wcExpect(t, w.call(binary, "queue_create", map[string]any{"queue_name": "my_queue"}), 204, "Queue my_queue created.")
		// w.answer fails on a frame of the other type.
		w.rawAnswer(binary, wcEncode(t, binary, 1))
		w.rawAnswer(binary, wcEncode(t, binary, map[string]any{"action": "x"}))
		w.rawAnswer(binary, []byte{0xc1})
		w.call(binary, "queue_get", map[string]any{})
		w.call(binary, "authenticate", nil)
		w.call(binary, "pool_list", map[string]any{})
	})
}

// TestWSItem69PostAndGet: checklist item 69.
func TestWSItem69PostAndGet(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		b := wcBody(t, w.call(binary, "message_post", map[string]any{"queue_name": "kitkat",
			"messages": []any{map[string]any{"body": map[string]any{"status": "ok"}, "ttl": 60}}}), 201)
		ids, _ := b["message_ids"].([]any)
		if !jsonEqual(keys(b), []string{"message_ids"}) || len(ids) != 1 {
			t.Fatalf("message_post %v", b)
		}
		m := wcMessage(t, wcBody(t, w.call(binary, "message_get", map[string]any{"queue_name": "kitkat", "message_id": ids[0]}), 200)["messages"])
		if m["id"] != ids[0] || m["claim_id"] != nil || m["ttl"] != 60.0 || !jsonEqual(m["body"], map[string]any{"status": "ok"}) {
			t.Fatalf("message_get %v", m)
		}
	})
}

// TestWSItem70EmptyClaimAndMissingStats: checklist item 70.
func TestWSItem70EmptyClaimAndMissingStats(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		expectStatus(t, w.call(binary, "queue_create", map[string]any{"queue_name": "empty"}), 201)
		wcExpect(t, w.call(binary, "claim_create", map[string]any{"queue_name": "empty"}), 204, map[string]any{"claim_id": nil})
		wcExpect(t, w.call(binary, "queue_get_stats", map[string]any{"queue_name": "missing"}), 404,
			map[string]any{"messages": map[string]any{"claimed": 0, "free": 0, "total": 0}})
	})
}

// wcDialURL opens a socket on url for project.
func wcDialURL(t testing.TB, url, project string) *wsClient {
	t.Helper()
	c, res, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, res)
	}
	t.Cleanup(func() { c.Close() })
	return &wsClient{t: t, c: c, project: project, client: newID()}
}

// notification reads the next frame, which must be a notification (no
// answer envelope) of the given frame type.
func (w *wsClient) notification(binary bool) map[string]any {
	w.t.Helper()
	got, m := w.next()
	if _, envelope := m["request"]; envelope {
		w.t.Fatalf("notification wrapped in an answer: %v", m)
	}
	if got != binary {
		w.t.Fatalf("notification in a binary frame: %v, want %v: %v", got, binary, m)
	}
	return m
}

// wcSubscriptions lists queue's subscriptions over REST.
func wcSubscriptions(t testing.TB, c *client, queue string) []any {
	t.Helper()
	return c.get("/v2/queues/"+queue+"/subscriptions").expect(t, 200).JSON(t)["subscriptions"].([]any)
}

// TestWSItem71Notifications: checklist item 71 on the WebSocket listener
// (any path): a subscription without subscriber is stored as
// http://<host>:<port>/<connection-id>, REST posts reach the socket as
// unwrapped payloads in the encoding of the subscribing request, and the
// subscription goes with the socket.
func TestWSItem71Notifications(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		notifyHost string
		wantHost   string
	}{
		{"hostname", "", hostname},
		{"configured host", "notify.example", "notify.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, nodeOptions{Configure: func(c *server.Config) {
				c.WSListen = "127.0.0.1:0"
				c.WS.NotifyHost = tc.notifyHost
			}})
			_, port, _ := strings.Cut(n.srv.WSAddr(), ":")
			subscriber := regexp.MustCompile(`^http://` + regexp.QuoteMeta(tc.wantHost) + `:` + port + `/[0-9a-f-]{32,36}$`)
			for i, e := range wcEncodings {
				t.Run(e.name, func(t *testing.T) {
					c := newClient(t, n)
					w := wcDialURL(t, "ws://"+n.srv.WSAddr()+[]string{"/", "/any/path"}[i], c.Project)
					b := wcBody(t, w.call(e.binary, "subscription_create", map[string]any{"queue_name": "kitkat", "ttl": 3600}), 201)
					if !jsonEqual(keys(b), []string{"message", "subscription_id"}) || b["message"] != "Subscription kitkat created." {
						t.Fatalf("subscription_create %v", b)
					}
					subs := wcSubscriptions(t, c, "kitkat")
					if len(subs) != 1 {
						t.Fatalf("subscriptions %v", subs)
					}
					s := subs[0].(map[string]any)
					if s["id"] != b["subscription_id"] || !subscriber.MatchString(s["subscriber"].(string)) || s["confirmed"] != false {
						t.Fatalf("stored subscription %v, want subscriber like %s", s, subscriber)
					}
					// A duplicate websocket subscription is 409 too.
					wcExpect(t, w.call(e.binary, "subscription_create", map[string]any{"queue_name": "kitkat"}), 409, "Subscription kitkat not created.")

					c.postMessages("kitkat", msg(map[string]any{"status": "disco queen"}, "ttl", 60))
					want := map[string]any{"ttl": 60, "body": map[string]any{"status": "disco queen"}, "Message_Type": "Notification", "queue_name": "kitkat"}
					if got := w.notification(e.binary); !jsonEqual(got, want) {
						t.Fatalf("notification %v, want %v", got, want)
					}
					// A WS post notifies too; the notification may come before
					// or after the answer (§4.1: interleaved at any time).
					w.send(e.binary, map[string]any{"action": "message_post", "headers": w.headers(),
						"body": map[string]any{"queue_name": "kitkat", "messages": []any{map[string]any{"body": "from ws", "ttl": 60}}}})
					var answers, notes []map[string]any
					for len(answers)+len(notes) < 2 {
						binary, m := w.next()
						if binary != e.binary {
							t.Fatalf("binary frame %v: %v", binary, m)
						}
						if m["request"] != nil {
							answers = append(answers, m)
						} else {
							notes = append(notes, m)
						}
					}
					want["body"] = "from ws"
					if len(answers) != 1 || status(t, answers[0]) != 201 || !jsonEqual(notes, []any{want}) {
						t.Fatalf("WS post: answers %v, notifications %v", answers, notes)
					}
					w.c.Close()
					deadline := time.Now().Add(10 * time.Second)
					for len(wcSubscriptions(t, c, "kitkat")) != 0 {
						if time.Now().After(deadline) {
							t.Fatal("the socket's subscription outlived it")
						}
						time.Sleep(10 * time.Millisecond)
					}
				})
			}
		})
	}
}

// TestWSNotificationEncodingFollowsSubscriptionCreate: the notification
// encoding is that of the last successful websocket subscription_create
// of the connection, for all its subscriptions; other requests, failed
// creates and creates with a subscriber do not change it (contract §4.7).
func TestWSNotificationEncodingFollowsSubscriptionCreate(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	w := wsDial(t, n, c.Project)
	notified := func(binary bool, queues ...string) {
		t.Helper()
		for _, q := range queues {
			c.postMessages(q, msg(q))
			if got := w.notification(binary); got["queue_name"] != q || got["body"] != q {
				t.Fatalf("notification %v, want one of %s", got, q)
			}
		}
	}
	expectStatus(t, w.call(false, "subscription_create", map[string]any{"queue_name": "q1"}), 201)
	expectStatus(t, w.call(true, "queue_list", nil), 200)
	expectStatus(t, w.call(true, "subscription_create", map[string]any{"queue_name": "q1"}), 409)
	expectStatus(t, w.call(true, "subscription_create", map[string]any{"queue_name": "q1", "subscriber": "http://fake:8080"}), 201)
	expectStatus(t, w.call(true, "subscription_create", map[string]any{"queue_name": "q1", "ttl": 1}), 409)
	notified(false, "q1")

	expectStatus(t, w.call(true, "subscription_create", map[string]any{"queue_name": "q2"}), 201)
	notified(true, "q1", "q2")
	expectStatus(t, w.call(false, "subscription_create", map[string]any{"queue_name": "q2"}), 409)
	expectStatus(t, w.call(false, "message_list", map[string]any{"queue_name": "q1"}), 200)
	notified(true, "q2", "q1")

	expectStatus(t, w.call(false, "subscription_create", map[string]any{"queue_name": "q3"}), 201)
	notified(false, "q1", "q2", "q3")
	// Deleting a subscription stops its notifications only.
	sub := wcSubscriptions(t, c, "q2")[0].(map[string]any)["id"].(string)
	expectStatus(t, w.call(true, "subscription_delete", map[string]any{"queue_name": "q2", "subscription_id": sub}), 204)
	c.postMessages("q2", msg("unheard"))
	notified(false, "q3")
}

// TestWSTenantIsolation: another X-Project-ID, on the same socket or
// another, sees nothing of a project's queue and cannot change it.
func TestWSTenantIsolation(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		meta := map[string]any{"k": "v"}
		expectStatus(t, w.call(binary, "queue_create", map[string]any{"queue_name": "q", "metadata": meta}), 201)
		ids := wcPost(t, w, binary, "q", 1, 2, 3, 4)
		cid := wcBody(t, w.call(binary, "claim_create", map[string]any{"queue_name": "q", "limit": 2}), 201)["claim_id"].(string)
		sid := wcBody(t, w.call(binary, "subscription_create", map[string]any{"queue_name": "q", "subscriber": "http://fake:8080"}), 201)["subscription_id"].(string)

		sameSocket := &wsClient{t: t, c: w.c, project: "intruder-" + newID()[:8], client: newID()}
		otherSocket := wsDial(t, n, "intruder-"+newID()[:8])
		for name, x := range map[string]*wsClient{"same socket": sameSocket, "other socket": otherSocket} {
			t.Run(name, func(t *testing.T) {
				q := func(body map[string]any) map[string]any {
					body["queue_name"] = "q"
					return body
				}
				zero := map[string]any{"messages": map[string]any{"claimed": 0, "free": 0, "total": 0}}
				wcExpect(t, x.call(binary, "queue_list", nil), 200, map[string]any{"queues": []any{}})
				wcExpect(t, x.call(binary, "queue_get", q(map[string]any{})), 200, map[string]any{})
				wcExpect(t, x.call(binary, "queue_get_stats", q(map[string]any{})), 404, zero)
				wcExpect(t, x.call(binary, "message_list", q(map[string]any{"echo": true, "include_claimed": true})), 200, map[string]any{"messages": []any{}})
				expectStatus(t, x.call(binary, "message_get", q(map[string]any{"message_id": ids[2]})), 404)
				wcExpect(t, x.call(binary, "message_get_many", q(map[string]any{"message_ids": []any{ids[0], ids[2]}})), 200, map[string]any{"messages": []any{}})
				expectStatus(t, x.call(binary, "claim_get", q(map[string]any{"claim_id": cid})), 404)
				expectStatus(t, x.call(binary, "claim_update", q(map[string]any{"claim_id": cid, "ttl": 60})), 404)
				wcExpect(t, x.call(binary, "subscription_list", q(map[string]any{})), 200, map[string]any{"subscriptions": []any{}})
				expectStatus(t, x.call(binary, "subscription_get", q(map[string]any{"subscription_id": sid})), 404)
				// What would change the queue changes nothing.
				expectStatus(t, x.call(binary, "message_delete", q(map[string]any{"message_id": ids[2]})), 204)
				expectStatus(t, x.call(binary, "message_delete", q(map[string]any{"message_id": ids[0], "claim_id": cid})), 204)
				expectStatus(t, x.call(binary, "message_delete_many", q(map[string]any{"message_ids": []any{ids[1], ids[3]}})), 204)
				wcExpect(t, x.call(binary, "message_delete_many", q(map[string]any{"pop": 5})), 200, map[string]any{"messages": []any{}})
				wcExpect(t, x.call(binary, "claim_create", q(map[string]any{})), 204, map[string]any{"claim_id": nil})
				expectStatus(t, x.call(binary, "claim_delete", q(map[string]any{"claim_id": cid})), 204)
				expectStatus(t, x.call(binary, "subscription_delete", q(map[string]any{"subscription_id": sid})), 204)
				expectStatus(t, x.call(binary, "queue_purge", q(map[string]any{})), 204)
				expectStatus(t, x.call(binary, "queue_delete", q(map[string]any{})), 204)

				wcExpect(t, w.call(binary, "queue_get", map[string]any{"queue_name": "q"}), 200, meta)
				st := wcBody(t, w.call(binary, "queue_get_stats", map[string]any{"queue_name": "q"}), 200)["messages"].(map[string]any)
				if st["total"] != 4.0 || st["claimed"] != 2.0 {
					t.Fatalf("owner's stats after the intruder: %v", st)
				}
				if got := wcMessages(t, wcBody(t, w.call(binary, "claim_get", map[string]any{"queue_name": "q", "claim_id": cid}), 200)["messages"]); !jsonEqual(got, ids[:2]) {
					t.Fatalf("owner's claim after the intruder: %v", got)
				}
				expectStatus(t, w.call(binary, "subscription_get", map[string]any{"queue_name": "q", "subscription_id": sid}), 200)
			})
		}
	})
}

// TestWSMsgpackOutOfRangeNumbers: a stored body holding a number past
// float64 (1e400, accepted as Python reads it: inf) goes to MessagePack
// clients as ±inf, in answers and notifications, instead of failing them.
func TestWSMsgpackOutOfRangeNumbers(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	w := wsDial(t, n, c.Project)
	expectStatus(t, w.call(true, "subscription_create", map[string]any{"queue_name": "q"}), 201)
	c.post("/v2/queues/q/messages", Raw(`{"messages":[{"body":[1e400,-1e400,1.5]}]}`)).expect(t, 201)
	inf := func(where string, body any) {
		t.Helper()
		b, _ := body.([]any)
		if len(b) != 3 || !math.IsInf(b[0].(float64), 1) || !math.IsInf(b[1].(float64), -1) || b[2] != 1.5 {
			t.Fatalf("%s: body %v", where, body)
		}
	}
	inf("notification", w.notification(true)["body"])
	listed := wcBody(t, w.call(true, "message_list", map[string]any{"queue_name": "q"}), 200)["messages"].([]any)
	if len(listed) != 1 {
		t.Fatalf("listed %v", listed)
	}
	inf("message_list", listed[0].(map[string]any)["body"])
	id := listed[0].(map[string]any)["id"]
	inf("message_get", wcBody(t, w.call(true, "message_get", map[string]any{"queue_name": "q", "message_id": id}), 200)["messages"].(map[string]any)["body"])
	// JSON clients get the number as it was sent.
	w.send(false, map[string]any{"action": "message_get", "headers": w.headers(), "body": map[string]any{"queue_name": "q", "message_id": id}})
	_, data, err := w.c.ReadMessage()
	if err != nil || !strings.Contains(string(data), `"body":[1e400,-1e400,1.5]`) {
		t.Fatalf("JSON message_get: %v %s", err, data)
	}
}

// TestWSHostileMsgpackFrames: MessagePack frames whose headers claim
// billions of elements, or that nest a million arrays deep within the
// frame limit, are refused with a 400 instead of exhausting the node's
// memory or stack (either killed the process), and the socket carries on.
func TestWSHostileMsgpackFrames(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	w := wsDial(t, n, c.Project)
	deep := make([]byte, 1<<20) // the default frame limit
	for i := range deep {
		deep[i] = 0x91 // an array of one element: the next
	}
	deep[len(deep)-1] = 0xc0
	for name, frame := range map[string][]byte{
		"array32 header": {0xdd, 0xff, 0xff, 0xff, 0xff},
		"map32 header":   {0xdf, 0xff, 0xff, 0xff, 0xff},
		"str32 header":   {0xdb, 0xff, 0xff, 0xff, 0xff},
		"nested arrays":  deep,
	} {
		t.Run(name, func(t *testing.T) {
			m := w.rawAnswer(true, frame)
			if e, _ := wcBody(t, m, 400)["error"].(string); !strings.HasPrefix(e, "Can't decode binary (MessagePack) request. ") || !jsonEqual(m["request"], wcNoEcho) {
				t.Fatalf("answer %v", m)
			}
		})
	}
	expectStatus(t, w.call(true, "queue_list", nil), 200)
}

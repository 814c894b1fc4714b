package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/heraldmq/herald/cmd/herald/server"
)

// WebSocket transport (contract §4; checklist items 66-71) and Herald's
// streams, through a real gorilla client against a real node.

// wsClient is one WebSocket connection speaking for one project.
type wsClient struct {
	t       testing.TB
	c       *websocket.Conn
	project string
	client  string
}

func wsDial(t testing.TB, n *node, project string) *wsClient {
	t.Helper()
	url := "ws" + strings.TrimPrefix(n.URL, "http") + "/ws"
	c, res, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, res)
	}
	t.Cleanup(func() { c.Close() })
	return &wsClient{t: t, c: c, project: project, client: newID()}
}

func (w *wsClient) headers() map[string]any {
	return map[string]any{"Client-ID": w.client, "X-Project-ID": w.project}
}

// raw sends one frame and reads frames until an answer (a frame with
// "request") arrives; notifications read meanwhile are returned too.
func (w *wsClient) raw(mt int, data []byte) (map[string]any, []map[string]any) {
	w.t.Helper()
	if err := w.c.WriteMessage(mt, data); err != nil {
		w.t.Fatalf("write: %v", err)
	}
	var pushed []map[string]any
	for {
		m := w.read()
		if _, ok := m["request"]; ok {
			return m, pushed
		}
		pushed = append(pushed, m)
	}
}

// read reads one frame (JSON or MessagePack) within 10 s.
func (w *wsClient) read() map[string]any {
	w.t.Helper()
	w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	mt, data, err := w.c.ReadMessage()
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if mt == websocket.BinaryMessage {
		if err := msgpack.Unmarshal(data, &m); err != nil {
			w.t.Fatalf("frame is not a MessagePack map: %v", err)
		}
		return normalize(m).(map[string]any)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		w.t.Fatalf("frame is not a JSON object: %v: %q", err, data)
	}
	return m
}

// normalize makes MessagePack-decoded values look like encoding/json's.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64, int, uint:
		var f float64
		fmt.Sscan(fmt.Sprint(x), &f)
		return f
	}
	return v
}

// do sends action with body as JSON (binary=false) or MessagePack.
func (w *wsClient) do(binary bool, action string, body map[string]any) map[string]any {
	w.t.Helper()
	req := map[string]any{"action": action, "headers": w.headers()}
	if body != nil {
		req["body"] = body
	}
	if binary {
		b, err := msgpack.Marshal(req)
		if err != nil {
			w.t.Fatal(err)
		}
		m, _ := w.raw(websocket.BinaryMessage, b)
		return m
	}
	b, _ := json.Marshal(req)
	m, _ := w.raw(websocket.TextMessage, b)
	return m
}

func status(t testing.TB, m map[string]any) int {
	t.Helper()
	h, _ := m["headers"].(map[string]any)
	s, ok := h["status"].(float64)
	if !ok {
		t.Fatalf("answer without status: %v", m)
	}
	return int(s)
}

func expectStatus(t testing.TB, m map[string]any, want int) map[string]any {
	t.Helper()
	if got := status(t, m); got != want {
		t.Fatalf("status %d, want %d: %v", got, want, m)
	}
	return m
}

func TestWSProtocolErrors(t *testing.T) {
	n := startNode(t, nodeOptions{})
	w := wsDial(t, n, "p-"+newID()[:8])
	for _, tc := range []struct {
		name string
		mt   int
		data []byte
		want string
	}{
		{"bom only", websocket.TextMessage, []byte("\ufeff"), "Can't decode text (JSON) request."},
		{"bad msgpack", websocket.BinaryMessage, []byte{0xc1}, "Can't decode binary (MessagePack) request."},
		{"number", websocket.TextMessage, []byte("123"), "Unexpected body type. Expected dict or dict like."},
		{"unknown action", websocket.TextMessage, []byte(`{"action":"queue_glorify","headers":{},"body":{}}`), "queue_glorify is not a valid action"},
		{"no action", websocket.TextMessage, []byte(`{"headers":{},"body":{}}`), "None is not a valid action"},
		{"no Client-ID", websocket.TextMessage, []byte(`{"action":"queue_list","headers":{"X-Project-ID":"p"}}`), "Schema validation failed."},
		{"limit string", websocket.TextMessage, []byte(`{"action":"queue_list","headers":{"X-Project-ID":"p","Client-ID":"x"},"body":{"limit":"5"}}`), "Schema validation failed."},
		{"no body", websocket.TextMessage, []byte(`{"action":"queue_get","headers":{"X-Project-ID":"p","Client-ID":"x"}}`), "Schema validation failed."},
		{"schema-only action", websocket.TextMessage, []byte(`{"action":"pool_list","headers":{"X-Project-ID":"p","Client-ID":"x"},"body":{}}`), "pool_list is not a valid action"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := w.raw(tc.mt, tc.data)
			expectStatus(t, m, 400)
			if e, _ := m["body"].(map[string]any)["error"].(string); !strings.Contains(e, tc.want) {
				t.Fatalf("error %q, want %q", e, tc.want)
			}
			if req := m["request"].(map[string]any); req["api"] != "v2" {
				t.Fatalf("request echo %v", req)
			}
		})
	}
}

func TestWSActionsJSONAndMsgpack(t *testing.T) {
	n := startNode(t, nodeOptions{})
	for _, binary := range []bool{false, true} {
		t.Run(fmt.Sprintf("msgpack=%v", binary), func(t *testing.T) {
			w := wsDial(t, n, "p-"+newID()[:8])
			m := expectStatus(t, w.do(binary, "queue_list", nil), 200)
			want := map[string]any{"queues": []any{}}
			if !jsonEqual(m["body"], want) {
				t.Fatalf("fresh queue_list %v", m["body"])
			}
			if req := m["request"].(map[string]any); req["action"] != "queue_list" || !jsonEqual(req["body"], map[string]any{}) {
				t.Fatalf("echo %v", req)
			}
			if b := expectStatus(t, w.do(binary, "queue_create", map[string]any{"queue_name": "my_queue"}), 201)["body"]; b != "Queue my_queue created." {
				t.Fatalf("queue_create body %v", b)
			}
			expectStatus(t, w.do(binary, "queue_create", map[string]any{"queue_name": "my_queue"}), 204)
			expectStatus(t, w.do(binary, "queue_get_stats", map[string]any{"queue_name": "missing"}), 404)
			claim := expectStatus(t, w.do(binary, "claim_create", map[string]any{"queue_name": "my_queue"}), 204)
			if !jsonEqual(claim["body"], map[string]any{"claim_id": nil}) {
				t.Fatalf("empty claim %v", claim["body"])
			}
			post := expectStatus(t, w.do(binary, "message_post", map[string]any{"queue_name": "my_queue",
				"messages": []any{map[string]any{"body": map[string]any{"k": "v"}, "ttl": 120}}}), 201)
			ids := post["body"].(map[string]any)["message_ids"].([]any)
			if len(ids) != 1 {
				t.Fatalf("message_post %v", post["body"])
			}
			got := expectStatus(t, w.do(binary, "message_get", map[string]any{"queue_name": "my_queue", "message_id": ids[0]}), 200)
			msg := got["body"].(map[string]any)["messages"].(map[string]any)
			if msg["id"] != ids[0] || msg["claim_id"] != nil || msg["ttl"] != 120.0 || !jsonEqual(msg["body"], map[string]any{"k": "v"}) {
				t.Fatalf("message_get %v", msg)
			}
			c := expectStatus(t, w.do(binary, "claim_create", map[string]any{"queue_name": "my_queue", "ttl": 60}), 201)["body"].(map[string]any)
			cid := c["claim_id"].(string)
			expectStatus(t, w.do(binary, "claim_get", map[string]any{"queue_name": "my_queue", "claim_id": cid}), 200)
			expectStatus(t, w.do(binary, "message_delete", map[string]any{"queue_name": "my_queue", "message_id": ids[0]}), 403)
			expectStatus(t, w.do(binary, "message_delete", map[string]any{"queue_name": "my_queue", "message_id": ids[0], "claim_id": cid}), 204)
			st := expectStatus(t, w.do(binary, "queue_get_stats", map[string]any{"queue_name": "my_queue"}), 200)
			if !jsonEqual(st["body"], map[string]any{"messages": map[string]any{"claimed": 0, "free": 0, "total": 0}}) {
				t.Fatalf("stats %v", st["body"])
			}
			expectStatus(t, w.do(binary, "queue_delete", map[string]any{"queue_name": "my_queue"}), 204)
			auth := map[string]any{"action": "authenticate", "headers": map[string]any{"X-Project-ID": w.project, "X-Auth-Token": "any"}}
			m, _ = w.raw(websocket.TextMessage, mustJSON(auth))
			if !jsonEqual(expectStatus(t, m, 200)["body"], map[string]any{"message": "Authentified."}) {
				t.Fatalf("authenticate %v", m)
			}
		})
	}
}

// TestWSNotifications: N sockets subscribed to one queue, M messages
// posted over REST; each socket receives all M in order, exactly once,
// in the encoding of its subscription request; the subscriptions go with
// their sockets.
func TestWSNotifications(t *testing.T) {
	const sockets, messages = 5, 40
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	var ws []*wsClient
	for i := 0; i < sockets; i++ {
		w := wsDial(t, n, c.Project)
		r := expectStatus(t, w.do(i%2 == 1, "subscription_create", map[string]any{"queue_name": "q", "ttl": 3600}), 201)
		if msg := r["body"].(map[string]any)["message"]; msg != "Subscription q created." {
			t.Fatalf("subscription_create %v", r["body"])
		}
		ws = append(ws, w)
	}
	subs := c.get("/v2/queues/q/subscriptions?limit=20").expect(t, 200).JSON(t)["subscriptions"].([]any)
	if len(subs) != sockets {
		t.Fatalf("%d subscriptions, want %d", len(subs), sockets)
	}
	if sub := subs[0].(map[string]any)["subscriber"].(string); !strings.HasPrefix(sub, "http://") || strings.Count(sub, "/") != 3 {
		t.Fatalf("subscriber %q is not http://host:port/<connection-id>", sub)
	}
	for i := 0; i < messages; i += 4 {
		c.postMessages("q", msg(i, "ttl", 120), msg(i+1), msg(i+2), msg(i+3))
	}
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < messages; j++ {
				w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
				mt, data, err := w.c.ReadMessage()
				if err != nil {
					t.Errorf("socket %d: after %d notifications: %v", i, j, err)
					return
				}
				if wantBinary := i%2 == 1; (mt == websocket.BinaryMessage) != wantBinary {
					t.Errorf("socket %d: frame type %d", i, mt)
					return
				}
				var m map[string]any
				if mt == websocket.BinaryMessage {
					msgpack.Unmarshal(data, &m)
					m = normalize(m).(map[string]any)
				} else {
					json.Unmarshal(data, &m)
				}
				if m["Message_Type"] != "Notification" || m["queue_name"] != "q" || m["body"] != float64(j) {
					t.Errorf("socket %d notification %d: %v", i, j, m)
					return
				}
				if _, envelope := m["request"]; envelope {
					t.Errorf("socket %d: notification wrapped in an answer: %v", i, m)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Nothing more arrives: exactly once.
	for i, w := range ws {
		w.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, data, err := w.c.ReadMessage(); err == nil {
			t.Fatalf("socket %d got an extra frame %s", i, data)
		}
	}
	for _, w := range ws {
		w.c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		subs := c.get("/v2/queues/q/subscriptions").expect(t, 200).JSON(t)["subscriptions"].([]any)
		if len(subs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions left after their sockets closed", len(subs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWSStreamResume: a socket streams a queue, disconnects mid-stream,
// more messages are posted, and a new socket resuming from the last id it
// saw gets exactly the missed ones, then live ones.
func TestWSStreamResume(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	c.postMessages("q", msg("before"))
	w := wsDial(t, n, c.Project)
	expectStatus(t, w.do(false, "stream_subscribe", map[string]any{"queue_name": "q"}), 200)
	for i := 0; i < 5; i++ {
		c.postMessages("q", msg(i))
	}
	var last string
	for i := 0; i < 3; i++ {
		m := w.read()
		if m["body"] != float64(i) {
			t.Fatalf("stream frame %d: %v", i, m)
		}
		last = m["message_id"].(string)
	}
	w.c.Close()
	for i := 5; i < 8; i++ {
		c.postMessages("q", msg(i))
	}
	w2 := wsDial(t, n, c.Project)
	_, pushed := w2.raw(websocket.TextMessage, mustJSON(map[string]any{"action": "stream_subscribe",
		"headers": w2.headers(), "body": map[string]any{"queue_name": "q", "after": last}}))
	if len(pushed) != 0 {
		t.Fatalf("frames before the answer: %v", pushed)
	}
	got := []float64{}
	for i := 3; i < 8; i++ {
		got = append(got, w2.read()["body"].(float64))
	}
	c.postMessages("q", msg(8), msg(9))
	got = append(got, w2.read()["body"].(float64), w2.read()["body"].(float64))
	if !jsonEqual(got, []float64{3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("resumed stream %v", got)
	}
	w2.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, data, err := w2.c.ReadMessage(); err == nil {
		t.Fatalf("extra frame %s", data)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestWSSlowConsumerIsClosed: a socket that never reads is closed once
// its bounded queue is full, and the node's memory does not follow what
// is posted.
func TestWSSlowConsumerIsClosed(t *testing.T) {
	n := startNode(t, nodeOptions{Configure: func(c *server.Config) { c.WS.SendQueue = 16 }})
	c := newClient(t, n)
	w := wsDial(t, n, c.Project)
	expectStatus(t, w.do(false, "subscription_create", map[string]any{"queue_name": "q"}), 201)
	// Do not read while far more is posted than the socket's queue and
	// the kernel's buffers hold (about 25 MiB of notifications).
	big := strings.Repeat("x", 32<<10)
	for i := 0; i < 200; i++ {
		c.postMessages("q", msg(big), msg(big), msg(big), msg(big))
	}
	// Reading now drains what was on the wire, then the close frame.
	w.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	frames := 0
	var err error
	for err == nil {
		_, _, err = w.c.ReadMessage()
		frames++
	}
	ce, ok := err.(*websocket.CloseError)
	if !ok || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("after %d frames: %v, want close 1008", frames, err)
	}
	if frames > 800 {
		t.Fatalf("%d of 800 notifications arrived: nothing was held back", frames)
	}
	t.Logf("the socket got %d of 800 notifications (about 25 MiB) before its close frame", frames-1)
	deadline := time.Now().Add(10 * time.Second)
	for n.srv.WS().Open() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow consumer's connection is still open")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWSOversizedFrame(t *testing.T) {
	n := startNode(t, nodeOptions{Configure: func(c *server.Config) { c.WS.MaxFrame = 1024 }})
	w := wsDial(t, n, "p")
	w.c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte(" "), 4096))
	w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := w.c.ReadMessage()
	ce, ok := err.(*websocket.CloseError)
	if !ok || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized frame: %v, want close 1009", err)
	}
}

// TestWSAnswerBeforeOwnNotification: a subscribed socket that posts gets
// its answer first, then the notification the post caused (clients such
// as python-zaqarclient read the next frame as the answer).
func TestWSAnswerBeforeOwnNotification(t *testing.T) {
	n := startNode(t, nodeOptions{})
	w := wsDial(t, n, "p-"+newID()[:8])
	expectStatus(t, w.do(false, "subscription_create", map[string]any{"queue_name": "q"}), 201)
	for i := 0; i < 20; i++ {
		body := map[string]any{"queue_name": "q", "messages": []any{map[string]any{"body": i}}}
		if err := w.c.WriteMessage(websocket.TextMessage, mustJSON(map[string]any{"action": "message_post", "headers": w.headers(), "body": body})); err != nil {
			t.Fatal(err)
		}
		if m := w.read(); status(t, m) != 201 {
			t.Fatalf("post %d: the next frame is %v, not the answer", i, m)
		}
		if m := w.read(); m["Message_Type"] != "Notification" || m["body"] != float64(i) {
			t.Fatalf("post %d: then %v, not its notification", i, m)
		}
	}
}

// TestWSConnectionLimit: past the process's limit, upgrades are refused
// with 503 until a connection closes.
func TestWSConnectionLimit(t *testing.T) {
	n := startNode(t, nodeOptions{Configure: func(c *server.Config) { c.WS.MaxConns = 2 }})
	url := "ws" + strings.TrimPrefix(n.URL, "http") + "/ws"
	a, b := wsDial(t, n, "p"), wsDial(t, n, "p")
	_, res, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil || res == nil || res.StatusCode != 503 {
		t.Fatalf("third connection: %v %v, want 503", err, res)
	}
	a.c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for n.srv.WS().Open() > 1 {
		if time.Now().After(deadline) {
			t.Fatal("a closed connection still counts")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := wsDial(t, n, "p")
	expectStatus(t, c.do(false, "queue_list", nil), 200)
	expectStatus(t, b.do(false, "queue_list", nil), 200)
}

// TestWSStreamLongBacklog: a backlog longer than the socket's queue goes
// out page by page as the client reads, in order, without closing the
// socket as a slow consumer.
func TestWSStreamLongBacklog(t *testing.T) {
	n := startNode(t, nodeOptions{Configure: func(c *server.Config) { c.WS.SendQueue = 16 }})
	c := newClient(t, n)
	var first string
	for i := 0; i < 300; i += 20 {
		batch := make([]map[string]any, 20)
		for j := range batch {
			batch[j] = msg(i + j)
		}
		ids := c.postMessages("q", batch...)
		if first == "" {
			first = ids[0]
		}
	}
	w := wsDial(t, n, c.Project)
	expectStatus(t, w.do(true, "stream_subscribe", map[string]any{"queue_name": "q", "after": first}), 200)
	for i := 1; i < 300; i++ {
		if m := w.read(); m["body"] != float64(i) {
			t.Fatalf("backlog frame %d: %v", i, m)
		}
	}
}

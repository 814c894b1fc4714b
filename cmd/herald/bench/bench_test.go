package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldmq/herald/cmd/herald/server"
)

// TestREST runs `herald bench --json` against a real Herald and reads
// the report the way a script would.
func TestREST(t *testing.T) {
	ctx := t.Context()
	srv, err := server.Start(ctx, server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Partitions: 4,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	var stdout, stderr bytes.Buffer
	code := Run(ctx, []string{"--json", "--url", "http://" + srv.Addr(),
		"--producers", "2", "--consumers", "2", "--observers", "1", "--messages-per-request", "2",
		"--queues", "2", "--warmup", "200ms", "--duration", "2s", "--clean"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, &stdout, &stderr)
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("--json printed %q: %v", &stdout, err)
	}
	checkReport(t, &rep, opPost, opClaim, opDelete, opList)
	if rep.Verify.Unconfirmed != 0 {
		t.Errorf("consumed messages whose post got no answer: %+v", rep.Verify)
	}
}

// checkReport asserts what every healthy run must show: each operation
// measured with successes and no errors, and a passed verification in
// which consumers got only messages of this run.
func checkReport(t *testing.T, rep *Report, ops ...string) {
	t.Helper()
	for _, op := range ops {
		o := rep.Ops[op]
		switch {
		case o == nil:
			t.Errorf("no figures for %s: %+v", op, rep.Ops)
		case o.Requests == 0 || o.ReqPerS <= 0:
			t.Errorf("%s: no successful request: %+v", op, o)
		case o.ErrorTotal != 0:
			t.Errorf("%s: errors %v", op, o.Errors)
		case o.LatencyMs.P50 <= 0 || o.LatencyMs.P50 > o.LatencyMs.P99 || o.LatencyMs.P99 > o.LatencyMs.Max:
			t.Errorf("%s: latency percentiles out of order: %+v", op, o.LatencyMs)
		}
	}
	v := rep.Verify
	if v == nil {
		t.Fatal("no verification in the report")
	}
	if !v.Passed || !rep.Passed || v.Duplicates != 0 || v.Unknown != 0 {
		t.Errorf("verification: %+v, failures %v", v, rep.Failures)
	}
	if v.Consumed == 0 || v.Consumed > v.Produced+v.Unconfirmed {
		t.Errorf("consumed %d of %d produced (%d unconfirmed)", v.Consumed, v.Produced, v.Unconfirmed)
	}
}

func TestWebSocket(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pipeline int
		delete   string
	}{
		{"sync each", 1, "each"},
		{"pipelined bulk", 4, "bulk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeZaqar()
			hs := httptest.NewServer(fake)
			defer hs.Close()
			cfg := testConfig("ws")
			cfg.WSURL = "ws" + strings.TrimPrefix(hs.URL, "http")
			cfg.WSPipeline, cfg.ConsumerDelete = tc.pipeline, tc.delete
			cfg.Observers = 1
			cfg.Clean = true
			rep, err := Execute(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep, opPost, opClaim, opDelete, opList)
			if n := fake.queueCount(); n != 0 {
				t.Errorf("--clean left %d queues", n)
			}
		})
	}
}

// TestVerifyCatchesDuplicates runs against a WebSocket server that hands
// claimed messages out again: the bench must say so and fail.
func TestVerifyCatchesDuplicates(t *testing.T) {
	fake := newFakeZaqar()
	fake.reclaim = true
	hs := httptest.NewServer(fake)
	defer hs.Close()
	cfg := testConfig("ws")
	cfg.WSURL = "ws" + strings.TrimPrefix(hs.URL, "http")
	cfg.Duration = 500 * time.Millisecond
	cfg.Consumers = 3
	rep, err := Execute(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed || rep.Verify.Passed || rep.Verify.Duplicates == 0 {
		t.Errorf("duplicates went unnoticed: %+v", rep.Verify)
	}
}

func TestVerify(t *testing.T) {
	at := time.Unix(1000, 0)
	posts := []*postLog{{run: "r", state: []postState{postAcked, postAcked, postPending, postRejected}}}
	for _, tc := range []struct {
		name                        string
		got                         []delivery
		duplicates, unknown, unconf int64
	}{
		{"clean", []delivery{{id: "a", token: "r-0-0", at: at, deleted: true}, {id: "b", token: "r-0-1", at: at}}, 0, 0, 0},
		{"redelivered after delete", []delivery{{id: "a", token: "r-0-0", at: at, deleted: true}, {id: "a", token: "r-0-0", at: at.Add(time.Hour)}}, 1, 0, 0},
		{"redelivered within the claim", []delivery{{id: "a", token: "r-0-0", at: at}, {id: "a", token: "r-0-0", at: at.Add(time.Second)}}, 1, 0, 0},
		{"redelivered after the claim expired", []delivery{{id: "a", token: "r-0-0", at: at}, {id: "a", token: "r-0-0", at: at.Add(2 * time.Minute)}}, 0, 0, 0},
		{"one token under two ids", []delivery{{id: "a", token: "r-0-0", at: at}, {id: "b", token: "r-0-0", at: at}}, 1, 0, 0},
		{"post without answer", []delivery{{id: "c", token: "r-0-2", at: at}}, 0, 0, 1},
		{"refused post", []delivery{{id: "d", token: "r-0-3", at: at}}, 0, 1, 0},
		{"other run, bad token, no token", []delivery{{id: "e", token: "x-0-0"}, {id: "f", token: "r-0-99"}, {id: "g"}}, 0, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := verify("r", posts, [][]delivery{tc.got}, time.Minute)
			if v.Produced != 2 || v.Duplicates != tc.duplicates || v.Unknown != tc.unknown || v.Unconfirmed != tc.unconf ||
				v.Passed != (tc.duplicates == 0 && tc.unknown == 0) {
				t.Errorf("got %+v, want duplicates %d unknown %d unconfirmed %d", v, tc.duplicates, tc.unknown, tc.unconf)
			}
		})
	}
}

func TestMessageBody(t *testing.T) {
	for _, size := range []int{0, 10, 28, 29, 30, 38, 39, 256, 4096} {
		b := messageBody("0badcafe", 3, 12345, size)
		if !json.Valid(b) || bodyToken(b) != "0badcafe-3-12345" {
			t.Errorf("size %d: body %s", size, b)
		}
		if least := len(`{"token":"0badcafe-3-12345"}`); len(b) != max(size, least) {
			t.Errorf("size %d: body of %d bytes", size, len(b))
		}
	}
}

func TestNATS(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Skip("nats-server is not on PATH (Debian package nats-server); skipping the nats target")
	}
	url := startNATS(t, bin)
	for _, del := range []string{"each", "bulk"} {
		t.Run(del, func(t *testing.T) {
			cfg := testConfig("nats")
			cfg.NATSURL = url
			cfg.ConsumerDelete = del
			cfg.MessagesPerRequest = 3
			cfg.Clean = true
			rep, err := Execute(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep, opPost, opClaim, opDelete)
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--target", "kafka"},
		{"--target", "nats", "--observers", "1"},
		{"--producers", "0", "--consumers", "0"},
		{"--consumer-delete", "some"},
		{"--queue-prefix", "no/slash"},
		{"--url", "ftp://x"},
		{"--duration", "0s"},
		{"--no-such-flag"},
		{"extra"},
	} {
		var out, errOut bytes.Buffer
		if code := Run(t.Context(), args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, &errOut)
		}
	}
	var out, errOut bytes.Buffer
	if code := Run(t.Context(), []string{"--help"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "msgs_per_s") {
		t.Errorf("--help: exit %d, text %q", code, &errOut)
	}
}

func testConfig(target string) Config {
	cfg := DefaultConfig()
	cfg.Target = target
	cfg.Producers, cfg.Consumers = 2, 2
	cfg.Queues = 2
	cfg.Duration = 1500 * time.Millisecond
	cfg.Timeout = 5 * time.Second
	return cfg
}

func startNATS(t *testing.T, bin string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(bin, "-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", port)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	url := "nats://127.0.0.1:" + port
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			_, err = js.AccountInfo(t.Context())
			nc.Close()
			if err == nil {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server on %s not ready: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fakeZaqar is the part of Zaqar's WebSocket API the bench uses, in
// memory: queue_create/delete, message_post/list/delete(_many) and
// claim_create, answered in Zaqar's envelope. After every post it also
// sends a notification frame, which clients must skip.
type fakeZaqar struct {
	up      websocket.Upgrader
	reclaim bool // bug on purpose: claims do not hide messages

	mu     sync.Mutex
	seq    int
	queues map[string][]*fakeMsg
}

type fakeMsg struct {
	id, claim string
	body      json.RawMessage
}

func newFakeZaqar() *fakeZaqar { return &fakeZaqar{queues: map[string][]*fakeMsg{}} }

func (f *fakeZaqar) queueCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queues)
}

func (f *fakeZaqar) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := f.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		var req struct {
			Action  string                     `json:"action"`
			Headers map[string]string          `json:"headers"`
			Body    map[string]json.RawMessage `json:"body"`
		}
		status, body := 400, any(map[string]string{"error": "Can't decode text (JSON) request."})
		if json.Unmarshal(data, &req) == nil {
			status, body = f.handle(req.Action, req.Body)
		}
		if req.Action == "message_post" {
			c.WriteMessage(websocket.TextMessage, []byte(`{"Message_Type":"Notification","body":{}}`))
		}
		c.WriteJSON(map[string]any{
			"request": map[string]any{"action": req.Action, "headers": req.Headers, "body": req.Body, "api": "v2"},
			"body":    body, "headers": map[string]int{"status": status},
		})
	}
}

func (f *fakeZaqar) handle(action string, b map[string]json.RawMessage) (int, any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var q string
	json.Unmarshal(b["queue_name"], &q)
	msgs := f.queues[q]
	render := func(m *fakeMsg) map[string]any {
		return map[string]any{"id": m.id, "claim_id": m.claim, "ttl": 3600, "age": 0, "body": m.body}
	}
	switch action {
	case "queue_create":
		f.queues[q] = msgs
		return 201, "Queue " + q + " created."
	case "queue_delete":
		delete(f.queues, q)
		return 204, "Queue " + q + " removed."
	case "message_post":
		var in []struct {
			Body json.RawMessage `json:"body"`
		}
		json.Unmarshal(b["messages"], &in)
		ids := []string{}
		for _, m := range in {
			f.seq++
			id := fmt.Sprintf("%024x", f.seq)
			f.queues[q] = append(f.queues[q], &fakeMsg{id: id, body: m.Body})
			ids = append(ids, id)
		}
		return 201, map[string]any{"message_ids": ids}
	case "claim_create":
		var limit int
		json.Unmarshal(b["limit"], &limit)
		f.seq++
		cid := fmt.Sprintf("c%023x", f.seq)
		out := []any{}
		for _, m := range msgs {
			if len(out) == limit {
				break
			}
			if m.claim == "" {
				if !f.reclaim {
					m.claim = cid
				}
				out = append(out, render(m))
			}
		}
		if len(out) == 0 {
			return 204, map[string]any{"claim_id": nil}
		}
		return 201, map[string]any{"claim_id": cid, "messages": out}
	case "message_delete", "message_delete_many":
		var ids []string
		if json.Unmarshal(b["message_ids"], &ids) != nil || action == "message_delete" {
			var id string
			json.Unmarshal(b["message_id"], &id)
			ids = []string{id}
		}
		f.queues[q] = slicesDeleteIDs(msgs, ids)
		return 204, map[string]any{}
	case "message_list":
		out := []any{}
		for _, m := range msgs[:min(len(msgs), listLimit)] {
			out = append(out, render(m))
		}
		return 200, map[string]any{"messages": out}
	}
	return 400, map[string]string{"error": action + " is not a valid action"}
}

func slicesDeleteIDs(msgs []*fakeMsg, ids []string) []*fakeMsg {
	out := msgs[:0]
	for _, m := range msgs {
		keep := true
		for _, id := range ids {
			keep = keep && m.id != id
		}
		if keep {
			out = append(out, m)
		}
	}
	return out
}

// TestStopsWhenUnanswered points the bench at a WebSocket server that
// reads frames and never answers, like Zaqar given an authenticate frame
// without auth: the run must still end, by --duration plus --timeout,
// with the requests counted as timeouts.
func TestStopsWhenUnanswered(t *testing.T) {
	var up websocket.Upgrader
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer hs.Close()
	cfg := testConfig("ws")
	cfg.WSURL = "ws" + strings.TrimPrefix(hs.URL, "http")
	cfg.Setup = false
	cfg.WSPipeline = 3
	cfg.Duration, cfg.Timeout = 500*time.Millisecond, 300*time.Millisecond
	start := time.Now()
	rep, err := Execute(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > cfg.Duration+2*cfg.Timeout+time.Second {
		t.Errorf("the run took %s", took)
	}
	if rep.Passed || rep.Ops[opPost].Errors["timeout"] == 0 || rep.Ops[opClaim].Errors["timeout"] == 0 {
		t.Errorf("want timeouts and a failed run: %+v %+v %v", rep.Ops[opPost], rep.Ops[opClaim], rep.Failures)
	}
}

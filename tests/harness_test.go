package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/heraldmq/herald/cmd/herald/server"
)

// clock is the injectable clock of an in-process node: real time plus an
// offset that tests advance instead of sleeping.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the node's clock forward by d.
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// node is a Herald server started in-process on a loopback listener.
type node struct {
	URL   string
	Clock *clock
	Dir   string
	srv   *server.Server
}

// nodeOptions choose the log backend of a node.
type nodeOptions struct {
	Brokers []string // empty: embedded Pebble log
	Dir     string   // empty: a new temp dir
	Topic   string
	// Configure, if set, adjusts the server configuration before start.
	Configure func(*server.Config)
}

func startNode(t testing.TB, o nodeOptions) *node {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ck := &clock{}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("HERALD_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	cfg := server.Config{
		DataDir: o.Dir, Listen: "127.0.0.1:0", Brokers: o.Brokers, Topic: o.Topic,
		Partitions: 8, Logger: logger, Now: ck.Now,
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	n := &node{URL: "http://" + srv.Addr(), Clock: ck, Dir: o.Dir, srv: srv}
	t.Cleanup(func() { n.Stop(t) })
	return n
}

// Stop shuts the node down (idempotent).
func (n *node) Stop(t testing.TB) {
	if n.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	n.srv = nil
}

// startKafka starts a kfake broker on loopback for the test.
func startKafka(t testing.TB) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// backends runs fn once per log backend against a fresh node.
func backends(t *testing.T, fn func(t *testing.T, n *node)) { configuredBackends(t, nil, fn) }

// configuredBackends is backends with configure (if not nil) adjusting
// each node's configuration before it starts.
func configuredBackends(t *testing.T, configure func(*server.Config), fn func(t *testing.T, n *node)) {
	t.Run("pebble", func(t *testing.T) { fn(t, startNode(t, nodeOptions{Configure: configure})) })
	t.Run("kafka", func(t *testing.T) {
		fn(t, startNode(t, nodeOptions{Brokers: startKafka(t), Topic: "herald-test", Configure: configure}))
	})
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// client talks to a node as one Zaqar client: one project, one Client-ID.
type client struct {
	t        testing.TB
	n        *node
	Project  string
	ClientID string
}

// newClient returns a client of a new, unique project.
func newClient(t testing.TB, n *node) *client {
	return &client{t: t, n: n, Project: "proj-" + newID()[:12], ClientID: newID()}
}

// as returns a client of the same project with another Client-ID.
func (c *client) as(clientID string) *client {
	cc := *c
	cc.ClientID = clientID
	return &cc
}

// inProject returns a client of another project.
func (c *client) inProject(project string) *client {
	cc := *c
	cc.Project = project
	return &cc
}

// resp is a response with its body read.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body (numbers as float64 unless into a typed value).
func (r *resp) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %q", err, r.Body)
	}
	return m
}

// Raw is a request body sent byte for byte.
type Raw string

// Chunked is a request body sent without Content-Length (net/http then
// uses the chunked transfer coding).
type Chunked string

// req describes one request beyond method and path.
type req struct {
	Body    any               // nil: no body; Raw: as is; else JSON-encoded
	Headers map[string]string // extra headers; a "" value deletes the header
}

func (c *client) do(method, path string, r req) *resp {
	c.t.Helper()
	var body io.Reader
	switch b := r.Body.(type) {
	case nil:
	case Raw:
		body = strings.NewReader(string(b))
	case Chunked:
		body = io.MultiReader(strings.NewReader(string(b))) // hides the length
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			c.t.Fatalf("encode body: %v", err)
		}
		body = bytes.NewReader(enc)
	}
	hr, err := http.NewRequest(method, c.n.URL+path, body)
	if err != nil {
		c.t.Fatalf("request: %v", err)
	}
	hr.Header.Set("Client-ID", c.ClientID)
	hr.Header.Set("X-Project-ID", c.Project)
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.Headers {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return &resp{Status: res.StatusCode, Header: res.Header, Body: b}
}

func (c *client) get(path string) *resp        { c.t.Helper(); return c.do("GET", path, req{}) }
func (c *client) del(path string) *resp        { c.t.Helper(); return c.do("DELETE", path, req{}) }
func (c *client) put(path string, b any) *resp { c.t.Helper(); return c.do("PUT", path, req{Body: b}) }
func (c *client) post(path string, b any) *resp {
	c.t.Helper()
	return c.do("POST", path, req{Body: b})
}
func (c *client) patch(path string, b any) *resp {
	c.t.Helper()
	return c.do("PATCH", path, req{Body: b})
}

// expect fails the test unless r has status want.
func (r *resp) expect(t testing.TB, want int) *resp {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d; body %s", r.Status, want, r.Body)
	}
	return r
}

// expectError checks an error status and that the description contains
// substr (title when the body has no description).
func (r *resp) expectError(t testing.TB, status int, substr string) {
	t.Helper()
	r.expect(t, status)
	m := r.JSON(t)
	text, _ := m["description"].(string)
	if text == "" {
		text, _ = m["title"].(string)
	}
	if !strings.Contains(text, substr) {
		t.Fatalf("error %q does not contain %q (body %s)", text, substr, r.Body)
	}
}

// postMessages posts bodies to queue and returns the new ids.
func (c *client) postMessages(queue string, msgs ...map[string]any) []string {
	c.t.Helper()
	r := c.post("/v2/queues/"+queue+"/messages", map[string]any{"messages": msgs})
	r.expect(c.t, 201)
	var out struct{ Resources []string }
	if err := json.Unmarshal(r.Body, &out); err != nil {
		c.t.Fatal(err)
	}
	ids := make([]string, len(out.Resources))
	for i, h := range out.Resources {
		ids[i] = h[strings.LastIndex(h, "/")+1:]
	}
	return ids
}

// msg is a message body for postMessages.
func msg(body any, kv ...any) map[string]any {
	m := map[string]any{"body": body}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// keys returns the sorted keys of m.
func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func num(v any) int64 {
	f, ok := v.(float64)
	if !ok {
		panic(fmt.Sprintf("not a number: %#v", v))
	}
	return int64(f)
}

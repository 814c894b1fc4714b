package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldmq/herald/api"
	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// The tests of this package run the notifier over real parts: an embedded
// Pebble log, a projection replica, the API service that writes to it, and
// receivers on loopback (httptest servers, an SMTP server). Only time is
// faked: the retry schedule sleeps on a fakeClock.

const (
	testProject = "notifier-tests"
	testClient  = "9f4b8ad2c1e04c1bb1e6f3a2d7c5e8f1"
	// waitLimit bounds every wait for something asynchronous.
	waitLimit = 10 * time.Second
)

// testLogger discards logs unless HERALD_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("HERALD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// fakeClock is a notifier Clock whose Now is real time (subscriptions
// expire by it) and whose After records the pause asked for and fires
// after wait (real time, at once when 0), so retry schedules run without
// being waited out.
type fakeClock struct {
	mu     sync.Mutex
	pauses []time.Duration
	wait   time.Duration
	// onAfter, when set, is called with the number of pauses so far
	// before After returns.
	onAfter func(n int)
}

func (c *fakeClock) Now() time.Time { return time.Now() }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.pauses = append(c.pauses, d)
	wait, onAfter, n := c.wait, c.onAfter, len(c.pauses)
	c.mu.Unlock()
	if onAfter != nil {
		onAfter(n)
	}
	if wait > 0 {
		return time.After(wait)
	}
	ch := make(chan time.Time, 1)
	ch <- time.Now()
	return ch
}

// Pauses returns the pauses asked for so far.
func (c *fakeClock) Pauses() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.pauses)
}

func (c *fakeClock) setWait(d time.Duration) {
	c.mu.Lock()
	c.wait = d
	c.mu.Unlock()
}

// harness is a log, a replica and an API service over them.
type harness struct {
	t      *testing.T
	ctx    context.Context
	log    hlog.Log
	r      *projection.Replica
	feed   *projection.Feed
	svc    *api.Service
	clock  *fakeClock
	caller api.Caller
}

func newHarness(t *testing.T, cfg api.Config) *harness {
	t.Helper()
	dir := t.TempDir()
	l, err := hlog.OpenPebble(hlog.PebbleOptions{Dir: filepath.Join(dir, "log"), Partitions: 4, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	feed := projection.NewFeed()
	ctx := context.Background()
	r, err := projection.StartReplica(ctx, l, filepath.Join(dir, "projection"), testLogger(), feed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	cfg.Logger, cfg.Feed = testLogger(), feed
	svc, err := api.New(cfg, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	return &harness{t: t, ctx: ctx, log: l, r: r, feed: feed, svc: svc, clock: &fakeClock{},
		caller: api.Caller{Project: testProject, ClientID: testClient}}
}

// start starts a notifier on the harness's replica; unset fields of cfg
// get test values (fake clock, short report interval). It is closed when
// the test ends, before the receivers and the replica.
func (h *harness) start(cfg Config) *Notifier {
	h.t.Helper()
	cfg.Replica, cfg.Feed = h.r, h.feed
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = h.clock
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.ReportInterval == 0 {
		cfg.ReportInterval = 20 * time.Millisecond
	}
	if cfg.Node == "" {
		cfg.Node = "test-node"
	}
	n, err := Start(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { n.Close() })
	return n
}

// createQueue creates queue with metadata given as JSON.
func (h *harness) createQueue(queue, metadata string) {
	h.t.Helper()
	meta, e := api.ParseObject([]byte(metadata))
	if e != nil {
		h.t.Fatalf("metadata %s: %v", metadata, e)
	}
	if _, err := h.svc.CreateQueue(h.ctx, h.caller, queue, meta); err != nil {
		h.t.Fatal(err)
	}
}

// subscribe subscribes subscriber to queue with options given as JSON
// ("" for none), the way a REST request body would.
func (h *harness) subscribe(queue, subscriber, options string) api.NewSubscription {
	h.t.Helper()
	body := fmt.Sprintf(`{"subscriber": %q}`, subscriber)
	if options != "" {
		body = fmt.Sprintf(`{"subscriber": %q, "options": %s}`, subscriber, options)
	}
	doc, e := api.ParseObject([]byte(body))
	if e != nil {
		h.t.Fatalf("subscription %s: %v", body, e)
	}
	made, err := h.svc.CreateSubscription(h.ctx, h.caller, queue, doc, false)
	if err != nil {
		h.t.Fatalf("subscribe %s: %v", body, err)
	}
	return made
}

// update PATCHes a subscription with a JSON document.
func (h *harness) update(queue, id, doc string) {
	h.t.Helper()
	m, e := api.ParseObject([]byte(doc))
	if e != nil {
		h.t.Fatal(e)
	}
	if err := h.svc.UpdateSubscription(h.ctx, h.caller, queue, id, m); err != nil {
		h.t.Fatal(err)
	}
}

// confirm PUTs {"confirmed": confirmed} to a subscription.
func (h *harness) confirm(queue, id string, confirmed bool) {
	h.t.Helper()
	if err := h.svc.ConfirmSubscription(h.ctx, h.caller, queue, id, map[string]any{"confirmed": confirmed}); err != nil {
		h.t.Fatal(err)
	}
}

// post posts messages, each given as {"body": ..., "ttl": ..., "delay":
// ...} JSON, and returns their ids.
func (h *harness) post(queue string, messages ...string) []string {
	h.t.Helper()
	raw, e := api.ParseJSON([]byte("[" + joinJSON(messages) + "]"))
	if e != nil {
		h.t.Fatal(e)
	}
	msgs, e := api.ParseNewMessages(raw)
	if e != nil {
		h.t.Fatal(e)
	}
	meta, err := h.svc.PrepareQueue(h.ctx, h.caller, queue)
	if err != nil {
		h.t.Fatal(err)
	}
	ids, err := h.svc.PostMessages(h.ctx, h.caller, queue, meta, msgs, api.PostOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return ids
}

// postBodies posts one message per body (JSON), default ttl.
func (h *harness) postBodies(queue string, bodies ...string) []string {
	h.t.Helper()
	msgs := make([]string, len(bodies))
	for i, b := range bodies {
		msgs[i] = `{"body": ` + b + `}`
	}
	return h.post(queue, msgs...)
}

func joinJSON(items []string) string {
	out := ""
	for i, s := range items {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

// deliveryStatus is the "delivery" object of a subscription GET.
type deliveryStatus struct {
	State               string  `json:"state"`
	Delivered           int64   `json:"delivered"`
	Dropped             int64   `json:"dropped"`
	ConsecutiveFailures int     `json:"consecutive_failures"`
	LastDelivered       *string `json:"last_delivered"`
	LastDeliveredAt     *string `json:"last_delivered_at"`
	LastError           *string `json:"last_error"`
	LastErrorAt         *string `json:"last_error_at"`
}

// subscriptionJSON is a subscription as GET renders it.
func (h *harness) subscriptionJSON(queue, id string) map[string]any {
	h.t.Helper()
	sub, err := h.svc.GetSubscription(h.ctx, h.caller, queue, id)
	if err != nil {
		h.t.Fatal(err)
	}
	b, err := json.Marshal(api.SubscriptionJSON(sub, h.svc.Now()))
	if err != nil {
		h.t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// status returns the delivery status a subscription GET shows.
func (h *harness) status(queue, id string) deliveryStatus {
	h.t.Helper()
	b, _ := json.Marshal(h.subscriptionJSON(queue, id)["delivery"])
	var st deliveryStatus
	if err := json.Unmarshal(b, &st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

func (st deliveryStatus) String() string {
	s := func(p *string) string {
		if p == nil {
			return "null"
		}
		return *p
	}
	return fmt.Sprintf("{state %s delivered %d dropped %d failures %d last %s error %q}",
		st.State, st.Delivered, st.Dropped, st.ConsecutiveFailures, s(st.LastDelivered), s(st.LastError))
}

// eventually polls cond until it holds, failing the test after waitLimit
// with what describe says of the state then.
func eventually(t *testing.T, what string, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			if describe != nil {
				msg = ": " + describe()
			}
			t.Fatalf("timed out waiting for %s%s", what, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hit is one request a receiver got.
type hit struct {
	Header http.Header
	Body   []byte
	// Status is what was answered; 0 when the sender gave up first.
	Status int
}

func (x hit) delivery() string { return x.Header.Get(HeaderDelivery) }

// receiver is a webhook endpoint on loopback that records its requests
// and answers with what respond says (204 when nil). respond gets the
// request's number (from 0) and may block; it should return when the
// request's context ends.
type receiver struct {
	srv *httptest.Server
	URL string

	mu       sync.Mutex
	hits     []hit
	respond  func(r *http.Request, n int) int
	inflight int
	peak     int
	// location is the Location of redirects answered.
	location string
}

func newReceiver(t *testing.T, respond func(r *http.Request, n int) int) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(rc)
	rc.URL = rc.srv.URL + "/hook"
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	n := len(rc.hits)
	rc.hits = append(rc.hits, hit{Header: r.Header.Clone(), Body: body})
	rc.inflight++
	rc.peak = max(rc.peak, rc.inflight)
	respond := rc.respond
	rc.mu.Unlock()
	status := http.StatusNoContent
	if respond != nil {
		status = respond(r, n)
	}
	rc.mu.Lock()
	rc.inflight--
	if r.Context().Err() == nil {
		rc.hits[n].Status = status
	}
	location := rc.location
	rc.mu.Unlock()
	if status >= 300 && status < 400 && location != "" {
		w.Header().Set("Location", location)
	}
	w.WriteHeader(status)
}

func (rc *receiver) setRespond(f func(r *http.Request, n int) int) {
	rc.mu.Lock()
	rc.respond = f
	rc.mu.Unlock()
}

// all returns every request so far.
func (rc *receiver) all() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.hits)
}

// accepted returns the requests answered with a 2xx.
func (rc *receiver) accepted() []hit {
	var out []hit
	for _, x := range rc.all() {
		if x.Status >= 200 && x.Status < 300 {
			out = append(out, x)
		}
	}
	return out
}

// acceptedIDs returns the X-Herald-Delivery ids of the accepted requests,
// each once, in order of first acceptance.
func (rc *receiver) acceptedIDs() []string {
	var out []string
	for _, x := range rc.accepted() {
		if !slices.Contains(out, x.delivery()) {
			out = append(out, x.delivery())
		}
	}
	return out
}

// hasAll reports whether every id in ids was accepted.
func (rc *receiver) hasAll(ids []string) bool {
	got := rc.acceptedIDs()
	for _, id := range ids {
		if !slices.Contains(got, id) {
			return false
		}
	}
	return true
}

func (rc *receiver) peakInflight() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.peak
}

func (rc *receiver) describe() string {
	hits := rc.all()
	s := fmt.Sprintf("%d requests:", len(hits))
	for _, x := range hits {
		s += fmt.Sprintf(" %s→%d", x.delivery(), x.Status)
	}
	return s
}

// decode decodes a JSON body into a generic value.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return m
}

// newDownReceiver returns a receiver that answers 503 until up is called,
// then 204.
func newDownReceiver(t *testing.T) (rc *receiver, up func()) {
	t.Helper()
	var isUp atomic.Bool
	rc = newReceiver(t, func(r *http.Request, n int) int {
		if isUp.Load() {
			return http.StatusNoContent
		}
		return http.StatusServiceUnavailable
	})
	return rc, func() { isUp.Store(true) }
}

// checkHangHoldsOnlyItsSlot hangs the delivery of one message, then posts
// later messages one post each: all of them are delivered while the first
// still hangs, and the subscriber never has more than concurrency
// requests at once.
func checkHangHoldsOnlyItsSlot(t *testing.T, concurrency, later int) {
	t.Helper()
	h := newHarness(t, api.Config{})
	release := make(chan struct{})
	defer close(release)
	var rc *receiver
	rc = newReceiver(t, func(r *http.Request, n int) int {
		rc.mu.Lock()
		body := string(rc.hits[n].Body)
		rc.mu.Unlock()
		if strings.Contains(body, `"hang"`) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return http.StatusNoContent
	})
	h.start(Config{Concurrency: concurrency, Timeout: time.Minute})
	sub := h.subscribe("q", rc.URL, "")
	h.postBodies("q", `"hang"`)
	eventually(t, "the hanging request", func() bool { return len(rc.all()) == 1 }, rc.describe)
	var ids []string
	for i := range later {
		ids = append(ids, h.postBodies("q", strconv.Itoa(i))...)
	}
	eventually(t, "the later messages", func() bool { return rc.hasAll(ids) }, func() string {
		return rc.describe() + " " + h.status("q", sub.ID).String()
	})
	if p := rc.peakInflight(); p > concurrency {
		t.Errorf("%d concurrent requests to one subscriber, limit %d", p, concurrency)
	}
}

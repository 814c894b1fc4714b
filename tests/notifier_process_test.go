package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/notifier"
)

// The tests in this file run the notifier of real herald processes against
// a webhook receiver in the test process: deliveries survive kill -9, and
// on Kafka they are shared out among nodes and move when a node stops.

// hookReq is one webhook request as the receiver saw it.
type hookReq struct {
	Node   string // from the User-Agent
	Sub    string // X-Herald-Subscription
	ID     string // X-Herald-Delivery
	Queue  string // the payload's queue_name
	Header http.Header
	Body   []byte
	// Start is when the request reached the handler, End when the handler
	// answered or saw the sender give up.
	Start, End time.Time
	// Status is the status answered; 0 when the sender gave up first.
	Status int
}

func (r *hookReq) accepted() bool { return r.Status == http.StatusNoContent }

// Receiver modes once its accept budget is spent.
const (
	hookAccept int32 = iota // 204
	hookFail                // 503: retried by the policy
	hookHang                // no answer until the sender gives up
)

// hookReceiver is a webhook endpoint that records every request.
type hookReceiver struct {
	URL    string
	mode   atomic.Int32
	budget atomic.Int64 // requests accepted whatever the mode, before it applies
	delay  atomic.Int64 // ns an accepted request takes
	quit   chan struct{}

	mu   sync.Mutex
	reqs []hookReq
}

func startHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	h := &hookReceiver{quit: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(h.serve))
	h.URL = srv.URL + "/hook"
	// Registered before the processes are started, so it runs after they
	// are killed.
	t.Cleanup(func() { close(h.quit); srv.Close() })
	return h
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	rec := hookReq{Start: time.Now(), Header: r.Header.Clone(),
		Sub: r.Header.Get(notifier.HeaderSubscription), ID: r.Header.Get(notifier.HeaderDelivery)}
	if ua := r.UserAgent(); strings.HasPrefix(ua, "Herald-Notifier (") && strings.HasSuffix(ua, ")") {
		rec.Node = ua[len("Herald-Notifier (") : len(ua)-1]
	}
	rec.Body, _ = io.ReadAll(r.Body)
	var pl struct {
		Queue string `json:"queue_name"`
	}
	json.Unmarshal(rec.Body, &pl)
	rec.Queue = pl.Queue
	status := http.StatusNoContent
	wait := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			status = 0
		case <-h.quit:
			status = 0
		}
	}
	if mode := h.mode.Load(); mode != hookAccept && h.budget.Add(-1) < 0 {
		switch mode {
		case hookFail:
			status = http.StatusServiceUnavailable
		case hookHang:
			wait(time.Hour)
		}
	} else if d := h.delay.Load(); d > 0 {
		wait(time.Duration(d))
	}
	rec.End = time.Now()
	rec.Status = status
	h.mu.Lock()
	h.reqs = append(h.reqs, rec)
	h.mu.Unlock()
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
}

// requests returns the requests answered so far.
func (h *hookReceiver) requests() []hookReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookReq(nil), h.reqs...)
}

// acceptedByID returns the accepted requests by delivery id.
func acceptedByID(reqs []hookReq) map[string][]hookReq {
	out := map[string][]hookReq{}
	for _, r := range reqs {
		if r.accepted() {
			out[r.ID] = append(out[r.ID], r)
		}
	}
	return out
}

// waitDelivered waits until every id has an accepted request.
func (h *hookReceiver) waitDelivered(t *testing.T, ids []string, within time.Duration, what string) map[string][]hookReq {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		acc := acceptedByID(h.requests())
		var missing []string
		for _, id := range ids {
			if len(acc[id]) == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return acc
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d messages not delivered within %v, e.g. %v", what, len(missing), len(ids), within, missing[:min(5, len(missing))])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// posted is a message as posted.
type posted struct {
	Queue string
	Body  any // as it reads back from JSON
}

// postNumbered posts n messages to queue in requests of at most 20, with
// bodies naming tag and their number, and records them in into.
func postNumbered(t *testing.T, c *client, queue, tag string, n int, into map[string]posted) []string {
	t.Helper()
	var ids []string
	for i := 0; i < n; i += 20 {
		var msgs []map[string]any
		for j := i; j < min(n, i+20); j++ {
			msgs = append(msgs, msg(map[string]any{"tag": tag, "seq": j, "text": fmt.Sprintf("%s message %d of %s", tag, j, queue)}, "ttl", 600))
		}
		got := c.postMessages(queue, msgs...)
		if len(got) != len(msgs) {
			t.Fatalf("posted %d messages, got %d ids", len(msgs), len(got))
		}
		for k, id := range got {
			if _, dup := into[id]; dup {
				t.Fatalf("message id %s returned twice", id)
			}
			into[id] = posted{Queue: queue, Body: sbDecoded(t, msgs[k]["body"])}
		}
		ids = append(ids, got...)
	}
	return ids
}

// checkDeliveries checks every accepted delivery against what was posted
// (and, when node is set, that node sent it) and returns how many were
// repeats.
func checkDeliveries(t *testing.T, acc map[string][]hookReq, msgs map[string]posted, secrets map[string]string, node string) (dups int) {
	t.Helper()
	for id, rs := range acc {
		want, ok := msgs[id]
		if !ok {
			t.Fatalf("delivery of unknown id %s", id)
		}
		for _, r := range rs {
			checkPayload(t, r, want, secrets)
			if node != "" && r.Node != node {
				t.Fatalf("delivery %s: User-Agent %q", id, r.Header.Get("User-Agent"))
			}
		}
		dups += len(rs) - 1
	}
	return dups
}

func checkPayload(t *testing.T, r hookReq, want posted, secrets map[string]string) {
	t.Helper()
	var pl map[string]any
	if err := json.Unmarshal(r.Body, &pl); err != nil {
		t.Fatalf("delivery %s: body %q is not JSON: %v", r.ID, r.Body, err)
	}
	exp := map[string]any{"body": want.Body, "ttl": 600.0, "Message_Type": "Notification", "queue_name": want.Queue}
	if !reflect.DeepEqual(pl, exp) {
		t.Fatalf("delivery %s by %s: payload %s, want %v", r.ID, r.Node, r.Body, exp)
	}
	secret, ok := secrets[r.Sub]
	if !ok {
		t.Fatalf("delivery %s: unknown subscription %q", r.ID, r.Sub)
	}
	ts, err := strconv.ParseInt(r.Header.Get(notifier.HeaderTimestamp), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		t.Fatalf("delivery %s: timestamp %q", r.ID, r.Header.Get(notifier.HeaderTimestamp))
	}
	if !notifier.Verify(secret, ts, r.Body, r.Header.Get(notifier.HeaderSignature)) {
		t.Fatalf("delivery %s: bad signature %q", r.ID, r.Header.Get(notifier.HeaderSignature))
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("delivery %s: Content-Type %q", r.ID, ct)
	}
}

// subscribeHook subscribes the receiver to queue with a short retry
// policy and returns the subscription id and signing secret.
func subscribeHook(t *testing.T, c *client, queue, url string) (string, string) {
	t.Helper()
	m := c.post(sbPath(queue), map[string]any{"subscriber": url, "ttl": 3600, "options": map[string]any{
		"_retry_policy": map[string]any{"minimum_delay": 1, "maximum_delay": 11}}}).expect(t, 201).JSON(t)
	id, _ := m["subscription_id"].(string)
	secret, _ := m["signing_secret"].(string)
	if id == "" || secret == "" {
		t.Fatalf("subscription POST body %v", m)
	}
	return id, secret
}

// deliveryStatus returns the delivery status of a subscription.
func deliveryStatus(t *testing.T, c *client, queue, id string) map[string]any {
	t.Helper()
	d, ok := c.get(sbItemPath(queue, id)).expect(t, 200).JSON(t)["delivery"].(map[string]any)
	if !ok {
		t.Fatalf("subscription %s has no delivery status", id)
	}
	return d
}

// TestNotifierCrashResumesDeliveries: a node killed with deliveries
// pending (some made, some failing) delivers, once restarted on the same
// data, every message it had not reported done — none is skipped, those
// reported done are not sent again, the others may be sent twice — and the
// subscription's delivery status counts each message once.
func TestNotifierCrashResumesDeliveries(t *testing.T) {
	const total, acceptFirst = 200, 100
	recv := startHookReceiver(t)
	// The first acceptFirst requests are accepted, every later one fails
	// (and is retried, 1s apart at the most for the first 3 retries).
	recv.mode.Store(hookFail)
	recv.budget.Store(acceptFirst)

	args := []string{"--data", t.TempDir(), "--node-name", "crashy", "--notifier-timeout", "5s"}
	p := startProc(t, args...)
	c := clientOf(t, p)
	const q = "crashq"
	c.put("/v2/queues/"+q, nil).expect(t, 201)
	subID, secret := subscribeHook(t, c, q, recv.URL)
	secrets := map[string]string{subID: secret}

	msgs := map[string]posted{}
	ids := postNumbered(t, c, q, "crash", total, msgs)

	// Wait until the notifier has run out of accepted requests and
	// reported a failure: by then it has reported every batch it finished
	// (the failure is reported by the batch that follows them).
	var st map[string]any
	for deadline := time.Now().Add(20 * time.Second); ; {
		st = deliveryStatus(t, c, q, subID)
		if num(st["consecutive_failures"]) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failure reported within 20s; status %v; %d requests received; log:\n%s", st, len(recv.requests()), p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	reported := int(num(st["delivered"]))
	p.kill()
	before := acceptedByID(recv.requests())
	t.Logf("at kill -9: %d of %d messages delivered (%d reported done), %d requests in all", len(before), total, reported, len(recv.requests()))
	if len(before) >= total || len(before) > acceptFirst {
		t.Fatalf("%d messages delivered before the kill, want fewer than %d", len(before), total)
	}
	if reported <= 0 || reported > len(before) {
		t.Fatalf("%d deliveries reported done before the kill, %d made", reported, len(before))
	}
	if st["state"] != "active" || st["last_delivered"] != ids[reported-1] {
		t.Fatalf("status before the kill %v, want active with last_delivered %s", st, ids[reported-1])
	}
	for _, id := range ids[:reported] {
		if len(before[id]) == 0 {
			t.Fatalf("message %s reported done but not delivered", id)
		}
	}

	recv.mode.Store(hookAccept)
	restarted := time.Now()
	p = startProc(t, args...)
	c = &client{t: t, n: &node{URL: p.URL}, Project: c.Project, ClientID: c.ClientID}
	acc := recv.waitDelivered(t, ids, 30*time.Second, "after restart")
	t.Logf("all %d messages delivered %v after the restart began", total, time.Since(restarted).Round(time.Millisecond))

	dups := checkDeliveries(t, acc, msgs, secrets, "crashy")
	for _, id := range ids[:reported] {
		if n := len(acc[id]); n != 1 {
			t.Fatalf("message %s, reported done before the kill, was delivered %d times", id, n)
		}
	}
	t.Logf("%d messages posted, %d delivered, %d delivered twice (made but not reported done before the kill)", total, len(acc), dups)

	for deadline := time.Now().Add(10 * time.Second); ; {
		st = deliveryStatus(t, c, q, subID)
		if num(st["delivered"]) == total && num(st["consecutive_failures"]) == 0 && st["last_delivered"] == ids[total-1] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery status %v, want %d delivered through %s", st, total, ids[total-1])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st["state"] != "active" || num(st["dropped"]) != 0 || st["last_delivered_at"] == nil {
		t.Fatalf("delivery status %v", st)
	}
	p.stop(t)
}

// interval is when a node was delivering for a partition.
type interval struct {
	node       string
	start, end time.Time
}

// checkNoOverlap fails if, for some partition, two nodes had requests in
// flight at once.
func checkNoOverlap(t *testing.T, reqs []hookReq, partOf map[string]int32) {
	t.Helper()
	by := map[int32][]interval{}
	for _, r := range reqs {
		p, ok := partOf[r.Queue]
		if !ok {
			t.Fatalf("request %s for unknown queue %q", r.ID, r.Queue)
		}
		by[p] = append(by[p], interval{r.Node, r.Start, r.End})
	}
	for p, ivs := range by {
		sort.Slice(ivs, func(i, j int) bool { return ivs[i].start.Before(ivs[j].start) })
		// Sweep: the latest end of each node's requests started so far.
		last := map[string]interval{}
		for _, iv := range ivs {
			for node, prev := range last {
				if node != iv.node && prev.end.After(iv.start) {
					t.Fatalf("partition %d: %s delivered from %s to %s while %s delivered from %s",
						p, prev.node, prev.start.Format("15:04:05.000000"), prev.end.Format("15:04:05.000000"),
						iv.node, iv.start.Format("15:04:05.000000"))
				}
			}
			if iv.end.After(last[iv.node].end) {
				last[iv.node] = iv
			}
		}
	}
}

// nodesByPartition returns which nodes made the accepted deliveries of ids.
func nodesByPartition(acc map[string][]hookReq, ids []string, partOf map[string]int32) map[int32]map[string]int {
	out := map[int32]map[string]int{}
	for _, id := range ids {
		for _, r := range acc[id] {
			p := partOf[r.Queue]
			if out[p] == nil {
				out[p] = map[string]int{}
			}
			out[p][r.Node]++
		}
	}
	return out
}

// ownedFromLogs returns the partitions a process's notifier owns by its
// log (assigned and not revoked since), for diagnostics.
func ownedFromLogs(p *proc) []int32 {
	owned := map[int32]bool{}
	for _, line := range strings.Split(p.output(), "\n") {
		var rec struct {
			Msg        string  `json:"msg"`
			Partitions []int32 `json:"partitions"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		for _, x := range rec.Partitions {
			switch rec.Msg {
			case "notifier: partitions assigned":
				owned[x] = true
			case "notifier: partitions revoked":
				delete(owned, x)
			}
		}
	}
	var out []int32
	for x := range owned {
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// TestNotifierTwoNodesKafka: two nodes on one Kafka log share out the
// partitions' deliveries, never delivering for one partition at the same
// time; when one stops (gracefully, then with kill -9) the other delivers
// for its partitions, including what it left pending.
func TestNotifierTwoNodesKafka(t *testing.T) {
	const parts = 8
	recv := startHookReceiver(t)
	recv.delay.Store(int64(2 * time.Millisecond))
	brokers := strings.Join(startKafka(t), ",")
	topic := "herald-notifier-" + newID()[:8]
	nodeArgs := func(name, dir string) []string {
		return []string{"--brokers", brokers, "--topic", topic, "--partitions", strconv.Itoa(parts), "--data", dir,
			"--node-name", name, "--notifier-session-timeout", "6s", "--notifier-timeout", "5s"}
	}
	dirA := t.TempDir()
	began := time.Now()
	a := startProc(t, nodeArgs("A", dirA)...)
	b := startProc(t, nodeArgs("B", t.TempDir())...)
	ca := clientOf(t, a)
	cb := &client{t: t, n: &node{URL: b.URL}, Project: ca.Project, ClientID: ca.ClientID}

	// One queue on each partition, each with a subscription.
	queueOf := map[int32]string{}
	partOf := map[string]int32{}
	for i := 0; len(queueOf) < parts; i++ {
		name := fmt.Sprintf("q%d", i)
		if p := hlog.PartitionFor(hlog.QueueKey(ca.Project, name), parts); queueOf[p] == "" {
			queueOf[p], partOf[name] = name, p
		}
	}
	var queues []string
	for p := int32(0); p < parts; p++ {
		queues = append(queues, queueOf[p])
	}
	secrets := map[string]string{}
	subOf := map[string]string{}
	for i, q := range queues {
		c := []*client{ca, cb}[i%2]
		c.put("/v2/queues/"+q, nil).expect(t, 201)
		id, secret := subscribeHook(t, c, q, recv.URL)
		secrets[id], subOf[q] = secret, id
	}
	msgs := map[string]posted{}

	// settle posts a message per queue, round after round, until two
	// rounds in a row are delivered by both nodes, each partition by the
	// same node in both (one round may catch a move half done); it
	// returns each partition's node.
	settle := func(what string, c *client) map[int32]string {
		t.Helper()
		since := time.Now()
		var prev map[int32]string
		for round := 0; ; round++ {
			var ids []string
			for _, q := range queues {
				ids = append(ids, postNumbered(t, c, q, fmt.Sprintf("%s-round-%d", what, round), 1, msgs)...)
			}
			acc := recv.waitDelivered(t, ids, 30*time.Second, what)
			owner := map[int32]string{}
			nodes := map[string]bool{}
			settled := true
			for p, ns := range nodesByPartition(acc, ids, partOf) {
				settled = settled && len(ns) == 1
				for n := range ns {
					owner[p] = n
					nodes[n] = true
				}
			}
			settled = settled && len(nodes) == 2
			if settled && reflect.DeepEqual(owner, prev) {
				t.Logf("%s: both nodes deliver after %d rounds, %v: %v (by their logs A owns %v, B %v)", what, round+1,
					time.Since(since).Round(time.Millisecond), owner, ownedFromLogs(a), ownedFromLogs(b))
				return owner
			}
			if time.Since(since) > 30*time.Second {
				t.Fatalf("%s: ownership not shared within 30s: last round %v; A owns %v, B owns %v by their logs",
					what, nodesByPartition(acc, ids, partOf), ownedFromLogs(a), ownedFromLogs(b))
			}
			if settled {
				prev = owner
			} else {
				prev = nil
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	partitionsOf := func(owner map[int32]string, node string) []int32 {
		var out []int32
		for p, n := range owner {
			if n == node {
				out = append(out, p)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	// firstTakeover returns how long after since node first started a
	// request for a partition of ps.
	firstTakeover := func(reqs []hookReq, node string, ps []int32, since time.Time) time.Duration {
		first := time.Duration(-1)
		for _, r := range reqs {
			if r.Node == node && r.Start.After(since) && containsPart(ps, partOf[r.Queue]) {
				if d := r.Start.Sub(since); first < 0 || d < first {
					first = d
				}
			}
		}
		return first
	}

	// Both nodes deliver, each for its own partitions.
	owner := settle("join", ca)
	var phase1 []string
	for _, q := range queues {
		phase1 = append(phase1, postNumbered(t, ca, q, "phase1-A", 10, msgs)...)
		phase1 = append(phase1, postNumbered(t, cb, q, "phase1-B", 10, msgs)...)
	}
	acc := recv.waitDelivered(t, phase1, 30*time.Second, "two nodes")
	byPart := nodesByPartition(acc, phase1, partOf)
	nodes := map[string]int{}
	for _, ns := range byPart {
		for n, k := range ns {
			nodes[n] += k
		}
	}
	if nodes["A"] == 0 || nodes["B"] == 0 {
		t.Fatalf("deliveries by node %v, want both", nodes)
	}
	for p, ns := range byPart {
		if len(ns) != 1 || ns[owner[p]] == 0 {
			t.Fatalf("partition %d delivered by %v, want %s alone (the group did not change)", p, ns, owner[p])
		}
	}
	t.Logf("%d messages posted through both nodes, delivered by node %v; by partition %v", len(phase1), nodes, byPart)
	checkNoOverlap(t, recv.requests(), partOf)

	// A stops gracefully while delivering; B delivers what A left
	// pending and, from then on, for every partition.
	ownedByA := partitionsOf(owner, "A")
	recv.delay.Store(int64(100 * time.Millisecond))
	var phase2 []string
	for _, q := range queues {
		phase2 = append(phase2, postNumbered(t, cb, q, "phase2", 20, msgs)...)
	}
	waitStarted(t, recv, "A", phase2, 10*time.Second)
	stopping := time.Now()
	a.stop(t)
	stopped := time.Now()
	recv.delay.Store(int64(2 * time.Millisecond))
	var phase3 []string
	for _, q := range queues {
		phase3 = append(phase3, postNumbered(t, cb, q, "phase3", 10, msgs)...)
	}
	acc = recv.waitDelivered(t, append(append([]string(nil), phase2...), phase3...), 30*time.Second, "after A stopped")
	reqs := recv.requests()
	for _, id := range phase3 {
		for _, r := range acc[id] {
			if r.Node != "B" {
				t.Fatalf("message %s, posted after A stopped, delivered by %q", id, r.Node)
			}
		}
	}
	for _, r := range reqs {
		if r.Node == "A" && r.Start.After(stopped) {
			t.Fatalf("A delivered %s after it stopped", r.ID)
		}
	}
	p2 := nodesByPartition(acc, phase2, partOf)
	p3 := nodesByPartition(acc, phase3, partOf)
	for _, p := range ownedByA {
		if p3[p]["B"] == 0 {
			t.Fatalf("partition %d, A's, not delivered by B after A stopped: %v", p, p3[p])
		}
	}
	// A leaves the group as it stops: B need not wait for A's session to
	// time out (the 6s a killed node keeps its partitions, below).
	handover := firstTakeover(reqs, "B", ownedByA, stopping)
	if handover < 0 || handover > 6*time.Second {
		t.Fatalf("B delivered for A's partitions %v after the stop began, want within the session timeout", handover)
	}
	abandoned := 0
	for _, r := range reqs {
		if r.Node == "A" && r.Status == 0 {
			abandoned++
		}
	}
	t.Logf("A stopped in %v while delivering (%d requests abandoned); B took A's partitions %v over %v after the stop began; %d+%d messages delivered, by partition %v then %v",
		stopped.Sub(stopping).Round(time.Millisecond), abandoned, ownedByA, handover.Round(time.Millisecond),
		len(phase2), len(phase3), p2, p3)
	checkNoOverlap(t, reqs, partOf)

	// A restarts and takes partitions back, then is killed while
	// delivering: B takes them over once A's session times out.
	a = startProc(t, nodeArgs("A", dirA)...)
	owner = settle("rejoin", cb)
	ownedByA = partitionsOf(owner, "A")
	recv.delay.Store(int64(100 * time.Millisecond))
	var phase4 []string
	for _, q := range queues {
		phase4 = append(phase4, postNumbered(t, cb, q, "phase4", 20, msgs)...)
	}
	waitStarted(t, recv, "A", phase4, 10*time.Second)
	killed := time.Now()
	t.Logf("killing A, which owns %v by its log (B %v)", ownedFromLogs(a), ownedFromLogs(b))
	a.kill()
	recv.delay.Store(int64(2 * time.Millisecond))
	var phase5 []string
	for _, q := range queues {
		phase5 = append(phase5, postNumbered(t, cb, q, "phase5", 5, msgs)...)
	}
	acc = recv.waitDelivered(t, append(append([]string(nil), phase4...), phase5...), 30*time.Second, "after A was killed")
	reqs = recv.requests()
	for _, p := range ownedByA {
		if p5 := nodesByPartition(acc, phase5, partOf)[p]; p5["B"] == 0 || len(p5) != 1 {
			t.Fatalf("partition %d, A's, delivered by %v after A was killed, want B", p, p5)
		}
	}
	takeover := firstTakeover(reqs, "B", ownedByA, killed)
	if takeover < 0 || takeover > 15*time.Second {
		t.Fatalf("B delivered for A's partitions %v after A was killed, want within about the session timeout (6s)", takeover)
	}
	t.Logf("A killed while delivering; B took A's partitions %v over %v later; %d+%d messages delivered", ownedByA,
		takeover.Round(time.Millisecond), len(phase4), len(phase5))
	checkNoOverlap(t, reqs, partOf)

	// Every message was delivered, as posted.
	all := make([]string, 0, len(msgs))
	for id := range msgs {
		all = append(all, id)
	}
	acc = recv.waitDelivered(t, all, time.Second, "in all")
	dups := checkDeliveries(t, acc, msgs, secrets, "")
	t.Logf("in all %d messages posted, %d delivered, %d duplicate deliveries, %d requests; %v", len(msgs), len(acc), dups, len(reqs), time.Since(began).Round(time.Millisecond))

	// The delivery status, which both nodes reported to, counts each
	// message once: what a node reported done was not delivered again.
	perQueue := map[string]int64{}
	for _, m := range msgs {
		perQueue[m.Queue]++
	}
	for _, q := range queues {
		for deadline := time.Now().Add(10 * time.Second); ; {
			st := deliveryStatus(t, cb, q, subOf[q])
			if num(st["delivered"]) == perQueue[q] && num(st["consecutive_failures"]) == 0 {
				if st["state"] != "active" || num(st["dropped"]) != 0 {
					t.Fatalf("queue %s: delivery status %v", q, st)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("queue %s: delivery status %v, want %d delivered", q, st, perQueue[q])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	b.stop(t)
}

func containsPart(ps []int32, p int32) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// waitStarted waits until node has started delivering one of ids.
func waitStarted(t *testing.T, recv *hookReceiver, node string, ids []string, within time.Duration) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	deadline := time.Now().Add(within)
	for {
		// Requests are recorded once answered: A is still busy with the
		// others.
		for _, r := range recv.requests() {
			if r.Node == node && want[r.ID] {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s delivered none of %d messages within %v", node, len(ids), within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

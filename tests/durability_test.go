package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldmq/herald/projection"
)

// TestCrashKeepsAcknowledgedMessages kills the server with SIGKILL while
// clients post, restarts it on the same data directory and checks that
// every acknowledged message is there exactly once.
func TestCrashKeepsAcknowledgedMessages(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "--data", dir)
	c := clientOf(t, p)
	const queue = "crash"

	var mu sync.Mutex
	acked := map[string]string{} // id → body
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := 1 + i%3
				var msgs []map[string]any
				for k := range n {
					msgs = append(msgs, map[string]any{"body": fmt.Sprintf("w%d-i%d-k%d", w, i, k)})
				}
				b, _ := json.Marshal(map[string]any{"messages": msgs})
				req, _ := http.NewRequest("POST", p.URL+"/v2/queues/"+queue+"/messages", bytes.NewReader(b))
				req.Header.Set("Client-ID", c.ClientID)
				req.Header.Set("X-Project-ID", c.Project)
				req.Header.Set("Content-Type", "application/json")
				res, err := hc.Do(req)
				if err != nil {
					return // the server is gone
				}
				var out struct{ Resources []string }
				err = json.NewDecoder(res.Body).Decode(&out)
				res.Body.Close()
				if res.StatusCode != 201 || err != nil || len(out.Resources) != n {
					continue
				}
				mu.Lock()
				for k, href := range out.Resources {
					acked[href[strings.LastIndex(href, "/")+1:]] = msgs[k]["body"].(string)
				}
				mu.Unlock()
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 600 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d messages acknowledged before the deadline", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.kill() // while the writers are still posting
	close(stop)
	wg.Wait()

	p2 := startProc(t, "--data", dir)
	c2 := clientOf(t, p2)
	c2.Project, c2.ClientID = c.Project, c.ClientID
	seenIDs := map[string]bool{}
	seenBodies := map[string]bool{}
	path := "/v2/queues/" + queue + "/messages?echo=true&limit=20"
	for {
		r := c2.get(path).expect(t, 200)
		var page struct {
			Messages []struct{ ID, Body string }
			Links    []struct{ Href string }
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Messages) == 0 {
			break
		}
		for _, m := range page.Messages {
			if seenIDs[m.ID] || seenBodies[m.Body] {
				t.Fatalf("message %s (%s) listed twice", m.ID, m.Body)
			}
			seenIDs[m.ID], seenBodies[m.Body] = true, true
		}
		path = page.Links[0].Href
	}
	for id, body := range acked {
		if !seenIDs[id] || !seenBodies[body] {
			t.Errorf("acknowledged message %s (%s) lost", id, body)
		}
	}
	t.Logf("%d acknowledged, %d present after the crash", len(acked), len(seenIDs))
}

// workload drives a mix of every queue, message and claim operation.
func workload(t *testing.T, c *client) {
	for _, q := range []string{"alpha", "beta", "gamma"} {
		c.put("/v2/queues/"+q, map[string]any{"owner": q, "_default_message_ttl": 600}).expect(t, 201)
		ids := c.postMessages(q, msg(1), msg("two", "ttl", 120), msg(map[string]any{"three": 3}), msg([]any{4}), msg(nil))
		r := c.post("/v2/queues/"+q+"/claims?limit=2", map[string]any{"ttl": 90, "grace": 60}).expect(t, 201)
		cid := strings.TrimPrefix(r.Header.Get("Location"), "/v2/queues/"+q+"/claims/")
		c.do("PATCH", "/v2/queues/"+q+"/claims/"+cid, req{Body: map[string]any{"ttl": 120}}).expect(t, 204)
		c.del("/v2/queues/"+q+"/messages/"+ids[0]+"?claim_id="+cid).expect(t, 204)
		c.del("/v2/queues/"+q+"/messages?pop=1").expect(t, 200)
		c.do("PATCH", "/v2/queues/"+q, req{Body: []any{map[string]any{"op": "add", "path": "/metadata/k", "value": q}},
			Headers: map[string]string{"Content-Type": "application/openstack-messaging-v2.0-json-patch"}}).expect(t, 200)
	}
	c.del("/v2/queues/beta").expect(t, 204)
	c.post("/v2/queues/gamma/purge", map[string]any{"resource_types": []string{"messages"}}).expect(t, 204)
	c.inProject("other").postMessages("alpha", msg("elsewhere"))
}

// digestOf digests the projection in dir without changing it.
func digestOf(t *testing.T, dir string) string {
	t.Helper()
	s, err := projection.OpenStoreReadOnly(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, err := s.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRebuildFromLogGivesSameDigest deletes the projection and restarts:
// the state rebuilt from the log must be identical, every time.
func TestRebuildFromLogGivesSameDigest(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "--data", dir)
	c := clientOf(t, p)
	workload(t, c)
	before := c.get("/v2/queues/alpha/stats").expect(t, 200).Body
	p.stop(t)
	projDir := filepath.Join(dir, "projection")
	live := digestOf(t, projDir)

	for i := range 2 {
		if err := os.RemoveAll(projDir); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, "--data", dir)
		c2 := clientOf(t, p)
		c2.Project, c2.ClientID = c.Project, c.ClientID
		after := c2.get("/v2/queues/alpha/stats").expect(t, 200).Body
		if !bytes.Equal(stripAges(t, before), stripAges(t, after)) {
			t.Errorf("rebuild %d: stats %s, before %s", i, after, before)
		}
		p.stop(t)
		if got := digestOf(t, projDir); got != live {
			t.Fatalf("rebuild %d: digest %s, live projection had %s", i, got, live)
		}
	}
}

// stripAges removes the time-dependent "age" fields of a stats body.
func stripAges(t *testing.T, b []byte) []byte {
	var v map[string]map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"oldest", "newest"} {
		if m, ok := v["messages"][k].(map[string]any); ok {
			delete(m, "age")
		}
	}
	out, _ := json.Marshal(v)
	return out
}

// TestProcessOnKafka runs the binary against a Kafka broker: a second node
// with an empty projection rebuilds the first node's state from Kafka.
func TestProcessOnKafka(t *testing.T) {
	brokers := strings.Join(startKafka(t), ",")
	p := startProc(t, "--data", t.TempDir(), "--brokers", brokers, "--partitions", "4")
	c := clientOf(t, p)
	c.put("/v2/queues/k", nil).expect(t, 201)
	ids := c.postMessages("k", msg("a"), msg("b"), msg("c"))
	c.post("/v2/queues/k/claims?limit=1", map[string]any{}).expect(t, 201)
	p.stop(t)

	p2 := startProc(t, "--data", t.TempDir(), "--brokers", brokers, "--partitions", "4")
	c2 := clientOf(t, p2)
	c2.Project, c2.ClientID = c.Project, c.ClientID
	st := c2.get("/v2/queues/k/stats").expect(t, 200).JSON(t)["messages"].(map[string]any)
	if num(st["total"]) != 3 || num(st["claimed"]) != 1 {
		t.Fatalf("stats on the second node: %v", st)
	}
	c2.get("/v2/queues/k/messages/"+ids[2]).expect(t, 200)
	p2.stop(t)
}

package tests

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hsPage reads one page of a queue's history.
func hsPage(c *client, path string) (events []map[string]any, next string) {
	c.t.Helper()
	var page struct {
		Events []map[string]any    `json:"events"`
		Links  []map[string]string `json:"links"`
	}
	r := c.get(path).expect(c.t, 200)
	if err := json.Unmarshal(r.Body, &page); err != nil {
		c.t.Fatalf("history %s: %v", r.Body, err)
	}
	for _, l := range page.Links {
		if l["rel"] == "next" {
			next = l["href"]
		}
	}
	return page.Events, next
}

// hsAll follows a history's pages to the end.
func hsAll(c *client, path string) []map[string]any {
	c.t.Helper()
	var all []map[string]any
	for pages := 0; path != ""; pages++ {
		if pages > 100 {
			c.t.Fatal("history pages never end")
		}
		var events []map[string]any
		events, path = hsPage(c, path)
		all = append(all, events...)
	}
	return all
}

func hsTypes(events []map[string]any) []string {
	var out []string
	for _, e := range events {
		out = append(out, e["type"].(string))
	}
	return out
}

// TestHistoryPagesAndFilters reads a queue's history: every change in log
// order with its fields, page by page, filtered by type and time; other
// queues' events and other projects' stay out, and a deleted queue keeps
// its history.
func TestHistoryPagesAndFilters(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		c.put("/v2/queues/h", map[string]any{"k": "v"}).expect(t, 201)
		ids := c.postMessages("h", msg(map[string]any{"n": 1}, "ttl", 300), msg("two"))
		c.postMessages("other", msg("elsewhere")) // another queue, maybe the same partition
		n.Clock.Advance(time.Minute)
		mid := n.Clock.Now().UTC()
		c.del("/v2/queues/h/messages/"+ids[1]).expect(t, 204)
		c.post("/v2/queues/h/claims", map[string]any{"ttl": 60, "grace": 60}).expect(t, 201)
		sbCreate(c, "h", map[string]any{"subscriber": "http://127.0.0.1:9/hook", "ttl": 600})
		c.del("/v2/queues/h").expect(t, 204)

		want := []string{"queue.created", "messages.posted", "message.deleted", "claim.created", "subscription.created", "queue.deleted"}
		all := hsAll(c, "/v2/queues/h/history?limit=2")
		if got := hsTypes(all); !reflect.DeepEqual(got, want) {
			t.Fatalf("history types %v, want %v", got, want)
		}
		var last float64 = -1
		for _, e := range all {
			if e["project"] != c.Project || e["queue"] != "h" || e["offset"].(float64) <= last || e["client_id"] == "" {
				t.Fatalf("event %v out of order or not this queue's", e)
			}
			last = e["offset"].(float64)
			if _, err := time.Parse(time.RFC3339Nano, e["time"].(string)); err != nil {
				t.Fatalf("event time %v: %v", e["time"], err)
			}
		}
		posted := all[1]["payload"].(map[string]any)["messages"].([]any)
		if m := posted[0].(map[string]any); !reflect.DeepEqual(m["body"], map[string]any{"n": 1.0}) || m["ttl"] != 300.0 {
			t.Fatalf("posted payload %v, want the bodies as JSON", posted)
		}
		if p := all[4]["payload"].(map[string]any); p["subscriber"] != "http://127.0.0.1:9/hook" || p["secret"] != nil {
			t.Fatalf("subscription.created payload %v: want the subscriber and no signing secret", p)
		}
		if p := all[2]["payload"].(map[string]any); p["id"] != ids[1] {
			t.Fatalf("message.deleted payload %v, want id %s", p, ids[1])
		}
		// Filters: by type (repeated or comma-separated), by time.
		got := hsTypes(hsAll(c, "/v2/queues/h/history?type=claim.created,queue.deleted&type=queue.created"))
		if !reflect.DeepEqual(got, []string{"queue.created", "claim.created", "queue.deleted"}) {
			t.Fatalf("type filter %v", got)
		}
		since := url.QueryEscape(mid.Format(time.RFC3339Nano))
		if got := hsTypes(hsAll(c, "/v2/queues/h/history?since="+since)); !reflect.DeepEqual(got, want[2:]) {
			t.Fatalf("since %s: %v, want %v", mid, got, want[2:])
		}
		if got := hsTypes(hsAll(c, "/v2/queues/h/history?until="+since)); !reflect.DeepEqual(got, want[:2]) {
			t.Fatalf("until %s: %v, want %v", mid, got, want[:2])
		}
		// A marker continues after that offset.
		first, _ := hsPage(c, "/v2/queues/h/history?limit=1")
		marker := int(first[0]["offset"].(float64))
		rest := hsAll(c, "/v2/queues/h/history?marker="+strconv.Itoa(marker))
		if !reflect.DeepEqual(hsTypes(rest), want[1:]) {
			t.Fatalf("after marker %d: %v", marker, hsTypes(rest))
		}

		// Another project sees nothing of it, and its own queue of the
		// same name has its own history.
		o := c.inProject("other-" + c.Project)
		if ev := hsAll(o, "/v2/queues/h/history"); len(ev) != 0 {
			t.Fatalf("another project sees %d events of this queue", len(ev))
		}
		o.postMessages("h", msg("theirs"))
		if got := hsTypes(hsAll(o, "/v2/queues/h/history")); !reflect.DeepEqual(got, []string{"queue.created", "messages.posted"}) {
			t.Fatalf("other project's history %v", got)
		}

		// Bad requests.
		for _, q := range []string{"marker=abc", "marker=-1", "limit=0", "limit=101", "limit=x", "since=yesterday", "until=2030-13-01T00:00:00Z"} {
			c.get("/v2/queues/h/history?"+q).expect(t, 400)
		}
	})
}

// TestHistoryOverWebSocket reads the same history with queue_history.
func TestHistoryOverWebSocket(t *testing.T) {
	n := startNode(t, nodeOptions{})
	wcEach(t, n, func(t *testing.T, w *wsClient, c *client, binary bool) {
		c.put("/v2/queues/wh", map[string]any{}).expect(t, 201)
		c.postMessages("wh", msg(1), msg(2))
		call := wcOnQueue(w, binary, "queue_history", "wh")
		b := wcBody(t, call(map[string]any{"limit": 1}), 200)
		events, _ := b["events"].([]any)
		if len(events) != 1 || b["more"] != true || events[0].(map[string]any)["type"] != "queue.created" {
			t.Fatalf("first page %v", b)
		}
		b = wcBody(t, call(map[string]any{"marker": b["marker"], "types": []any{"messages.posted"}}), 200)
		events, _ = b["events"].([]any)
		if len(events) != 1 || b["more"] != false || events[0].(map[string]any)["type"] != "messages.posted" {
			t.Fatalf("second page %v", b)
		}
		if r := call(map[string]any{"since": "not a time"}); !strings.Contains(fmt.Sprint(r), "RFC 3339") {
			t.Fatalf("bad since answered %v", r)
		}
	})
}

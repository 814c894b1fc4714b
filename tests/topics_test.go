package tests

import (
	"slices"
	"strings"
	"testing"
)

// Topics (contract §2.8, §6 B11): queues of their own namespace, with the
// queue routes' rules, three reserved metadata keys and claim-less stats.

func TestTopicsLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		c.get("/v2/topics").expect(t, 200)
		if page := c.get("/v2/topics").JSON(t); len(page["topics"].([]any)) != 0 || len(page["links"].([]any)) != 0 {
			t.Fatalf("fresh project lists topics: %v", page)
		}
		r := c.put("/v2/topics/news", map[string]any{"k": 1}).expect(t, 201)
		if loc := r.Header.Get("Location"); loc != "/v2/topics/news" {
			t.Fatalf("Location %q", loc)
		}
		c.put("/v2/topics/news", nil).expect(t, 204)
		c.put("/v2/topics/Nice-Bo@t", nil).expectError(t, 400, "topic name")
		want := map[string]any{"k": 1, "_max_messages_post_size": 262144, "_default_message_ttl": 3600, "_default_message_delay": 0}
		if got := c.get("/v2/topics/news").expect(t, 200).JSON(t); !jsonEqual(got, want) {
			t.Fatalf("topic metadata %v, want %v", got, want)
		}
		patched := c.do("PATCH", "/v2/topics/news", req{Body: []map[string]any{{"op": "add", "path": "/metadata/k", "value": 2}},
			Headers: map[string]string{"Content-Type": "application/openstack-messaging-v2.0-json-patch"}}).expect(t, 200).JSON(t)
		if patched["k"] != 2.0 || len(patched) != 4 {
			t.Fatalf("patched topic %v", patched)
		}

		// A queue of the same name is another resource.
		c.put("/v2/queues/news", nil).expect(t, 201)
		c.put("/v2/topics/alerts", nil).expect(t, 201)
		page := c.get("/v2/topics?limit=1").expect(t, 200).JSON(t)
		if names := listNames(page, "topics"); !slices.Equal(names, []string{"alerts"}) {
			t.Fatalf("topic page %v", page)
		}
		next := page["links"].([]any)[0].(map[string]any)["href"].(string)
		if next != "/v2/topics?limit=1&marker=alerts" {
			t.Fatalf("next %q", next)
		}
		if names := listNames(c.get(next).expect(t, 200).JSON(t), "topics"); !slices.Equal(names, []string{"news"}) {
			t.Fatalf("second topic page %v", names)
		}
		if names := listNames(c.get("/v2/queues").expect(t, 200).JSON(t), "queues"); !slices.Equal(names, []string{"news"}) {
			t.Fatalf("queues %v", names)
		}
		detailed := c.get("/v2/topics?detailed=true").expect(t, 200).JSON(t)["topics"].([]any)
		if item := detailed[0].(map[string]any); item["href"] != "/v2/topics/alerts" || item["metadata"] == nil {
			t.Fatalf("detailed topic item %v", item)
		}

		// Stats count messages only; messages render topic hrefs.
		if st := c.get("/v2/topics/news/stats").expect(t, 200).JSON(t)["messages"]; !jsonEqual(st, map[string]any{"claimed": 0, "free": 0, "total": 0}) {
			t.Fatalf("empty topic stats %v", st)
		}
		r = c.post("/v2/topics/news/messages", map[string]any{"messages": []any{msg("a"), msg("b")}}).expect(t, 201)
		if loc := r.Header.Get("Location"); !strings.HasPrefix(loc, "/v2/topics/news/messages?ids=") {
			t.Fatalf("Location %q", loc)
		}
		st := c.get("/v2/topics/news/stats").expect(t, 200).JSON(t)["messages"].(map[string]any)
		if st["total"] != 2.0 || st["claimed"] != nil || st["free"] != nil {
			t.Fatalf("topic stats %v", st)
		}
		if !strings.HasPrefix(st["oldest"].(map[string]any)["href"].(string), "/v2/topics/news/messages/") {
			t.Fatalf("oldest %v", st["oldest"])
		}
		msgs := c.get("/v2/topics/news/messages?echo=true").expect(t, 200).JSON(t)["messages"].([]any)
		if len(msgs) != 2 {
			t.Fatalf("topic messages %v", msgs)
		}
		href := msgs[0].(map[string]any)["href"].(string)
		c.get(href).expect(t, 200)
		// The queue of the same name holds none of them.
		if q := c.get("/v2/queues/news/messages?echo=true").expect(t, 200).JSON(t)["messages"].([]any); len(q) != 0 {
			t.Fatalf("queue news shows topic messages: %v", q)
		}
		c.del(href).expect(t, 204)
		c.get(href).expect(t, 404)

		c.post("/v2/topics/news/subscriptions", map[string]any{"subscriber": "http://example.com/hook"}).expect(t, 201)
		if subs := c.get("/v2/topics/news/subscriptions").expect(t, 200).JSON(t)["subscriptions"].([]any); len(subs) != 1 {
			t.Fatalf("topic subscriptions %v", subs)
		}
		c.post("/v2/topics/news/purge", nil).expect(t, 204)
		if st := c.get("/v2/topics/news/stats").JSON(t)["messages"].(map[string]any); st["total"] != 0.0 {
			t.Fatalf("stats after purge %v", st)
		}
		c.post("/v2/topics/news/claims", map[string]any{}).expect(t, 404)

		// Another project sees nothing.
		o := c.inProject("other-" + c.Project)
		if names := listNames(o.get("/v2/topics").expect(t, 200).JSON(t), "topics"); len(names) != 0 {
			t.Fatalf("other project lists %v", names)
		}
		o.get(href).expect(t, 404)

		c.del("/v2/topics/news").expect(t, 204)
		c.del("/v2/topics/news").expect(t, 204)
		if names := listNames(c.get("/v2/topics").JSON(t), "topics"); !slices.Equal(names, []string{"alerts"}) {
			t.Fatalf("topics after delete %v", names)
		}
	})
}

func listNames(page map[string]any, key string) []string {
	var out []string
	for _, it := range page[key].([]any) {
		out = append(out, it.(map[string]any)["name"].(string))
	}
	return out
}

// TestTopicNamesStayTopicNames: nothing a client reads names the queue
// that holds a topic.
func TestTopicNamesStayTopicNames(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	c.post("/v2/topics/news/subscriptions", map[string]any{"subscriber": "http://example.com/hook"}).expect(t, 201)
	sub := c.get("/v2/topics/news/subscriptions").expect(t, 200).JSON(t)["subscriptions"].([]any)[0].(map[string]any)
	if sub["source"] != "news" {
		t.Fatalf("subscription source %v", sub["source"])
	}
	r := c.get("/v2/topics/news/messages/000000000000000000000000").expect(t, 404)
	if strings.Contains(string(r.Body), "~") {
		t.Fatalf("404 names the holding queue: %s", r.Body)
	}
}

package tests

import (
	"net/url"
	"testing"
)

// TestWSPipelinedPosts: clients that send message_post frames without
// waiting for the answers get every answer, in the order they sent, their
// messages are stored in that order, and a request sent behind the posts
// sees all of them.
func TestWSPipelinedPosts(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	const conns, each = 4, 200
	ws := make([]*wsClient, conns)
	for k := range ws {
		ws[k] = wsDial(t, n, c.Project)
	}
	binary := func(k int) bool { return k%2 == 1 }
	// Round robin, so the connections' posts interleave in the log.
	for i := range each {
		for k, w := range ws {
			w.send(binary(k), map[string]any{"action": "message_post", "headers": w.headers(),
				"body": map[string]any{"queue_name": "pipe", "messages": []any{
					map[string]any{"body": map[string]any{"c": k, "i": i}, "ttl": 600}}}})
		}
	}
	for k, w := range ws {
		w.send(binary(k), map[string]any{"action": "queue_get_stats", "headers": w.headers(),
			"body": map[string]any{"queue_name": "pipe"}})
	}

	for k, w := range ws {
		last := ""
		for i := range each {
			m := w.answer(binary(k))
			body := wcBody(t, m, 201)
			sent := m["request"].(map[string]any)["body"].(map[string]any)["messages"].([]any)[0].(map[string]any)["body"].(map[string]any)
			if sent["i"] != float64(i) || sent["c"] != float64(k) {
				t.Fatalf("connection %d answer %d answers the post of %v", k, i, sent)
			}
			id := body["message_ids"].([]any)[0].(string)
			if id <= last {
				t.Fatalf("connection %d: post %d got id %s, not after %s", k, i, id, last)
			}
			last = id
		}
		// The stats follow the connection's own posts and count them all.
		stats := wcBody(t, w.answer(binary(k)), 200)
		total := stats["messages"].(map[string]any)["total"].(float64)
		if total < float64(each) {
			t.Fatalf("connection %d: stats after its %d posts count %v messages", k, each, total)
		}
	}

	// Every connection's messages are stored in the order it sent them.
	next := make([]float64, conns)
	seen := 0
	marker := ""
	for {
		path := "/v2/queues/pipe/messages?echo=true&limit=20"
		if marker != "" {
			path += "&marker=" + url.QueryEscape(marker)
		}
		page := c.get(path).expect(t, 200).JSON(t)
		msgs, _ := page["messages"].([]any)
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			b := m.(map[string]any)["body"].(map[string]any)
			k := int(b["c"].(float64))
			if b["i"] != next[k] {
				t.Fatalf("connection %d: stored message %v after %v", k, b["i"], next[k]-1)
			}
			next[k]++
			seen++
		}
		marker = nextMarker(t, page)
	}
	if seen != conns*each {
		t.Fatalf("%d messages stored, %d posted", seen, conns*each)
	}
}

// nextMarker returns the marker of a listing's "next" link.
func nextMarker(t *testing.T, page map[string]any) string {
	t.Helper()
	for _, l := range page["links"].([]any) {
		l := l.(map[string]any)
		if l["rel"] != "next" {
			continue
		}
		u, err := url.Parse(l["href"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return u.Query().Get("marker")
	}
	t.Fatalf("no next link in %v", page)
	return ""
}

// TestWSPipelinedPostsWithNotifications: a socket subscribed to a queue
// that pipelines posts to it gets every answer in order and every
// notification, and is not taken for a slow consumer however many
// notifications its posts cause while its pipeline is never empty.
func TestWSPipelinedPostsWithNotifications(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	w := wsDial(t, n, c.Project)
	expectStatus(t, w.do(false, "subscription_create", map[string]any{"queue_name": "q", "ttl": 3600}), 201)
	const posts, each = 40, 10 // 400 notifications: more than a socket's queue
	for i := range posts {
		msgs := make([]any, each)
		for j := range msgs {
			msgs[j] = map[string]any{"body": i*each + j, "ttl": 600}
		}
		w.send(false, map[string]any{"action": "message_post", "headers": w.headers(),
			"body": map[string]any{"queue_name": "q", "messages": msgs}})
	}
	answers, notified := 0, 0
	for answers < posts || notified < posts*each {
		_, m := w.next()
		if _, ok := m["request"]; ok {
			wcBody(t, m, 201)
			body := m["request"].(map[string]any)["body"].(map[string]any)["messages"].([]any)[0].(map[string]any)["body"]
			if body != float64(answers*each) {
				t.Fatalf("answer %d answers the post starting at %v", answers, body)
			}
			answers++
			continue
		}
		if m["Message_Type"] != "Notification" || m["body"] != float64(notified) {
			t.Fatalf("notification %d: %v", notified, m)
		}
		notified++
	}
}

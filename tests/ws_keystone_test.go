package tests

import (
	"os"
	"testing"
	"time"

	"github.com/heraldmq/herald/api/rest"
	"github.com/heraldmq/herald/cmd/herald/server"
)

// TestWSKeystone: the WebSocket API in Keystone mode against a real
// Keystone (contract §4.4, §4.8; checklist item 72; B15), in both frame
// encodings. One Keystone serves every case.
func TestWSKeystone(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("Keystone tests need Debian's python3 and python3-keystone (see .ci/run)")
	}
	ks := startKeystone(t)
	n := startNode(t, nodeOptions{Configure: func(c *server.Config) {
		c.API.SignedURLKey = "s3cret"
		c.Keystone = &rest.Keystone{URL: ks.URL, User: "admin", Password: "secret", Project: "admin", CacheTTL: time.Minute}
	}})
	demo := ks.token(t, "demo", "demo")
	c := newClient(t, n).inProject(ks.DemoProject)
	authEcho := map[string]any{"action": "authenticate", "body": map[string]any{}, "headers": map[string]any{}, "api": "v2"}
	authenticate := func(w *wsClient, binary bool, token string) map[string]any {
		t.Helper()
		w.send(binary, map[string]any{"action": "authenticate", "headers": map[string]any{"X-Auth-Token": token, "X-Project-ID": ks.DemoProject}})
		m := w.answer(binary)
		if !jsonEqual(m["request"], authEcho) {
			t.Fatalf("authenticate echo %v, want %v", m["request"], authEcho)
		}
		return m
	}

	for _, e := range wcEncodings {
		binary := e.binary
		t.Run(e.name+"/item 72", func(t *testing.T) {
			w := wsDial(t, n, ks.DemoProject)
			wcExpect(t, w.call(binary, "queue_list", nil), 403, map[string]any{"error": "Not authentified."})
			wcExpect(t, w.call(binary, "message_post", map[string]any{"queue_name": "q", "messages": []any{map[string]any{"body": 1}}}), 403,
				map[string]any{"error": "Not authentified."})
			wcExpect(t, authenticate(w, binary, "not-a-token"), 401, map[string]any{"error": "Authentication failed."})
			wcExpect(t, w.call(binary, "queue_list", nil), 403, map[string]any{"error": "Not authentified."})
			// After a failure the client may try again.
			wcExpect(t, authenticate(w, binary, demo), 200, map[string]any{"message": "Authentified."})
			queue := "ws-" + e.name
			expectStatus(t, w.call(binary, "queue_create", map[string]any{"queue_name": queue}), 201)
			// The queue is the token's project's, as REST sees it.
			c.do("GET", "/v2/queues/"+queue+"/stats", req{Headers: withToken(demo, nil)}).expect(t, 200)
			for _, project := range []string{ks.AdminProject, "forged"} {
				other := &wsClient{t: t, c: w.c, project: project, client: newID()}
				wcExpect(t, other.call(binary, "queue_list", nil), 403, map[string]any{"error": "Not authenticated."})
			}
			// Re-authenticating keeps the socket working.
			wcExpect(t, authenticate(w, binary, demo), 200, map[string]any{"message": "Authentified."})
			expectStatus(t, w.call(binary, "queue_get_stats", map[string]any{"queue_name": queue}), 200)
		})
	}

	// Pre-signed message actions (§4.8) work without authenticate. The
	// signature comes from the REST share endpoint.
	share := func(queue string, methods ...string) map[string]any {
		t.Helper()
		return c.do("POST", "/v2/queues/"+queue+"/share", req{Body: map[string]any{"methods": methods}, Headers: withToken(demo, nil)}).expect(t, 200).JSON(t)
	}
	getPost := share("signed", "GET", "POST")
	deleting := share("signed", "DELETE")
	for _, e := range wcEncodings {
		binary := e.binary
		t.Run(e.name+"/pre-signed", func(t *testing.T) {
			w := wsDial(t, n, ks.DemoProject)
			signed := func(sh map[string]any, tamper func(h map[string]any), action string, body map[string]any) map[string]any {
				t.Helper()
				h := w.headers()
				h["URL-Signature"], h["URL-Expires"] = sh["signature"], sh["expires"]
				h["URL-Methods"], h["URL-Paths"] = sh["methods"], sh["paths"] // JSON arrays
				if tamper != nil {
					tamper(h)
				}
				w.send(binary, map[string]any{"action": action, "headers": h, "body": body})
				return w.answer(binary)
			}
			refused := map[string]any{"error": "Not authentified."}
			post := map[string]any{"queue_name": "signed", "messages": []any{map[string]any{"body": e.name, "ttl": 120}}}
			ids := wcBody(t, signed(getPost, nil, "message_post", post), 201)["message_ids"].([]any)
			id := ids[0].(string)
			listed := wcMessages(t, wcBody(t, signed(getPost, nil, "message_list", map[string]any{"queue_name": "signed", "echo": true}), 200)["messages"])
			if len(listed) == 0 || listed[len(listed)-1] != id {
				t.Fatalf("signed listing %v lacks %s", listed, id)
			}
			m := wcMessage(t, wcBody(t, signed(getPost, nil, "message_get", map[string]any{"queue_name": "signed", "message_id": id}), 200)["messages"])
			if m["body"] != e.name {
				t.Fatalf("signed message_get %v", m)
			}
			if got := wcMessages(t, wcBody(t, signed(getPost, nil, "message_get_many", map[string]any{"queue_name": "signed", "message_ids": []any{id}}), 200)["messages"]); !jsonEqual(got, []string{id}) {
				t.Fatalf("signed message_get_many %v", got)
			}
			for _, tc := range []struct {
				name   string
				sh     map[string]any
				tamper func(h map[string]any)
				action string
				body   map[string]any
			}{
				{"method not signed", getPost, nil, "message_delete", map[string]any{"queue_name": "signed", "message_id": id}},
				{"pop not signed", getPost, nil, "message_delete_many", map[string]any{"queue_name": "signed", "pop": 1}},
				{"GET not signed", deleting, nil, "message_list", map[string]any{"queue_name": "signed"}},
				// B15: the body's queue must be one the URL was signed for.
				{"another queue: post", getPost, nil, "message_post", map[string]any{"queue_name": "other", "messages": []any{map[string]any{"body": 1}}}},
				{"another queue: list", getPost, nil, "message_list", map[string]any{"queue_name": "other"}},
				{"another queue: delete", deleting, nil, "message_delete", map[string]any{"queue_name": "other", "message_id": id}},
				{"a queue name holding the signed path", getPost, nil, "message_list", map[string]any{"queue_name": "x/v2/queues/signed"}},
				{"not a message action", getPost, nil, "queue_get_stats", map[string]any{"queue_name": "signed"}},
				{"claims not signable", getPost, nil, "claim_create", map[string]any{"queue_name": "signed"}},
				{"wrong signature", getPost, func(h map[string]any) { h["URL-Signature"] = flipFirst(h["URL-Signature"].(string)) }, "message_list", map[string]any{"queue_name": "signed"}},
				{"another project", getPost, func(h map[string]any) { h["X-Project-ID"] = ks.AdminProject }, "message_list", map[string]any{"queue_name": "signed"}},
				{"later expiry", getPost, func(h map[string]any) { h["URL-Expires"] = "2999-01-01T00:00:00" }, "message_list", map[string]any{"queue_name": "signed"}},
				{"methods as a string", getPost, func(h map[string]any) { h["URL-Methods"] = "GET,POST" }, "message_list", map[string]any{"queue_name": "signed"}},
				{"paths as a string", getPost, func(h map[string]any) { h["URL-Paths"] = "/v2/queues/signed/messages" }, "message_list", map[string]any{"queue_name": "signed"}},
				{"another path", getPost, func(h map[string]any) { h["URL-Paths"] = []any{"/v2/queues/other/messages"} }, "message_list", map[string]any{"queue_name": "other"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					wcExpect(t, signed(tc.sh, tc.tamper, tc.action, tc.body), 403, refused)
				})
			}
			wcExpect(t, signed(deleting, nil, "message_delete", map[string]any{"queue_name": "signed", "message_id": id}), 204, map[string]any{})
			c.do("GET", "/v2/queues/signed/messages/"+id, req{Headers: withToken(demo, nil)}).expect(t, 404)
			// Signatures open message actions only, and only per request.
			wcExpect(t, w.call(binary, "message_list", map[string]any{"queue_name": "signed"}), 403, refused)
		})
	}
}

// flipFirst changes the first hex digit of sig.
func flipFirst(sig string) string {
	if sig[0] == '0' {
		return "1" + sig[1:]
	}
	return "0" + sig[1:]
}

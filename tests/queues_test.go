package tests

// End-to-end conformance tests for Zaqar v2 generic request handling
// (versions, headers, hooks, routing, JSON bodies) and the queue routes
// (contract §1, §2.0-2.2, §3.1, §3.7-3.9, checklist items 1-22), run on
// both log backends. Each top-level test starts one node per backend;
// every case uses its own project.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// --- helpers (prefixed qt to stay clear of other test files) ---

const qtPatchType = "application/openstack-messaging-v2.0-json-patch"

// qtRaw sends a hand-written HTTP/1.1 request so a test controls every
// header: nothing is added but Host and Connection. body nil sends no body
// and no Content-Length; a non-nil body (even empty) gets a Content-Length.
func qtRaw(t testing.TB, n *node, method, path string, body []byte, headers ...string) *resp {
	t.Helper()
	host := strings.TrimPrefix(n.URL, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, host)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != nil {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatalf("write: %v", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: read response: %v", method, path, err)
	}
	defer res.Body.Close()
	rb, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return &resp{Status: res.StatusCode, Header: res.Header, Body: rb}
}

// qtIdent returns the identity headers of c for qtRaw.
func qtIdent(c *client) []string {
	return []string{"Client-ID: " + c.ClientID, "X-Project-ID: " + c.Project}
}

// qtDecode decodes JSON keeping numbers exact (json.Number).
func qtDecode(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %q", err, b)
	}
	if dec.More() {
		t.Fatalf("trailing data after JSON: %q", b)
	}
	return v
}

// qtObj decodes a JSON object literal of a test.
func qtObj(t testing.TB, s string) map[string]any {
	t.Helper()
	m, ok := qtDecode(t, []byte(s)).(map[string]any)
	if !ok {
		t.Fatalf("not an object: %s", s)
	}
	return m
}

// qtJSONCT fails unless r is declared as application/json.
func qtJSONCT(t testing.TB, r *resp) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json (status %d, body %s)", ct, r.Status, r.Body)
	}
}

// qtEq fails unless r has status and a JSON body equal to want (a JSON
// text or a decoded value).
func qtEq(t testing.TB, r *resp, status int, want any) {
	t.Helper()
	r.expect(t, status)
	qtJSONCT(t, r)
	if s, ok := want.(string); ok {
		want = qtDecode(t, []byte(s))
	}
	got := qtDecode(t, r.Body)
	if !reflect.DeepEqual(got, want) {
		wb, _ := json.Marshal(want)
		t.Fatalf("body\n got %s\nwant %s", r.Body, wb)
	}
}

// qtNoDesc tells qtErr that the error body must have no description.
const qtNoDesc = "\x00none"

// qtErr checks an error response: status, JSON content type, the exact
// title and that the description contains desc ("": any or none;
// qtNoDesc: no description key).
func qtErr(t testing.TB, r *resp, status int, title, desc string) {
	t.Helper()
	r.expect(t, status)
	qtJSONCT(t, r)
	m, ok := qtDecode(t, r.Body).(map[string]any)
	if !ok {
		t.Fatalf("error body is not an object: %s", r.Body)
	}
	if m["title"] != title {
		t.Fatalf("title %q, want %q (body %s)", m["title"], title, r.Body)
	}
	d, has := m["description"]
	if desc == qtNoDesc {
		if has {
			t.Fatalf("unexpected description in %s", r.Body)
		}
		return
	}
	if s, _ := d.(string); !strings.Contains(s, desc) {
		t.Fatalf("description %q does not contain %q", d, desc)
	}
}

// qtEmpty checks a status whose response has no body.
func qtEmpty(t testing.TB, r *resp, status int) {
	t.Helper()
	r.expect(t, status)
	if len(r.Body) != 0 {
		t.Fatalf("body %q, want none", r.Body)
	}
}

// qtDefaults is the metadata GET answers for a queue without stored
// reserved values, merged with the JSON object extra.
func qtDefaults(t testing.TB, extra string) map[string]any {
	t.Helper()
	m := qtObj(t, `{"_max_messages_post_size": 262144, "_default_message_ttl": 3600,
		"_default_message_delay": 0, "_dead_letter_queue": null,
		"_dead_letter_queue_messages_ttl": null, "_max_claim_count": null,
		"_enable_encrypt_messages": false}`)
	if extra != "" {
		for k, v := range qtObj(t, extra) {
			m[k] = v
		}
	}
	return m
}

func qtPatch(c *client, queue string, body any) *resp {
	c.t.Helper()
	return c.do("PATCH", "/v2/queues/"+queue, req{Body: body, Headers: map[string]string{"Content-Type": qtPatchType}})
}

// qtNames lists the names of the project's queues (all pages).
func qtNames(t testing.TB, c *client) []string {
	t.Helper()
	var out []string
	path := "/v2/queues?limit=20"
	for i := 0; i < 100; i++ {
		r := c.get(path).expect(t, 200)
		var page struct {
			Queues []struct{ Name string }
			Links  []struct{ Rel, Href string }
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Queues) == 0 {
			return out
		}
		for _, q := range page.Queues {
			out = append(out, q.Name)
		}
		path = page.Links[0].Href
	}
	t.Fatal("listing does not end")
	return nil
}

func qtListed(t testing.TB, c *client, name string) bool {
	t.Helper()
	for _, n := range qtNames(t, c) {
		if n == name {
			return true
		}
	}
	return false
}

// qtStats returns the "messages" object of the queue's stats.
func qtStats(t testing.TB, c *client, queue string) map[string]any {
	t.Helper()
	r := c.get("/v2/queues/"+queue+"/stats").expect(t, 200)
	qtJSONCT(t, r)
	m, _ := qtDecode(t, r.Body).(map[string]any)
	if len(m) != 1 {
		t.Fatalf("stats body %s, want only \"messages\"", r.Body)
	}
	s, ok := m["messages"].(map[string]any)
	if !ok {
		t.Fatalf("stats body %s", r.Body)
	}
	return s
}

// qtCounts checks claimed/free/total of a stats object.
func qtCounts(t testing.TB, s map[string]any, claimed, free, total int) {
	t.Helper()
	for k, want := range map[string]int{"claimed": claimed, "free": free, "total": total} {
		if got, _ := s[k].(json.Number); string(got) != fmt.Sprint(want) {
			t.Fatalf("stats %s = %v, want %d (%v)", k, s[k], want, s)
		}
	}
}

// qtClaim claims up to limit messages of queue and returns their ids.
func qtClaim(t testing.TB, c *client, queue string, limit int) []string {
	t.Helper()
	r := c.post(fmt.Sprintf("/v2/queues/%s/claims?limit=%d", queue, limit), map[string]any{}).expect(t, 201)
	var out struct{ Messages []struct{ ID string } }
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(out.Messages))
	for i, m := range out.Messages {
		ids[i] = m.ID
	}
	return ids
}

func qtBody(size int) string {
	// {"k":"xxx..."} of exactly size bytes.
	return `{"k":"` + strings.Repeat("x", size-8) + `"}`
}

// --- generic request handling ---

func TestHeaders(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("versions_doc_without_headers", func(t *testing.T) {
			r := qtRaw(t, n, "GET", "/", nil)
			qtEq(t, r, 300, `{"versions": [
			  {"id": "1", "status": "DEPRECATED", "updated": "2014-9-11T17:47:05Z",
			   "media-types": [{"base": "application/json", "type": "application/vnd.openstack.messaging-v1+json"}],
			   "links": [{"href": "/v1/", "rel": "self"}]},
			  {"id": "1.1", "status": "DEPRECATED", "updated": "2016-7-29T02:22:47Z",
			   "media-types": [{"base": "application/json", "type": "application/vnd.openstack.messaging-v1_1+json"}],
			   "links": [{"href": "/v1.1/", "rel": "self"}]},
			  {"id": "2", "status": "CURRENT", "updated": "2014-9-24T04:06:47Z",
			   "media-types": [{"base": "application/json", "type": "application/vnd.openstack.messaging-v2+json"}],
			   "links": [{"href": "/v2/", "rel": "self"}]}]}`)
		})

		paths := []string{"/v2/", "/v2/ping", "/v2/queues", "/v2/queues/q", "/v2/queues/q/stats"}

		t.Run("client_id_missing", func(t *testing.T) {
			c := newClient(t, n)
			for _, p := range paths {
				r := qtRaw(t, n, "GET", p, nil, "X-Project-ID: "+c.Project)
				qtErr(t, r, 400, "Missing header value", `The "Client-ID" header is required.`)
			}
		})

		t.Run("client_id_rejected", func(t *testing.T) {
			for _, id := range []string{
				"550893e0-2b6e-11e3-835a-5cf9dd72369",   // 31 hex digits
				"550893e0-2b6e-11e3-835a-5cf9dd72369a0", // 33
				"0xdeadbeef",
				"",
				"not-a-uuid-at-all",
				"550e8400-e29b-41d4-a716-44665544000g", // not hex
			} {
				t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
					c := newClient(t, n)
					for _, p := range paths {
						r := qtRaw(t, n, "GET", p, nil, "Client-ID: "+id, "X-Project-ID: "+c.Project)
						qtErr(t, r, 400, "Wrong UUID value", "Malformed hexadecimal UUID.")
					}
				})
			}
		})

		t.Run("client_id_accepted", func(t *testing.T) {
			for _, id := range []string{
				"550e8400e29b41d4a716446655440000", // python-zaqarclient's form
				"550E8400E29B41D4A716446655440000",
				"550e8400-e29b-41d4-a716-446655440000",
				"{550E8400-E29B-41D4-A716-446655440000}",
				"urn:uuid:550e8400-e29b-41d4-a716-446655440000",
				"550e-8400e29b41d4a716446655440000-",
			} {
				t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
					c := newClient(t, n).as(id)
					qtEq(t, c.get("/v2/queues"), 200, `{"queues": [], "links": []}`)
					c.put("/v2/queues/q", nil).expect(t, 201)
					qtEmpty(t, c.get("/v2/ping"), 204)
				})
			}
		})

		t.Run("client_id_forms_are_one_client", func(t *testing.T) {
			// echo filtering compares Client-IDs as UUID values (§1.3).
			c := newClient(t, n).as("550e8400e29b41d4a716446655440000")
			c.postMessages("q", msg("mine"))
			for _, id := range []string{"{550E8400-E29B-41D4-A716-446655440000}", "urn:uuid:550e8400-e29b-41d4-a716-446655440000"} {
				qtEq(t, c.as(id).get("/v2/queues/q/messages"), 200, `{"messages": [], "links": []}`)
			}
		})

		t.Run("project_id_missing", func(t *testing.T) {
			c := newClient(t, n)
			for _, p := range paths {
				r := qtRaw(t, n, "GET", p, nil, "Client-ID: "+c.ClientID)
				qtErr(t, r, 400, "Project-Id Missing", "The header X-PROJECT-ID was missing")
			}
		})

		t.Run("project_id_empty", func(t *testing.T) {
			c := newClient(t, n)
			for _, p := range paths {
				r := qtRaw(t, n, "GET", p, nil, "Client-ID: "+c.ClientID, "X-Project-ID: ")
				qtErr(t, r, 400, "Empty project header not allowed", "X-PROJECT-ID cannot be an empty string")
			}
		})

		t.Run("project_id_header_case_insensitive", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", nil).expect(t, 201)
			r := qtRaw(t, n, "GET", "/v2/queues", nil, "client-id: "+c.ClientID, "x-project-id: "+c.Project)
			qtEq(t, r, 200, `{"queues": [{"name": "q", "href": "/v2/queues/q"}],
				"links": [{"rel": "next", "href": "/v2/queues?marker=q"}]}`)
		})

		t.Run("project_id_any_charset_and_length", func(t *testing.T) {
			// Any charset is fine; the 256-char limit applies only on
			// routes with a queue name (§1.3, Q11).
			c := newClient(t, n).inProject("JAM Project " + newID())
			c.put("/v2/queues/q", nil).expect(t, 201)
			qtEq(t, c.get("/v2/queues"), 200, `{"queues": [{"name": "q", "href": "/v2/queues/q"}],
				"links": [{"rel": "next", "href": "/v2/queues?marker=q"}]}`)

			c256 := newClient(t, n).inProject(strings.Repeat("p", 244) + newID()[:12])
			c256.put("/v2/queues/q", nil).expect(t, 201)
			long := newClient(t, n).inProject(strings.Repeat("p", 245) + newID()[:12])
			qtEq(t, long.get("/v2/queues"), 200, `{"queues": [], "links": []}`)
			for _, method := range []string{"PUT", "GET", "DELETE"} {
				qtErr(t, long.do(method, "/v2/queues/q", req{}), 400, "Invalid queue identification",
					"The format of the submitted queue name or project id is not valid.")
			}
			qtErr(t, long.get("/v2/queues/q/stats"), 400, "Invalid queue identification", "")
		})

		t.Run("accept", func(t *testing.T) {
			for _, tc := range []struct {
				accept string
				ok     bool
			}{
				{"application/xml", false},
				{"text/html", false},
				{"application/json;q=0", false},
				{"application/json", true},
				{"*/*", true},
				{"application/*", true},
				{"application/xml, application/json", true},
				{"text/html;q=0.9, application/json;q=0.1", true},
			} {
				t.Run(tc.accept, func(t *testing.T) {
					c := newClient(t, n)
					r := c.do("GET", "/v2/queues", req{Headers: map[string]string{"Accept": tc.accept}})
					if tc.ok {
						r.expect(t, 200)
						return
					}
					r.expect(t, 406)
					qtJSONCT(t, r)
					m := qtDecode(t, r.Body).(map[string]any)
					want := map[string]any{"text": "14.1 Accept, Hypertext Transfer Protocol -- HTTP/1.1",
						"href": "http://www.w3.org/Protocols/rfc2616/rfc2616-sec14.html", "rel": "help"}
					if !reflect.DeepEqual(m["link"], want) {
						t.Fatalf("406 link %v, want %v (body %s)", m["link"], want, r.Body)
					}
					if _, ok := m["title"].(string); !ok {
						t.Fatalf("406 without title: %s", r.Body)
					}
				})
			}
		})

		t.Run("form_urlencoded_with_body", func(t *testing.T) {
			c := newClient(t, n)
			for _, ct := range []string{"application/x-www-form-urlencoded", "Application/X-WWW-Form-URLEncoded"} {
				r := c.do("POST", "/v2/queues/q/messages", req{Body: Raw("messages=1"), Headers: map[string]string{"Content-Type": ct}})
				qtErr(t, r, 400, "Invalid Content-Type", "")
				r = c.do("PUT", "/v2/queues/q", req{Body: Raw(`{}`), Headers: map[string]string{"Content-Type": ct}})
				qtErr(t, r, 400, "Invalid Content-Type", "")
				// Content-Length: 0 still counts as a body.
				r = qtRaw(t, n, "PUT", "/v2/queues/q", []byte{}, append(qtIdent(c), "Content-Type: "+ct)...)
				r.expect(t, 400)
			}
			if qtListed(t, c, "q") {
				t.Fatal("rejected requests created the queue")
			}
		})

		t.Run("form_urlencoded_without_body", func(t *testing.T) {
			c := newClient(t, n)
			r := qtRaw(t, n, "PUT", "/v2/queues/q", nil, append(qtIdent(c), "Content-Type: application/x-www-form-urlencoded")...)
			qtEmpty(t, r, 201)
			if got := r.Header.Get("Location"); got != "/v2/queues/q" {
				t.Fatalf("Location %q", got)
			}
		})

		t.Run("hook_order", func(t *testing.T) {
			c := newClient(t, n)
			form := "Content-Type: application/x-www-form-urlencoded"
			// form check < Accept < Client-ID < X-Project-ID < queue name.
			r := qtRaw(t, n, "PUT", "/v2/queues/bad@name", []byte("a=b"), form, "Accept: application/xml")
			qtErr(t, r, 400, "Invalid Content-Type", "")
			r = qtRaw(t, n, "PUT", "/v2/queues/bad@name", nil, "Accept: application/xml")
			r.expect(t, 406)
			r = qtRaw(t, n, "PUT", "/v2/queues/bad@name", nil)
			qtErr(t, r, 400, "Missing header value", `The "Client-ID" header is required.`)
			r = qtRaw(t, n, "PUT", "/v2/queues/bad@name", nil, "Client-ID: 0xdeadbeef")
			qtErr(t, r, 400, "Wrong UUID value", "Malformed hexadecimal UUID.")
			r = qtRaw(t, n, "PUT", "/v2/queues/bad@name", nil, "Client-ID: "+c.ClientID)
			qtErr(t, r, 400, "Project-Id Missing", "X-PROJECT-ID")
			r = qtRaw(t, n, "PUT", "/v2/queues/bad@name", nil, qtIdent(c)...)
			qtErr(t, r, 400, "Invalid queue identification", "not valid")
		})

		t.Run("home_document", func(t *testing.T) {
			c := newClient(t, n)
			r := c.get("/v2/").expect(t, 200)
			if ct := r.Header.Get("Content-Type"); ct != "application/json-home" {
				t.Fatalf("Content-Type %q", ct)
			}
			if cc := r.Header.Get("Cache-Control"); cc != "max-age=86400" {
				t.Fatalf("Cache-Control %q", cc)
			}
			if !bytes.Contains(r.Body, []byte("\n    \"resources\": {\n        \"rel/")) {
				t.Fatalf("home document not indented with 4 spaces: %.200s", r.Body)
			}
			res, ok := qtDecode(t, r.Body).(map[string]any)["resources"].(map[string]any)
			if !ok {
				t.Fatalf("no resources: %s", r.Body)
			}
			want := []string{"rel/claim", "rel/delete_claim", "rel/message_delete", "rel/message_get",
				"rel/messages", "rel/messages_delete", "rel/patch_claim", "rel/ping", "rel/post_claim",
				"rel/post_messages", "rel/queue", "rel/queue_purge", "rel/queue_share", "rel/queue_stats",
				"rel/queues", "rel/subscription", "rel/subscription_patch", "rel/subscriptions_get",
				"rel/subscriptions_post"}
			if got := keys(res); !reflect.DeepEqual(got, want) {
				t.Fatalf("resources %v\nwant %v", got, want)
			}
			for name, v := range res {
				tmpl, _ := v.(map[string]any)["href-template"].(string)
				if !strings.HasPrefix(tmpl, "/v2") {
					t.Fatalf("%s href-template %q", name, tmpl)
				}
			}
			q := res["rel/queue"].(map[string]any)
			if q["href-template"] != "/v2/queues/{queue_name}" {
				t.Fatalf("rel/queue %v", q)
			}
			allow := q["hints"].(map[string]any)["allow"]
			if !reflect.DeepEqual(allow, []any{"GET", "PUT", "DELETE", "PATCH"}) {
				t.Fatalf("rel/queue allow %v", allow)
			}
			if tmpl := res["rel/queues"].(map[string]any)["href-template"]; tmpl != "/v2/queues{?marker,limit,detailed}" {
				t.Fatalf("rel/queues %v", tmpl)
			}
			if tmpl := res["rel/ping"].(map[string]any)["href-template"]; tmpl != "/v2/ping" {
				t.Fatalf("rel/ping %v", tmpl)
			}
			// Like any /v2/ request it needs the headers.
			qtErr(t, qtRaw(t, n, "GET", "/v2/", nil, "X-Project-ID: p"), 400, "Missing header value", "Client-ID")
			qtErr(t, qtRaw(t, n, "GET", "/v2/", nil, "Client-ID: "+c.ClientID), 400, "Project-Id Missing", "")
		})
	})
}

func TestGeneric(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("unknown_route", func(t *testing.T) {
			c := newClient(t, n)
			for _, p := range []string{"/v2", "/v2/nothing", "/v1/queues", "/v1.1/queues", "/v1/", "/v3/",
				"/v2/queues/q/messages/m/x", "/v2/queues/q/nothing", "/v2/queues/q/claims/c/x"} {
				for _, method := range []string{"GET", "PUT", "POST", "DELETE"} {
					qtEq(t, c.do(method, p, req{}), 404, `{"title": "404 Not Found"}`)
				}
				// No route, no hooks: no Client-ID still answers 404.
				qtEq(t, qtRaw(t, n, "GET", p, nil), 404, `{"title": "404 Not Found"}`)
			}
		})

		t.Run("method_not_allowed", func(t *testing.T) {
			for _, tc := range []struct {
				method, path string
				allow        []string
			}{
				{"HEAD", "/v2/queues/q", []string{"GET", "PUT", "PATCH", "DELETE"}},
				{"POST", "/v2/queues/q", []string{"GET", "PUT", "PATCH", "DELETE"}},
				{"GET", "/v2/queues/q/claims", []string{"POST"}},
				{"PUT", "/v2/queues/q/messages/m1", []string{"GET", "DELETE"}},
				{"PATCH", "/v2/queues/q/messages", []string{"GET", "POST", "DELETE"}},
				{"POST", "/v2/queues/q/claims/c1", []string{"GET", "PATCH", "DELETE"}},
				{"POST", "/v2/queues", []string{"GET"}},
				{"DELETE", "/v2/queues", []string{"GET"}},
				{"PUT", "/v2/queues/", []string{"GET"}}, // contract M20
				{"POST", "/v2/queues/q/stats", []string{"GET"}},
				{"GET", "/v2/queues/q/purge", []string{"POST"}},
				{"POST", "/v2/ping", []string{"GET", "HEAD"}},
				{"DELETE", "/v2/", []string{"GET"}},
			} {
				t.Run(tc.method+tc.path, func(t *testing.T) {
					c := newClient(t, n)
					r := c.do(tc.method, tc.path, req{})
					r.expect(t, 405)
					allow := map[string]bool{}
					for _, m := range strings.Split(r.Header.Get("Allow"), ",") {
						allow[strings.TrimSpace(m)] = true
					}
					for _, m := range tc.allow {
						if !allow[m] {
							t.Fatalf("Allow %q lacks %s", r.Header.Get("Allow"), m)
						}
					}
					if allow[tc.method] {
						t.Fatalf("Allow %q lists %s", r.Header.Get("Allow"), tc.method)
					}
					if tc.method != "HEAD" {
						qtEq(t, r, 405, `{"title": "405 Method Not Allowed"}`)
					}
				})
			}
		})

		t.Run("method_not_allowed_runs_hooks_first", func(t *testing.T) {
			c := newClient(t, n)
			qtErr(t, qtRaw(t, n, "GET", "/v2/queues/q/claims", nil, "X-Project-ID: "+c.Project),
				400, "Missing header value", "Client-ID")
			qtRaw(t, n, "HEAD", "/v2/queues/q", nil, "X-Project-ID: "+c.Project).expect(t, 400)
			qtErr(t, qtRaw(t, n, "GET", "/v2/queues/q/claims", nil, "Client-ID: "+c.ClientID),
				400, "Project-Id Missing", "")
			qtRaw(t, n, "GET", "/v2/queues/q/claims", nil, append(qtIdent(c), "Accept: application/xml")...).expect(t, 406)
			qtErr(t, qtRaw(t, n, "POST", "/v2/queues", nil, "X-Project-ID: "+c.Project),
				400, "Missing header value", "Client-ID")
			// The queue name of the matched route is validated too (§1.2 4.6).
			qtErr(t, c.get("/v2/queues/Nice-Bo@t/claims"), 400, "Invalid queue identification", "not valid")
			qtErr(t, c.do("POST", "/v2/queues/"+strings.Repeat("a", 65), req{}), 400, "Invalid queue identification", "not valid")
		})

		t.Run("ping", func(t *testing.T) {
			c := newClient(t, n)
			qtEmpty(t, c.get("/v2/ping"), 204)
			qtEmpty(t, c.do("HEAD", "/v2/ping", req{}), 204)
			qtErr(t, qtRaw(t, n, "GET", "/v2/ping", nil, "X-Project-ID: p"), 400, "Missing header value", "Client-ID")
			qtErr(t, qtRaw(t, n, "GET", "/v2/ping", nil, "Client-ID: "+c.ClientID), 400, "Project-Id Missing", "")
		})

		t.Run("errors_are_json", func(t *testing.T) {
			c := newClient(t, n)
			for _, r := range []*resp{
				c.get("/v2/queues?limit=0"),
				c.put("/v2/queues/a%20b", nil),
				c.put("/v2/queues/q", Raw("[]")),
				qtPatch(c, "never", []any{map[string]any{"op": "add", "path": "/metadata/k", "value": 1}}),
				c.do("PATCH", "/v2/queues/q", req{Body: []any{}}),
			} {
				qtJSONCT(t, r)
				m := qtDecode(t, r.Body).(map[string]any)
				if _, ok := m["title"].(string); !ok {
					t.Fatalf("error without title: %s", r.Body)
				}
				for k := range m {
					if k != "title" && k != "description" {
						t.Fatalf("unexpected key %q in error %s", k, r.Body)
					}
				}
			}
		})

		t.Run("bad_json_bodies", func(t *testing.T) {
			parse := "Request body could not be parsed."
			big := "JSON contains integer that is too large."
			for _, tc := range []struct {
				name, body, desc string
			}{
				{"invalid_utf8", "{\"k\": \"\xff\xfe\"}", parse},
				{"invalid_utf8_key", "{\"\xc3\x28\": 1}", parse},
				{"trailing_garbage", `{"k": 1} x`, parse},
				{"two_objects", `{}{}`, parse},
				{"unterminated", `{`, parse},
				{"dot", `.`, parse},
				{"whitespace", "   \n", parse},
				{"bare_string", `"fail"`, parse},
				{"bare_number", `123`, parse},
				{"bare_null", `null`, parse},
				{"bare_true", `true`, parse},
				{"int_too_large", `{"k": 9223372036854775808}`, big},
				{"int_too_small", `{"k": -9223372036854775809}`, big},
				{"nested_int_too_large", `{"k": [1, {"x": 99999999999999999999}]}`, big},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := newClient(t, n)
					qtErr(t, c.put("/v2/queues/q", Raw(tc.body)), 400, "Invalid request body", tc.desc)
					c.put("/v2/queues/q", nil).expect(t, 201) // the rejected PUT created nothing
					qtErr(t, c.post("/v2/queues/q/purge", Raw(tc.body)), 400, "Invalid request body", tc.desc)
				})
			}
		})

		t.Run("int64_bounds_accepted", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", Raw(`{"max": 9223372036854775807, "min": -9223372036854775808, "f": 1.5e300}`)).expect(t, 201)
			qtEq(t, c.get("/v2/queues/q"), 200,
				qtDefaults(t, `{"max": 9223372036854775807, "min": -9223372036854775808, "f": 1.5e300}`))
		})
	})
}

// --- queues ---

func TestQueueCreate(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("created_then_exists", func(t *testing.T) {
			c := newClient(t, n)
			r := c.put("/v2/queues/q", nil)
			qtEmpty(t, r, 201)
			if got := r.Header.Get("Location"); got != "/v2/queues/q" {
				t.Fatalf("Location %q, want /v2/queues/q", got)
			}
			qtEmpty(t, c.put("/v2/queues/q", nil), 204)
			qtEmpty(t, c.put("/v2/queues/q", map[string]any{"a": 1}), 204)
			// Truly without a body (no Content-Length) behaves the same.
			r = qtRaw(t, n, "PUT", "/v2/queues/q2", nil, qtIdent(c)...)
			qtEmpty(t, r, 201)
			qtEmpty(t, qtRaw(t, n, "PUT", "/v2/queues/q2", nil, qtIdent(c)...), 204)
			qtEq(t, c.get("/v2/queues/q2"), 200, qtDefaults(t, ""))
		})

		t.Run("names", func(t *testing.T) {
			for _, tc := range []struct {
				name, path string // path: percent-encoded name
				ok         bool
			}{
				{"64 chars", strings.Repeat("a", 64), true},
				{"dot", "Service.test_queue", true},
				{"all classes", "aZ09_-.", true},
				{"one char", "x", true},
				{"dash only", "-", true},
				{"65 chars", strings.Repeat("a", 65), false},
				{"at sign", "Nice-Bo@t", false},
				{"non-ASCII", "%C3%A9t%C3%A9", false},
				{"non-ASCII 64 bytes", strings.Repeat("a", 62) + "%C3%A9", false},
				{"space", "%20", false},
				{"inner space", "a%20b", false},
				{"plus", "a+b", false},
				{"colon", "a:b", false},
				{"tilde", "a~b", false},
				{"star", "a*", false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := newClient(t, n)
					r := c.put("/v2/queues/"+tc.path, nil)
					if tc.ok {
						qtEmpty(t, r, 201)
						if got := r.Header.Get("Location"); got != "/v2/queues/"+tc.path {
							t.Fatalf("Location %q", got)
						}
						if names := qtNames(t, c); !reflect.DeepEqual(names, []string{tc.path}) {
							t.Fatalf("listed %v", names)
						}
						return
					}
					qtErr(t, r, 400, "Invalid queue identification",
						"The format of the submitted queue name or project id is not valid.")
					for _, method := range []string{"GET", "DELETE", "PATCH"} {
						qtErr(t, c.do(method, "/v2/queues/"+tc.path, req{}), 400, "Invalid queue identification", "")
					}
					qtErr(t, c.get("/v2/queues/"+tc.path+"/stats"), 400, "Invalid queue identification", "")
					qtErr(t, c.post("/v2/queues/"+tc.path+"/purge", nil), 400, "Invalid queue identification", "")
					if names := qtNames(t, c); len(names) != 0 {
						t.Fatalf("listed %v", names)
					}
				})
			}
		})

		t.Run("empty_name_is_405", func(t *testing.T) {
			c := newClient(t, n)
			r := c.put("/v2/queues/", nil)
			qtErr(t, r, 405, "405 Method Not Allowed", qtNoDesc)
			if r.Header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})

		t.Run("bodies", func(t *testing.T) {
			parse := "Request body could not be parsed."
			for _, tc := range []struct {
				name, body, title, desc string
			}{
				{"array", `[]`, "Invalid request body", "Document type not supported."},
				{"array_of_object", `[{"a": 1}]`, "Invalid request body", "Document type not supported."},
				{"unterminated", `{`, "Invalid request body", parse},
				{"dot", `.`, "Invalid request body", parse},
				{"whitespace", "  ", "Invalid request body", parse},
				{"too_large", qtBody(65537), "Invalid API request", "Queue metadata is too large. Max size: 65536"},
				{"too_large_garbage", strings.Repeat("x", 70000), "Invalid API request", "Queue metadata is too large. Max size: 65536"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := newClient(t, n)
					qtErr(t, c.put("/v2/queues/q", Raw(tc.body)), 400, tc.title, tc.desc)
					if qtListed(t, c, "q") {
						t.Fatal("rejected PUT created the queue")
					}
				})
			}
		})

		t.Run("body_at_size_limit", func(t *testing.T) {
			c := newClient(t, n)
			body := qtBody(65536)
			qtEmpty(t, c.put("/v2/queues/q", Raw(body)), 201)
			qtEq(t, c.get("/v2/queues/q"), 200, qtDefaults(t, body))
		})

		t.Run("empty_body_is_no_metadata", func(t *testing.T) {
			c := newClient(t, n)
			qtEmpty(t, qtRaw(t, n, "PUT", "/v2/queues/q", []byte{}, qtIdent(c)...), 201)
			qtEq(t, c.get("/v2/queues/q"), 200, qtDefaults(t, ""))
		})

		t.Run("reserved_metadata_rejected", func(t *testing.T) {
			for _, meta := range []string{
				`{"_default_message_ttl": 59}`,
				`{"_default_message_ttl": 0}`,
				`{"_default_message_ttl": false}`,
				`{"_default_message_ttl": true}`,
				`{"_default_message_ttl": 1209601}`,
				`{"_default_message_ttl": "3600"}`,
				`{"_default_message_ttl": ""}`,
				`{"_default_message_ttl": 100.5}`,
				`{"_max_messages_post_size": 0}`,
				`{"_max_messages_post_size": 262145}`,
				`{"_max_messages_post_size": "1"}`,
				`{"_default_message_delay": 901}`,
				`{"_default_message_delay": -1}`,
				`{"_default_message_delay": "5"}`,
				`{"_max_claim_count": "123"}`,
				`{"_max_claim_count": 1.5}`,
				`{"_dead_letter_queue_messages_ttl": 59}`,
				`{"_dead_letter_queue_messages_ttl": 0}`,
				`{"_dead_letter_queue_messages_ttl": "123"}`,
				`{"_dead_letter_queue_messages_ttl": 1209601}`,
				`{"_enable_encrypt_messages": "yes"}`,
				`{"_enable_encrypt_messages": 1}`,
				`{"_retry_policy": "x"}`,
				`{"ok": 1, "_default_message_ttl": 59}`,
			} {
				t.Run(meta, func(t *testing.T) {
					c := newClient(t, n)
					r := c.put("/v2/queues/q", Raw(meta))
					r.expect(t, 400)
					qtJSONCT(t, r)
					m := qtDecode(t, r.Body).(map[string]any)
					if d, _ := m["description"].(string); d == "" {
						t.Fatalf("400 without description: %s", r.Body)
					}
					// Nothing was created.
					qtEmpty(t, c.put("/v2/queues/q", nil), 201)
					// Validation also applies to a PUT on an existing queue.
					c.put("/v2/queues/q", Raw(meta)).expect(t, 400)
				})
			}
		})

		t.Run("reserved_metadata_accepted", func(t *testing.T) {
			for _, tc := range []struct{ meta, shown string }{
				{`{"_default_message_delay": false}`, `{}`},
				{`{"_default_message_delay": 0}`, `{}`},
				{`{"_default_message_delay": 900}`, `{"_default_message_delay": 900}`},
				{`{"_default_message_ttl": 60}`, `{"_default_message_ttl": 60}`},
				{`{"_default_message_ttl": 1209600}`, `{"_default_message_ttl": 1209600}`},
				{`{"_default_message_ttl": null}`, `{}`},
				{`{"_max_messages_post_size": 1}`, `{"_max_messages_post_size": 1}`},
				{`{"_max_messages_post_size": 262144}`, `{}`},
				{`{"_max_claim_count": -5}`, `{"_max_claim_count": -5}`},
				{`{"_max_claim_count": 0}`, `{}`},
				{`{"_max_claim_count": ""}`, `{}`},
				{`{"_dead_letter_queue": 123}`, `{"_dead_letter_queue": 123}`},
				{`{"_dead_letter_queue": {"a": [1]}}`, `{"_dead_letter_queue": {"a": [1]}}`},
				{`{"_dead_letter_queue_messages_ttl": 60}`, `{"_dead_letter_queue_messages_ttl": 60}`},
				{`{"_dead_letter_queue_messages_ttl": null}`, `{}`},
				{`{"_enable_encrypt_messages": true}`, `{"_enable_encrypt_messages": true}`},
				{`{"_enable_encrypt_messages": ""}`, `{}`},
				{`{"_other": "x", "name": "é€"}`, `{"_other": "x", "name": "é€"}`},
			} {
				t.Run(tc.meta, func(t *testing.T) {
					c := newClient(t, n)
					qtEmpty(t, c.put("/v2/queues/q", Raw(tc.meta)), 201)
					qtEq(t, c.get("/v2/queues/q"), 200, qtDefaults(t, tc.shown))
				})
			}
		})
	})
}

func TestQueueMetadata(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("never_created_has_defaults", func(t *testing.T) {
			c := newClient(t, n)
			r := c.get("/v2/queues/never-created")
			qtEq(t, r, 200, `{"_max_messages_post_size": 262144, "_default_message_ttl": 3600,
				"_default_message_delay": 0, "_dead_letter_queue": null,
				"_dead_letter_queue_messages_ttl": null, "_max_claim_count": null,
				"_enable_encrypt_messages": false}`)
			// Reads never create queues (§3.1).
			if names := qtNames(t, c); len(names) != 0 {
				t.Fatalf("GET created %v", names)
			}
		})

		t.Run("stored_metadata_with_defaults", func(t *testing.T) {
			c := newClient(t, n)
			meta := `{"key": "v", "n": 31, "nested": {"a": [1, 2.5, null, true]}, "_default_message_ttl": 120,
				"_max_claim_count": 0, "_default_message_delay": 0, "_dead_letter_queue": "",
				"_enable_encrypt_messages": false, "_retry_policy": {"retries_with_no_delay": 3}}`
			c.put("/v2/queues/q", Raw(meta)).expect(t, 201)
			// Falsy stored reserved values are shown as defaults (Q2);
			// _retry_policy appears because it is stored.
			qtEq(t, c.get("/v2/queues/q"), 200, qtDefaults(t, `{"key": "v", "n": 31,
				"nested": {"a": [1, 2.5, null, true]}, "_default_message_ttl": 120,
				"_retry_policy": {"retries_with_no_delay": 3}}`))
		})

		t.Run("non_ascii_written_literally", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"name": "é€ 漢"}).expect(t, 201)
			r := c.get("/v2/queues/q").expect(t, 200)
			if !bytes.Contains(r.Body, []byte("é€ 漢")) {
				t.Fatalf("non-ASCII escaped: %s", r.Body)
			}
		})

		t.Run("put_on_existing_ignores_metadata", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"old": 1, "_default_message_ttl": 100}).expect(t, 201)
			qtEmpty(t, c.put("/v2/queues/q", map[string]any{"new": 2, "_default_message_ttl": 200}), 204)
			qtEmpty(t, c.put("/v2/queues/q", map[string]any{}), 204)
			qtEq(t, c.get("/v2/queues/q"), 200, qtDefaults(t, `{"old": 1, "_default_message_ttl": 100}`))
		})

		t.Run("detailed_listing_matches_get", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"a": "b", "_max_claim_count": 3}).expect(t, 201)
			r := c.get("/v2/queues?detailed=true").expect(t, 200)
			m := qtDecode(t, r.Body).(map[string]any)
			item := m["queues"].([]any)[0].(map[string]any)
			if !reflect.DeepEqual(item["metadata"], map[string]any(qtDefaults(t, `{"a": "b", "_max_claim_count": 3}`))) {
				t.Fatalf("detailed item %v", item)
			}
		})
	})
}

func TestQueuePatch(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		add := func(path string, v any) map[string]any { return map[string]any{"op": "add", "path": path, "value": v} }
		replace := func(path string, v any) map[string]any {
			return map[string]any{"op": "replace", "path": path, "value": v}
		}
		remove := func(path string) map[string]any { return map[string]any{"op": "remove", "path": path} }
		ops := func(o ...map[string]any) []any {
			out := make([]any, len(o))
			for i := range o {
				out[i] = o[i]
			}
			return out
		}
		const unsupported = `{"title": "Accepted media type for PATCH: {'Accept-Patch': 'application/openstack-messaging-v2.0-json-patch'}."}`

		t.Run("content_type", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", nil).expect(t, 201)
			body := ops(add("/metadata/k", 1))
			for _, ct := range []string{"application/json", qtPatchType + "; charset=utf-8",
				"application/json-patch+json", "APPLICATION/OPENSTACK-MESSAGING-V2.0-JSON-PATCH"} {
				r := c.do("PATCH", "/v2/queues/q", req{Body: body, Headers: map[string]string{"Content-Type": ct}})
				qtEq(t, r, 415, unsupported)
				if r.Header.Get("Accept-Patch") != "" {
					t.Fatalf("Accept-Patch header set")
				}
			}
			b, _ := json.Marshal(body)
			qtEq(t, qtRaw(t, n, "PATCH", "/v2/queues/q", b, qtIdent(c)...), 415, unsupported)
			// Nothing was applied.
			qtEq(t, c.get("/v2/queues/q"), 200, qtDefaults(t, ""))
			// 415 also on a missing queue (content type is checked first).
			r := c.do("PATCH", "/v2/queues/missing", req{Body: body})
			qtEq(t, r, 415, unsupported)
		})

		t.Run("too_large_before_content_type", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", nil).expect(t, 201)
			big := `[{"op": "add", "path": "/metadata/k", "value": "` + strings.Repeat("x", 65536) + `"}]`
			qtErr(t, c.do("PATCH", "/v2/queues/q", req{Body: Raw(big)}), 400, "Invalid request body", "")
			qtErr(t, qtPatch(c, "q", Raw(big)), 400, "Invalid request body", "")
		})

		t.Run("add", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"old": true}).expect(t, 201)
			want := qtDefaults(t, `{"old": true, "key1": 1}`)
			qtEq(t, qtPatch(c, "q", ops(add("/metadata/key1", 1))), 200, want)
			qtEq(t, c.get("/v2/queues/q"), 200, want)
			// add overwrites.
			want = qtDefaults(t, `{"old": true, "key1": {"x": [1]}}`)
			qtEq(t, qtPatch(c, "q", ops(add("/metadata/key1", map[string]any{"x": []any{1}}))), 200, want)
			qtEq(t, c.get("/v2/queues/q"), 200, want)
		})

		t.Run("reserved_absent_keys", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", nil).expect(t, 201)
			qtEq(t, qtPatch(c, "q", ops(remove("/metadata/_default_message_ttl"))), 200, qtDefaults(t, ""))
			qtEq(t, qtPatch(c, "q", ops(replace("/metadata/_default_message_ttl", 300))), 200,
				qtDefaults(t, `{"_default_message_ttl": 300}`))
			qtEq(t, c.get("/v2/queues/q"), 200, qtDefaults(t, `{"_default_message_ttl": 300}`))
			qtEq(t, qtPatch(c, "q", ops(replace("/metadata/_max_claim_count", 5), remove("/metadata/_dead_letter_queue"))), 200,
				qtDefaults(t, `{"_default_message_ttl": 300, "_max_claim_count": 5}`))
			qtEq(t, qtPatch(c, "q", ops(remove("/metadata/_default_message_ttl"))), 200,
				qtDefaults(t, `{"_max_claim_count": 5}`))
			qtEq(t, c.get("/v2/queues/q"), 200, qtDefaults(t, `{"_max_claim_count": 5}`))
		})

		t.Run("absent_normal_key_conflicts", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"key1": 1}).expect(t, 201)
			qtErr(t, qtPatch(c, "q", ops(remove("/metadata/key3"))), 409, "Resource conflict", "Can't remove non-existent object key3.")
			qtErr(t, qtPatch(c, "q", ops(replace("/metadata/key3", 1))), 409, "Resource conflict", "Can't replace non-existent object key3.")
			// Operations apply in order and all-or-nothing.
			qtErr(t, qtPatch(c, "q", ops(add("/metadata/key2", 2), remove("/metadata/key3"))), 409, "Resource conflict", "key3")
			qtEq(t, c.get("/v2/queues/q"), 200, qtDefaults(t, `{"key1": 1}`))
			qtEq(t, qtPatch(c, "q", ops(add("/metadata/key3", 3), replace("/metadata/key3", 4), remove("/metadata/key1"))), 200,
				qtDefaults(t, `{"key3": 4}`))
			qtEq(t, qtPatch(c, "q", ops(remove("/metadata/key3"), add("/metadata/key3", 5))), 200, qtDefaults(t, `{"key3": 5}`))
		})

		t.Run("pointer_rules", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"gone": 1}).expect(t, 201)
			// ~1 and ~0 unescape; tokens are trimmed; add/replace roots are
			// case-insensitive; remove does not check the root (Q6).
			qtEq(t, qtPatch(c, "q", ops(add("/metadata/a~1b", 1), add("/metadata/c~0d", 2),
				add("/METADATA/ e ", 3), remove("/anything/gone"))), 200,
				qtDefaults(t, `{"a/b": 1, "c~d": 2, "e": 3}`))
		})

		t.Run("python_zaqarclient_metadata_update", func(t *testing.T) {
			// queue.metadata(new_meta=...) GETs, then replaces non-null
			// keys, adds null ones and removes keys not in the new dict.
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"old": 1}).expect(t, 201)
			cur := c.get("/v2/queues/q").JSON(t)
			newMeta := map[string]any{"k": "v", "_default_message_ttl": 600, "_dead_letter_queue": "dlq"}
			var list []any
			for _, k := range keys(cur) {
				if _, keep := newMeta[k]; !keep {
					list = append(list, remove("/metadata/"+k))
				}
			}
			for _, k := range keys(newMeta) {
				if cur[k] != nil {
					list = append(list, replace("/metadata/"+k, newMeta[k]))
				} else {
					list = append(list, add("/metadata/"+k, newMeta[k]))
				}
			}
			want := qtDefaults(t, `{"k": "v", "_default_message_ttl": 600, "_dead_letter_queue": "dlq"}`)
			qtEq(t, qtPatch(c, "q", list), 200, want)
			qtEq(t, c.get("/v2/queues/q"), 200, want)
		})

		t.Run("invalid_documents", func(t *testing.T) {
			bad := func(s string) any { return Raw(s) }
			for _, tc := range []struct {
				name string
				body any
				desc string
			}{
				{"path_one_token", ops(add("/a", 1)), ""},
				{"path_three_tokens", ops(add("/metadata/a/b", 1)), ""},
				{"path_no_slash", ops(add("metadata/a", 1)), ""},
				{"path_double_slash", ops(add("/metadata//a", 1)), ""},
				{"path_trailing_slash", ops(add("/metadata/a/", 1)), ""},
				{"path_bad_tilde", ops(add("/metadata/a~2", 1)), ""},
				{"path_root", ops(add("/", 1)), ""},
				{"path_missing", ops(map[string]any{"op": "add", "value": 1}), ""},
				{"path_not_string", ops(map[string]any{"op": "add", "path": 1, "value": 1}), ""},
				{"remove_one_token", ops(remove("/a")), ""},
				{"op_unknown", ops(map[string]any{"op": "a", "path": "/metadata/a", "value": 1}), ""},
				{"op_missing", ops(map[string]any{"path": "/metadata/a", "value": 1}), ""},
				{"op_move", ops(map[string]any{"op": "move", "path": "/metadata/a", "from": "/metadata/b"}), ""},
				{"add_wrong_root", ops(add("/meta/a", 1)), ""},
				{"add_value_missing", ops(map[string]any{"op": "add", "path": "/metadata/a"}), `Operation "add" requires a member named "value".`},
				{"replace_value_missing", ops(map[string]any{"op": "replace", "path": "/metadata/a"}), `Operation "replace" requires a member named "value".`},
				{"element_not_object", bad(`[1]`), "Operations must be JSON objects."},
				{"later_element_invalid", ops(add("/metadata/ok", 1), add("/a", 1)), ""},
				{"object_body", bad(`{"op": "add", "path": "/metadata/a", "value": 1}`), "Document type not supported."},
				{"unparseable", bad(`[`), "Request body could not be parsed."},
				{"bare_string", bad(`"fail"`), "Request body could not be parsed."},
				{"big_int", bad(`[{"op": "add", "path": "/metadata/a", "value": 9223372036854775808}]`), "JSON contains integer that is too large."},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := newClient(t, n)
					c.put("/v2/queues/q", nil).expect(t, 201)
					qtErr(t, qtPatch(c, "q", tc.body), 400, "Invalid request body", tc.desc)
					qtEq(t, c.get("/v2/queues/q"), 200, qtDefaults(t, ""))
					// Validation errors win over the missing queue's 404.
					qtErr(t, qtPatch(c, "missing", tc.body), 400, "Invalid request body", tc.desc)
				})
			}
		})

		t.Run("no_body", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", nil).expect(t, 201)
			for _, q := range []string{"q", "missing"} {
				r := qtRaw(t, n, "PATCH", "/v2/queues/"+q, nil, append(qtIdent(c), "Content-Type: "+qtPatchType)...)
				qtErr(t, r, 400, "Invalid request body", "PATCH body could not be empty for update.")
				r = qtRaw(t, n, "PATCH", "/v2/queues/"+q, []byte{}, append(qtIdent(c), "Content-Type: "+qtPatchType)...)
				qtErr(t, r, 400, "Invalid request body", "PATCH body could not be empty for update.")
			}
		})

		t.Run("missing_queue", func(t *testing.T) {
			c := newClient(t, n)
			qtErr(t, qtPatch(c, "missing", ops(add("/metadata/k", 1))), 404, "Not found", "")
			qtErr(t, qtPatch(c, "missing", ops(remove("/metadata/_default_message_ttl"))), 404, "Not found", "")
			qtErr(t, qtPatch(c, "missing", []any{}), 404, "Not found", "")
			// PATCH does not create the queue.
			if names := qtNames(t, c); len(names) != 0 {
				t.Fatalf("PATCH created %v", names)
			}
			// A deleted queue is missing too.
			c.put("/v2/queues/q", nil).expect(t, 201)
			c.del("/v2/queues/q").expect(t, 204)
			qtErr(t, qtPatch(c, "q", ops(add("/metadata/k", 1))), 404, "Not found", "")
		})

		t.Run("empty_patch", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"a": 1}).expect(t, 201)
			qtEq(t, qtPatch(c, "q", []any{}), 200, qtDefaults(t, `{"a": 1}`))
		})

		t.Run("result_validated", func(t *testing.T) {
			for _, tc := range []struct {
				name string
				ops  []any
			}{
				{"ttl_30", ops(replace("/metadata/_default_message_ttl", 30))},
				{"ttl_false", ops(add("/metadata/_default_message_ttl", false))},
				{"delay_901", ops(add("/metadata/_default_message_delay", 901))},
				{"post_size_0", ops(replace("/metadata/_max_messages_post_size", 0))},
				{"claim_count_string", ops(add("/metadata/_max_claim_count", "x"))},
				{"dlq_ttl_59", ops(add("/metadata/_dead_letter_queue_messages_ttl", 59))},
				{"encrypt_string", ops(add("/metadata/_enable_encrypt_messages", "yes"))},
				{"valid_then_invalid", ops(add("/metadata/k", 1), replace("/metadata/_default_message_ttl", 30))},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := newClient(t, n)
					c.put("/v2/queues/q", map[string]any{"_default_message_ttl": 120}).expect(t, 201)
					r := qtPatch(c, "q", tc.ops)
					qtErr(t, r, 400, "Invalid request body", "")
					if d, _ := r.JSON(t)["description"].(string); d == "" {
						t.Fatalf("no description: %s", r.Body)
					}
					qtEq(t, c.get("/v2/queues/q"), 200, qtDefaults(t, `{"_default_message_ttl": 120}`))
				})
			}
			// false is a valid _default_message_delay (treated as 0) in a PATCH too.
			c := newClient(t, n)
			c.put("/v2/queues/q", nil).expect(t, 201)
			qtEq(t, qtPatch(c, "q", ops(add("/metadata/_default_message_delay", false))), 200, qtDefaults(t, ""))
		})
	})
}

func TestQueueList(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		item := func(name string) map[string]any { return map[string]any{"name": name, "href": "/v2/queues/" + name} }
		page := func(next string, names ...string) map[string]any {
			qs := make([]any, len(names))
			for i, nm := range names {
				qs[i] = item(nm)
			}
			links := []any{}
			if next != "" {
				links = []any{map[string]any{"rel": "next", "href": next}}
			}
			return map[string]any{"queues": qs, "links": links}
		}
		create := func(c *client, names ...string) {
			for _, nm := range names {
				c.put("/v2/queues/"+nm, nil).expect(t, 201)
			}
		}

		t.Run("empty_project", func(t *testing.T) {
			c := newClient(t, n)
			qtEq(t, c.get("/v2/queues"), 200, `{"queues": [], "links": []}`)
			qtEq(t, c.get("/v2/queues?with_count=true"), 200, `{"queues": [], "links": []}`)
			qtEq(t, c.get("/v2/queues?detailed=true&limit=5"), 200, `{"queues": [], "links": []}`)
		})

		t.Run("parameters", func(t *testing.T) {
			limitMsg := "Limit must be at least 1 and no greater than 20."
			for _, tc := range []struct {
				query, title, desc string
			}{
				{"limit=0", "Invalid API request", limitMsg},
				{"limit=-1", "Invalid API request", limitMsg},
				{"limit=21", "Invalid API request", limitMsg},
				{"limit=200", "Invalid API request", limitMsg},
				{"limit=abc", "Invalid parameter", `The "limit" parameter is invalid. The value must be an integer.`},
				{"limit=5.0", "Invalid parameter", "must be an integer"},
				{"limit=%20", "Invalid parameter", "must be an integer"},
				{"detailed=None", "Invalid parameter", `The value of the parameter must be "true" or "false".`},
				{"detailed=maybe", "Invalid parameter", "detailed"},
				{"with_count=None", "Invalid parameter", "with_count"},
			} {
				t.Run(tc.query, func(t *testing.T) {
					c := newClient(t, n)
					qtErr(t, c.get("/v2/queues?"+tc.query), 400, tc.title, tc.desc)
				})
			}
			c := newClient(t, n)
			create(c, "a", "b")
			for _, query := range []string{"limit=20", "limit=1", "limit=%2B1", "limit=", "detailed=True",
				"detailed=0", "detailed=", "with_count=yes", "marker="} {
				c.get("/v2/queues?"+query).expect(t, 200)
			}
			qtEq(t, c.get("/v2/queues?limit=%2B1"), 200, page("/v2/queues?limit=1&marker=a", "a"))
			qtEq(t, c.get("/v2/queues?limit=&marker="), 200, page("/v2/queues?marker=b", "a", "b"))
		})

		t.Run("paging", func(t *testing.T) {
			c := newClient(t, n)
			create(c, "q3", "q1", "q2")
			r := c.get("/v2/queues?limit=2")
			qtEq(t, r, 200, page("/v2/queues?limit=2&marker=q2", "q1", "q2"))
			// The client's marker keeps its place in the next link (§1.8).
			r = c.get("/v2/queues?limit=2&marker=q2")
			qtEq(t, r, 200, page("/v2/queues?marker=q3&limit=2", "q3"))
			r = c.get("/v2/queues?marker=q3&limit=2")
			qtEq(t, r, 200, page(""))
			// Following the links as python-zaqarclient does ends on an
			// empty page.
			var got []string
			path := "/v2/queues?limit=2"
			for i := 0; ; i++ {
				if i > 5 {
					t.Fatal("paging does not end")
				}
				var p struct {
					Queues []struct{ Name string }
					Links  []struct{ Rel, Href string }
				}
				if err := json.Unmarshal(c.get(path).expect(t, 200).Body, &p); err != nil {
					t.Fatal(err)
				}
				if len(p.Queues) == 0 {
					if len(p.Links) != 0 {
						t.Fatalf("empty page with links %v", p.Links)
					}
					break
				}
				if len(p.Links) != 1 || p.Links[0].Rel != "next" || !strings.HasPrefix(p.Links[0].Href, "/v2/queues?") {
					t.Fatalf("links %v", p.Links)
				}
				for _, q := range p.Queues {
					got = append(got, q.Name)
				}
				path = p.Links[0].Href
			}
			if !reflect.DeepEqual(got, []string{"q1", "q2", "q3"}) {
				t.Fatalf("paged %v", got)
			}
			// A marker that is no queue name lists the names after it.
			qtEq(t, c.get("/v2/queues?marker=q10"), 200, page("/v2/queues?marker=q3", "q2", "q3"))
			qtEq(t, c.get("/v2/queues?marker=zzz"), 200, page(""))
		})

		t.Run("default_limit_10", func(t *testing.T) {
			c := newClient(t, n)
			var names []string
			for i := 0; i < 12; i++ {
				names = append(names, fmt.Sprintf("q%02d", i))
			}
			create(c, names...)
			qtEq(t, c.get("/v2/queues"), 200, page("/v2/queues?marker=q09", names[:10]...))
			qtEq(t, c.get("/v2/queues?marker=q09"), 200, page("/v2/queues?marker=q11", names[10:]...))
			qtEq(t, c.get("/v2/queues?limit=20"), 200, page("/v2/queues?limit=20&marker=q11", names...))
		})

		t.Run("sorted_by_name", func(t *testing.T) {
			c := newClient(t, n)
			create(c, "b", "_x", "a", "B", "1", "A-", "a.b", "a-b", "aa")
			want := []string{"1", "A-", "B", "_x", "a", "a-b", "a.b", "aa", "b"}
			if got := qtNames(t, c); !reflect.DeepEqual(got, want) {
				t.Fatalf("order %v, want %v", got, want)
			}
		})

		t.Run("with_count", func(t *testing.T) {
			c := newClient(t, n)
			create(c, "a1", "a2", "b1")
			r := c.get("/v2/queues?with_count=true")
			want := page("/v2/queues?with_count=true&marker=b1", "a1", "a2", "b1")
			want["count"] = json.Number("3")
			qtEq(t, r, 200, want)
			// count is the project's total, regardless of paging and filters.
			want = page("/v2/queues?limit=1&with_count=true&marker=a1", "a1")
			want["count"] = json.Number("3")
			qtEq(t, c.get("/v2/queues?limit=1&with_count=true"), 200, want)
			want = page("/v2/queues?name=b&with_count=true&marker=b1", "b1")
			want["count"] = json.Number("3")
			qtEq(t, c.get("/v2/queues?name=b&with_count=true"), 200, want)
			// Absent unless asked for.
			qtEq(t, c.get("/v2/queues?with_count=false"), 200, page("/v2/queues?with_count=false&marker=b1", "a1", "a2", "b1"))
			qtEq(t, c.get("/v2/queues"), 200, page("/v2/queues?marker=b1", "a1", "a2", "b1"))
			// An empty page past the end still carries the count.
			want = page("")
			want["count"] = json.Number("3")
			qtEq(t, c.get("/v2/queues?with_count=true&marker=b1"), 200, want)
		})

		t.Run("detailed", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/a", map[string]any{"node": 31, "_default_message_ttl": 120}).expect(t, 201)
			c.put("/v2/queues/b", nil).expect(t, 201)
			qa := item("a")
			qa["metadata"] = qtDefaults(t, `{"node": 31, "_default_message_ttl": 120}`)
			qb := item("b")
			qb["metadata"] = qtDefaults(t, "")
			qtEq(t, c.get("/v2/queues?detailed=true"), 200, map[string]any{
				"queues": []any{qa, qb},
				"links":  []any{map[string]any{"rel": "next", "href": "/v2/queues?detailed=true&marker=b"}},
			})
			qtEq(t, c.get("/v2/queues?detailed=false&limit=1"), 200, page("/v2/queues?limit=1&detailed=false&marker=a", "a"))
		})

		t.Run("metadata_filter", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/a", map[string]any{"node": 31}).expect(t, 201)
			c.put("/v2/queues/b", map[string]any{"node": "31"}).expect(t, 201)
			c.put("/v2/queues/c", map[string]any{"node": 32}).expect(t, 201)
			c.put("/v2/queues/d", nil).expect(t, 201)
			c.put("/v2/queues/e", map[string]any{"node": 31, "zone": "west"}).expect(t, 201)
			c.put("/v2/queues/f", map[string]any{"node": "abc"}).expect(t, 201)
			// The value is converted to int when it parses as one; the
			// filter is not carried into the next link.
			qtEq(t, c.get("/v2/queues?node=31"), 200, page("/v2/queues?marker=e", "a", "e"))
			qtEq(t, c.get("/v2/queues?node=31&limit=1"), 200, page("/v2/queues?limit=1&marker=a", "a"))
			qtEq(t, c.get("/v2/queues?node=31&limit=1&marker=a"), 200, page("/v2/queues?marker=e&limit=1", "e"))
			qtEq(t, c.get("/v2/queues?node=31&zone=west"), 200, page("/v2/queues?marker=e", "e"))
			qtEq(t, c.get("/v2/queues?node=abc"), 200, page("/v2/queues?marker=f", "f"))
			qtEq(t, c.get("/v2/queues?node=33"), 200, page(""))
			qtEq(t, c.get("/v2/queues?missing=1"), 200, page(""))
			// A blank filter value is absent.
			qtEq(t, c.get("/v2/queues?node="), 200, page("/v2/queues?marker=f", "a", "b", "c", "d", "e", "f"))
		})

		t.Run("name_filter", func(t *testing.T) {
			c := newClient(t, n)
			create(c, "alpha", "beta", "alphabet", "x.y", "xzy", "Alpha")
			qtEq(t, c.get("/v2/queues?name=alph"), 200, page("/v2/queues?name=alph&marker=alphabet", "alpha", "alphabet"))
			qtEq(t, c.get("/v2/queues?name=bet"), 200, page("/v2/queues?name=bet&marker=beta", "alphabet", "beta"))
			qtEq(t, c.get("/v2/queues?name=alph&limit=1"), 200, page("/v2/queues?limit=1&name=alph&marker=alpha", "alpha"))
			// A plain substring, not a regex (B18).
			qtEq(t, c.get("/v2/queues?name=."), 200, page("/v2/queues?name=.&marker=x.y", "x.y"))
			qtEq(t, c.get("/v2/queues?name=nomatch"), 200, page(""))
			// Combined with detailed and with_count, all kept in the link.
			r := c.get("/v2/queues?name=beta&detailed=true&with_count=true").expect(t, 200)
			m := qtDecode(t, r.Body).(map[string]any)
			if want := []any{map[string]any{"rel": "next", "href": "/v2/queues?detailed=true&name=beta&with_count=true&marker=beta"}}; !reflect.DeepEqual(m["links"], want) {
				t.Fatalf("links %v", m["links"])
			}
			if m["count"] != json.Number("6") {
				t.Fatalf("count %v", m["count"])
			}
		})

		t.Run("only_created_queues", func(t *testing.T) {
			c := newClient(t, n)
			c.get("/v2/queues/read1").expect(t, 200)
			c.get("/v2/queues/read2/stats").expect(t, 200)
			c.post("/v2/queues/read3/purge", nil).expect(t, 204)
			c.del("/v2/queues/read4").expect(t, 204)
			c.postMessages("posted", msg(1))
			qtEq(t, c.get("/v2/queues"), 200, page("/v2/queues?marker=posted", "posted"))
		})
	})
}

func TestQueueDelete(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("idempotent_and_unlisted", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/a", map[string]any{"k": 1}).expect(t, 201)
			c.put("/v2/queues/b", nil).expect(t, 201)
			qtEmpty(t, c.del("/v2/queues/a"), 204)
			qtEmpty(t, c.del("/v2/queues/a"), 204)
			qtEmpty(t, c.del("/v2/queues/never"), 204)
			if got := qtNames(t, c); !reflect.DeepEqual(got, []string{"b"}) {
				t.Fatalf("listed %v", got)
			}
			qtEq(t, c.get("/v2/queues/a"), 200, qtDefaults(t, ""))
			// Recreating is a new queue with fresh metadata.
			qtEmpty(t, c.put("/v2/queues/a", map[string]any{"new": 2}), 201)
			qtEq(t, c.get("/v2/queues/a"), 200, qtDefaults(t, `{"new": 2}`))
		})

		t.Run("messages_gone_after_recreate", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", nil).expect(t, 201)
			ids := c.postMessages("q", msg(1), msg(2))
			qtClaim(t, c, "q", 1)
			c.del("/v2/queues/q").expect(t, 204)
			qtEq(t, c.get("/v2/queues/q/stats"), 200, `{"messages": {"claimed": 0, "free": 0, "total": 0}}`)
			c.put("/v2/queues/q", nil).expect(t, 201)
			qtEq(t, c.get("/v2/queues/q/messages?echo=true&include_claimed=true"), 200, `{"messages": [], "links": []}`)
			qtEq(t, c.get("/v2/queues/q/stats"), 200, `{"messages": {"claimed": 0, "free": 0, "total": 0}}`)
			for _, id := range ids {
				c.get("/v2/queues/q/messages/"+id).expect(t, 404)
			}
			// Lazily recreated by a post: still only the new message.
			c.del("/v2/queues/q").expect(t, 204)
			nid := c.postMessages("q", msg(3))
			r := c.get("/v2/queues/q/messages?echo=true").expect(t, 200)
			var out struct{ Messages []struct{ ID string } }
			json.Unmarshal(r.Body, &out)
			if len(out.Messages) != 1 || out.Messages[0].ID != nid[0] {
				t.Fatalf("messages after recreate: %s", r.Body)
			}
		})
	})
}

func TestQueueStats(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		zero := `{"messages": {"claimed": 0, "free": 0, "total": 0}}`

		t.Run("missing_queue", func(t *testing.T) {
			c := newClient(t, n)
			qtEq(t, c.get("/v2/queues/missing/stats"), 200, zero)
			if names := qtNames(t, c); len(names) != 0 {
				t.Fatalf("stats created %v", names)
			}
		})

		t.Run("empty_queue", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", nil).expect(t, 201)
			qtEq(t, c.get("/v2/queues/q/stats"), 200, zero)
		})

		t.Run("oldest_and_newest", func(t *testing.T) {
			c := newClient(t, n)
			first := c.postMessages("q", msg("a"))
			n.Clock.Advance(7 * time.Second)
			rest := c.postMessages("q", msg("b"), msg("c"))
			n.Clock.Advance(2 * time.Second)
			s := qtStats(t, c, "q")
			qtCounts(t, s, 0, 3, 3)
			if got := keys(s); !reflect.DeepEqual(got, []string{"claimed", "free", "newest", "oldest", "total"}) {
				t.Fatalf("stats keys %v", got)
			}
			var created [2]time.Time
			var age [2]int64
			for i, tc := range []struct{ key, id string }{{"oldest", first[0]}, {"newest", rest[1]}} {
				o, ok := s[tc.key].(map[string]any)
				if !ok {
					t.Fatalf("%s: %v", tc.key, s[tc.key])
				}
				if got := keys(o); !reflect.DeepEqual(got, []string{"age", "created", "href"}) {
					t.Fatalf("%s keys %v", tc.key, got)
				}
				if o["href"] != "/v2/queues/q/messages/"+tc.id {
					t.Fatalf("%s href %v, want id %s", tc.key, o["href"], tc.id)
				}
				a, ok := o["age"].(json.Number)
				if !ok || strings.ContainsAny(string(a), ".eE") {
					t.Fatalf("%s age %v is not an integer", tc.key, o["age"])
				}
				age[i], _ = a.Int64()
				cs, _ := o["created"].(string)
				if !strings.HasSuffix(cs, "Z") {
					t.Fatalf("%s created %q", tc.key, cs)
				}
				ts, err := time.Parse("2006-01-02T15:04:05Z", cs)
				if err != nil {
					t.Fatalf("%s created %q: %v", tc.key, cs, err)
				}
				created[i] = ts
			}
			if age[0] < 9 || age[0] > 12 || age[1] < 2 || age[1] > 5 {
				t.Fatalf("ages oldest %d newest %d, want ~9 and ~2", age[0], age[1])
			}
			if d := created[1].Sub(created[0]); d < 6*time.Second || d > 8*time.Second {
				t.Fatalf("created %v and %v are not ~7 s apart", created[0], created[1])
			}
			if d := n.Clock.Now().Sub(created[0]); d < 8*time.Second || d > 12*time.Second {
				t.Fatalf("oldest created %v is %v before the node's now, want ~9 s", created[0], d)
			}
		})

		t.Run("claimed_and_free", func(t *testing.T) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1), msg(2), msg(3), msg(4))
			claimed := qtClaim(t, c, "q", 3)
			if !reflect.DeepEqual(claimed, ids[:3]) {
				t.Fatalf("claimed %v of %v", claimed, ids)
			}
			s := qtStats(t, c, "q")
			qtCounts(t, s, 3, 1, 4)
			// Claimed messages count for oldest/newest.
			if h := s["oldest"].(map[string]any)["href"]; h != "/v2/queues/q/messages/"+ids[0] {
				t.Fatalf("oldest %v", h)
			}
			if h := s["newest"].(map[string]any)["href"]; h != "/v2/queues/q/messages/"+ids[3] {
				t.Fatalf("newest %v", h)
			}
			// Deleting a claimed message and the claim's expiry.
			c.del("/v2/queues/q/messages/"+ids[3]).expect(t, 204)
			qtCounts(t, qtStats(t, c, "q"), 3, 0, 3)
			n.Clock.Advance(301 * time.Second)
			qtCounts(t, qtStats(t, c, "q"), 0, 3, 3)
		})

		t.Run("delayed_count_as_free", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"_default_message_delay": 30}).expect(t, 201)
			c.postMessages("q", msg(1))
			qtCounts(t, qtStats(t, c, "q"), 0, 1, 1)
		})

		t.Run("expired_not_counted", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1, "ttl", 60))
			c.postMessages("q", msg(2, "ttl", 120))
			qtCounts(t, qtStats(t, c, "q"), 0, 2, 2)
			n.Clock.Advance(61 * time.Second)
			s := qtStats(t, c, "q")
			qtCounts(t, s, 0, 1, 1)
			if s["oldest"].(map[string]any)["href"] != s["newest"].(map[string]any)["href"] {
				t.Fatalf("one message, different oldest/newest: %v", s)
			}
			n.Clock.Advance(60 * time.Second)
			qtEq(t, c.get("/v2/queues/q/stats"), 200, zero)
		})
	})
}

func TestQueuePurge(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("invalid_bodies", func(t *testing.T) {
			subset := "Resource types must be a sub set of"
			for _, tc := range []struct {
				name, body, title, desc string
			}{
				{"wrong_key", `{"wrong_key": ["messages"]}`, "Invalid API request", `Post body must contain key "resource_types".`},
				{"empty_object", `{}`, "Invalid API request", `Post body must contain key "resource_types".`},
				{"wrong_value", `{"resource_types": ["wrong_value"]}`, "Invalid API request", subset},
				{"one_wrong_value", `{"resource_types": ["messages", "queues"]}`, "Invalid API request", subset},
				{"string", `{"resource_types": "messages"}`, "Invalid API request", subset},
				{"null", `{"resource_types": null}`, "Invalid API request", subset},
				{"object", `{"resource_types": {"messages": 1}}`, "Invalid API request", subset},
				{"array_body", `["messages"]`, "Invalid request body", "Document type not supported."},
				{"unparseable", `{"resource_types": [`, "Invalid request body", "Request body could not be parsed."},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := newClient(t, n)
					c.postMessages("q", msg(1), msg(2))
					qtErr(t, c.post("/v2/queues/q/purge", Raw(tc.body)), 400, tc.title, tc.desc)
					qtCounts(t, qtStats(t, c, "q"), 0, 2, 2)
				})
			}
		})

		t.Run("empty_list_purges_nothing", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1), msg(2))
			qtEmpty(t, c.post("/v2/queues/q/purge", map[string]any{"resource_types": []any{}}), 204)
			qtCounts(t, qtStats(t, c, "q"), 0, 2, 2)
		})

		t.Run("subscriptions_only_keeps_messages", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1), msg(2))
			qtEmpty(t, c.post("/v2/queues/q/purge", map[string]any{"resource_types": []any{"subscriptions"}}), 204)
			qtCounts(t, qtStats(t, c, "q"), 0, 2, 2)
		})

		// purge removes unclaimed messages and keeps claimed ones (§3.9).
		check := func(t *testing.T, c *client, purge func(c *client) *resp) {
			t.Helper()
			c.put("/v2/queues/q", map[string]any{"keep": "me"}).expect(t, 201)
			ids := c.postMessages("q", msg(1), msg(2), msg(3), msg(4))
			claimed := qtClaim(t, c, "q", 2)
			qtEmpty(t, purge(c), 204)
			qtCounts(t, qtStats(t, c, "q"), 2, 0, 2)
			for _, id := range claimed {
				c.get("/v2/queues/q/messages/"+id).expect(t, 200)
			}
			for _, id := range ids[2:] {
				c.get("/v2/queues/q/messages/"+id).expect(t, 404)
			}
			// The queue and its metadata stay.
			qtEq(t, c.get("/v2/queues/q"), 200, qtDefaults(t, `{"keep": "me"}`))
			if !qtListed(t, c, "q") {
				t.Fatal("purge deleted the queue")
			}
			// Once the claim expires the survivors are free again.
			n.Clock.Advance(301 * time.Second)
			qtCounts(t, qtStats(t, c, "q"), 0, 2, 2)
		}

		t.Run("messages", func(t *testing.T) {
			check(t, newClient(t, n), func(c *client) *resp {
				return c.post("/v2/queues/q/purge", map[string]any{"resource_types": []any{"messages"}})
			})
		})

		t.Run("both_types", func(t *testing.T) {
			check(t, newClient(t, n), func(c *client) *resp {
				return c.post("/v2/queues/q/purge", map[string]any{"resource_types": []any{"subscriptions", "messages"}})
			})
		})

		t.Run("no_body", func(t *testing.T) {
			check(t, newClient(t, n), func(c *client) *resp {
				return qtRaw(t, n, "POST", "/v2/queues/q/purge", nil, qtIdent(c)...)
			})
		})

		t.Run("content_length_0", func(t *testing.T) {
			// python-zaqarclient's purge() without types posts no data.
			check(t, newClient(t, n), func(c *client) *resp {
				return qtRaw(t, n, "POST", "/v2/queues/q/purge", []byte{}, qtIdent(c)...)
			})
		})

		t.Run("delayed_messages_purged", func(t *testing.T) {
			c := newClient(t, n)
			c.put("/v2/queues/q", map[string]any{"_default_message_delay": 60}).expect(t, 201)
			c.postMessages("q", msg(1), msg(2))
			qtEmpty(t, c.post("/v2/queues/q/purge", map[string]any{"resource_types": []any{"messages"}}), 204)
			qtEq(t, c.get("/v2/queues/q/stats"), 200, `{"messages": {"claimed": 0, "free": 0, "total": 0}}`)
		})

		t.Run("missing_queue", func(t *testing.T) {
			c := newClient(t, n)
			qtEmpty(t, c.post("/v2/queues/missing/purge", map[string]any{"resource_types": []any{"messages"}}), 204)
			qtEmpty(t, qtRaw(t, n, "POST", "/v2/queues/missing/purge", nil, qtIdent(c)...), 204)
			if names := qtNames(t, c); len(names) != 0 {
				t.Fatalf("purge created %v", names)
			}
		})

		t.Run("new_messages_after_purge", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1), msg(2))
			c.post("/v2/queues/q/purge", nil).expect(t, 204)
			ids := c.postMessages("q", msg(3))
			s := qtStats(t, c, "q")
			qtCounts(t, s, 0, 1, 1)
			if s["oldest"].(map[string]any)["href"] != "/v2/queues/q/messages/"+ids[0] {
				t.Fatalf("stats after purge %v", s)
			}
		})
	})
}

// TestQueueIsolation: queues of project A are invisible and unchangeable
// from project B; the same name in B is an independent queue (§3.1).
func TestQueueIsolation(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		setup := func(t *testing.T) (a, b *client, ids []string) {
			a = newClient(t, n)
			b = newClient(t, n)
			a.put("/v2/queues/q", map[string]any{"owner": "a", "_default_message_ttl": 120}).expect(t, 201)
			ids = a.postMessages("q", msg("a1"), msg("a2"))
			return a, b, ids
		}
		aIntact := func(t *testing.T, a *client, ids []string) {
			t.Helper()
			qtEq(t, a.get("/v2/queues/q"), 200, qtDefaults(t, `{"owner": "a", "_default_message_ttl": 120}`))
			qtCounts(t, qtStats(t, a, "q"), 0, 2, 2)
			for _, id := range ids {
				a.get("/v2/queues/q/messages/"+id).expect(t, 200)
			}
			if !qtListed(t, a, "q") {
				t.Fatal("A's queue is gone")
			}
		}

		t.Run("invisible", func(t *testing.T) {
			a, b, ids := setup(t)
			qtEq(t, b.get("/v2/queues"), 200, `{"queues": [], "links": []}`)
			qtEq(t, b.get("/v2/queues?with_count=true&detailed=true"), 200, `{"queues": [], "links": []}`)
			qtEq(t, b.get("/v2/queues?owner=a"), 200, `{"queues": [], "links": []}`)
			qtEq(t, b.get("/v2/queues/q"), 200, qtDefaults(t, ""))
			qtEq(t, b.get("/v2/queues/q/stats"), 200, `{"messages": {"claimed": 0, "free": 0, "total": 0}}`)
			qtEq(t, b.get("/v2/queues/q/messages?echo=true"), 200, `{"messages": [], "links": []}`)
			for _, id := range ids {
				b.get("/v2/queues/q/messages/"+id).expect(t, 404)
			}
			// The same Client-ID in another project does not matter either.
			other := a.inProject(b.Project)
			qtEq(t, other.get("/v2/queues"), 200, `{"queues": [], "links": []}`)
			aIntact(t, a, ids)
		})

		t.Run("unchangeable", func(t *testing.T) {
			a, b, ids := setup(t)
			qtErr(t, qtPatch(b, "q", []any{map[string]any{"op": "add", "path": "/metadata/owner", "value": "b"}}), 404, "Not found", "")
			qtEmpty(t, b.del("/v2/queues/q"), 204)
			qtEmpty(t, b.post("/v2/queues/q/purge", nil), 204)
			qtEmpty(t, b.post("/v2/queues/q/purge", map[string]any{"resource_types": []any{"messages"}}), 204)
			for _, id := range ids {
				qtEmpty(t, b.del("/v2/queues/q/messages/"+id), 204)
			}
			aIntact(t, a, ids)
			if names := qtNames(t, b); len(names) != 0 {
				t.Fatalf("B lists %v", names)
			}
		})

		t.Run("same_name_is_independent", func(t *testing.T) {
			a, b, ids := setup(t)
			// B's PUT creates a new queue (201, not 204) with B's metadata.
			qtEmpty(t, b.put("/v2/queues/q", map[string]any{"owner": "b"}), 201)
			qtEq(t, b.get("/v2/queues/q"), 200, qtDefaults(t, `{"owner": "b"}`))
			qtEq(t, b.get("/v2/queues/q/stats"), 200, `{"messages": {"claimed": 0, "free": 0, "total": 0}}`)
			qtEq(t, qtPatch(b, "q", []any{map[string]any{"op": "replace", "path": "/metadata/owner", "value": "bb"}}), 200,
				qtDefaults(t, `{"owner": "bb"}`))
			bids := b.postMessages("q", msg("b1"))
			qtClaim(t, b, "q", 1)
			qtCounts(t, qtStats(t, b, "q"), 1, 0, 1)
			a.get("/v2/queues/q/messages/"+bids[0]).expect(t, 404)
			b.post("/v2/queues/q/purge", nil).expect(t, 204)
			aIntact(t, a, ids)
			// Deleting B's queue leaves A's.
			qtEmpty(t, b.del("/v2/queues/q"), 204)
			aIntact(t, a, ids)
			// and deleting A's leaves a recreated B queue alone.
			b.put("/v2/queues/q", map[string]any{"owner": "b2"}).expect(t, 201)
			a.del("/v2/queues/q").expect(t, 204)
			qtEq(t, b.get("/v2/queues/q"), 200, qtDefaults(t, `{"owner": "b2"}`))
			if names := qtNames(t, b); !reflect.DeepEqual(names, []string{"q"}) {
				t.Fatalf("B lists %v", names)
			}
		})

		t.Run("prefix_projects", func(t *testing.T) {
			// Projects whose ids are prefixes of each other stay apart.
			base := "proj-" + newID()[:12]
			p1 := newClient(t, n).inProject(base)
			p2 := newClient(t, n).inProject(base + "x")
			p1.put("/v2/queues/q", map[string]any{"p": 1}).expect(t, 201)
			p2.put("/v2/queues/qq", map[string]any{"p": 2}).expect(t, 201)
			if got := qtNames(t, p1); !reflect.DeepEqual(got, []string{"q"}) {
				t.Fatalf("p1 lists %v", got)
			}
			if got := qtNames(t, p2); !reflect.DeepEqual(got, []string{"qq"}) {
				t.Fatalf("p2 lists %v", got)
			}
			qtEq(t, p2.get("/v2/queues/q"), 200, qtDefaults(t, ""))
			r := p1.get("/v2/queues?with_count=true").JSON(t)
			if r["count"] != float64(1) {
				t.Fatalf("p1 count %v", r["count"])
			}
		})
	})
}

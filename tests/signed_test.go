package tests

// End-to-end tests of pre-signed URLs: creating them with POST
// /v2/queues/{q}/share and using them through the URL-* headers (contract
// §2.2.8, §3.11, checklist items 60-62), on both log backends.

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/heraldmq/herald/api"
	"github.com/heraldmq/herald/cmd/herald/server"
)

// --- helpers (prefixed sg) ---

const sgKey = "herald-test-signing-key"

func sgWithKey(c *server.Config) { c.API.SignedURLKey = sgKey }

// sgLongTTL keeps test messages alive across clock jumps of a day.
const sgLongTTL = 1209600

// sgCreate shares queue of c's project and checks the answer's shape.
func sgCreate(t testing.TB, c *client, queue string, body any) api.Share {
	t.Helper()
	r := c.post("/v2/queues/"+queue+"/share", body).expect(t, 200)
	qtJSONCT(t, r)
	if got := keys(r.JSON(t)); !reflect.DeepEqual(got, []string{"expires", "methods", "paths", "project", "signature"}) {
		t.Fatalf("share keys %v (body %s)", got, r.Body)
	}
	var s api.Share
	if err := json.Unmarshal(r.Body, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// sgExpiry parses the expires of a share.
func sgExpiry(t testing.TB, s api.Share) time.Time {
	t.Helper()
	e, err := time.Parse("2006-01-02T15:04:05", s.Expires)
	if err != nil {
		t.Fatalf("expires %q: %v", s.Expires, err)
	}
	return e
}

// sgCheckSignature fails unless s is signed with key as api.Sign signs.
func sgCheckSignature(t testing.TB, key string, s api.Share) {
	t.Helper()
	if want := api.Sign(key, s.Paths, s.Methods, s.Project, sgExpiry(t, s)); s.Signature != want {
		t.Fatalf("signature %s, want %s (%+v)", s.Signature, want, s)
	}
}

// sgHeaders are what python-zaqarclient's signed-url backend sends for s,
// with a Client-ID of the URL's holder.
func sgHeaders(s api.Share) map[string]string {
	return map[string]string{
		"Client-ID": newID(), "URL-Signature": s.Signature, "URL-Methods": strings.Join(s.Methods, ","),
		"URL-Paths": strings.Join(s.Paths, ","), "URL-Expires": s.Expires, "X-Project-ID": s.Project,
	}
}

// sgSend makes a request with exactly the headers h, an empty value as an
// empty header.
func sgSend(t testing.TB, n *node, method, path string, body []byte, h map[string]string) *resp {
	t.Helper()
	lines := make([]string, 0, len(h))
	for k, v := range h {
		lines = append(lines, k+": "+v)
	}
	sort.Strings(lines)
	return qtRaw(t, n, method, path, body, lines...)
}

// --- share (checklist items 60, 62) ---

func TestShare(t *testing.T) {
	configuredBackends(t, sgWithKey, func(t *testing.T, n *node) {
		t.Run("defaults", func(t *testing.T) {
			c := newClient(t, n)
			before := n.Clock.Now().UTC()
			s := sgCreate(t, c, "q", map[string]any{})
			after := n.Clock.Now().UTC()
			if !reflect.DeepEqual(s.Paths, []string{"/v2/queues/q/messages"}) || !reflect.DeepEqual(s.Methods, []string{"GET"}) || s.Project != c.Project {
				t.Fatalf("share %+v", s)
			}
			if e := sgExpiry(t, s); e.Before(before.Add(24*time.Hour).Truncate(time.Second)) || e.After(after.Add(24*time.Hour)) {
				t.Fatalf("expires %s, want a day after %s", s.Expires, before.Format(time.RFC3339))
			}
			sgCheckSignature(t, sgKey, s)
			if names := qtNames(t, c); len(names) != 0 {
				t.Fatalf("share created queues %v", names)
			}
		})

		t.Run("methods_sorted", func(t *testing.T) {
			s := sgCreate(t, newClient(t, n), "q", map[string]any{"methods": []string{"POST", "GET", "DELETE"}})
			if !reflect.DeepEqual(s.Methods, []string{"DELETE", "GET", "POST"}) || !reflect.DeepEqual(s.Paths, []string{"/v2/queues/q/messages"}) {
				t.Fatalf("share %+v", s)
			}
			sgCheckSignature(t, sgKey, s)
		})

		t.Run("paths_sorted_and_expanded", func(t *testing.T) {
			s := sgCreate(t, newClient(t, n), "q", map[string]any{"paths": []string{"subscriptions", "messages", "claims"}})
			want := []string{"/v2/queues/q/claims", "/v2/queues/q/messages", "/v2/queues/q/subscriptions"}
			if !reflect.DeepEqual(s.Paths, want) {
				t.Fatalf("paths %v, want %v", s.Paths, want)
			}
			sgCheckSignature(t, sgKey, s)
		})

		t.Run("empty_values_mean_defaults", func(t *testing.T) {
			s := sgCreate(t, newClient(t, n), "q", map[string]any{"paths": []any{}, "methods": []any{}, "expires": nil})
			if !reflect.DeepEqual(s.Paths, []string{"/v2/queues/q/messages"}) || !reflect.DeepEqual(s.Methods, []string{"GET"}) {
				t.Fatalf("share %+v", s)
			}
		})

		t.Run("expires_forms", func(t *testing.T) {
			for _, tc := range []struct{ in, want string }{
				{"2099-06-01T12:00:00", "2099-06-01T12:00:00"},
				{"2099-06-01T12:00:00.123456", "2099-06-01T12:00:00"}, // python-zaqarclient's isoformat()
				{"2099-06-01T12:00:00Z", "2099-06-01T12:00:00"},
				{"2099-06-01T14:30:00+02:30", "2099-06-01T12:00:00"},
				{"2099-06-01 12:00:00", "2099-06-01T12:00:00"},
				{"2099-06-01", "2099-06-01T00:00:00"},
			} {
				t.Run(tc.in, func(t *testing.T) {
					s := sgCreate(t, newClient(t, n), "q", map[string]any{"expires": tc.in})
					if s.Expires != tc.want {
						t.Fatalf("expires %q, want %q", s.Expires, tc.want)
					}
					sgCheckSignature(t, sgKey, s)
				})
			}
		})

		// Item 62 through the API: the configured key signs as api.Sign
		// does, whose vectors api/signed_test.go checks.
		t.Run("signature_is_api_sign", func(t *testing.T) {
			c := newClient(t, n)
			s := sgCreate(t, c, "q", map[string]any{"paths": []string{"messages", "subscriptions"}, "methods": []string{"POST", "GET"}, "expires": "2099-01-01T00:00:00"})
			want := api.Sign(sgKey, []string{"/v2/queues/q/subscriptions", "/v2/queues/q/messages"}, []string{"GET", "POST"}, c.Project,
				time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
			if s.Signature != want {
				t.Fatalf("signature %s, want %s", s.Signature, want)
			}
		})

		t.Run("invalid_bodies", func(t *testing.T) {
			integer := "`expires` should be date format, for example 2016-01-01T00:00:00, not integer value: "
			for _, tc := range []struct {
				name, body, title, desc string
			}{
				{"unknown_key", `{"dummy": "meh"}`, "Invalid API request", "Unknown keys: {'dummy'}"},
				{"project_id_key", `{"methods": ["GET"], "project_id": "p"}`, "Invalid API request", "Unknown keys: {'project_id'}"},
				{"invalid_path", `{"paths": ["notallowed"]}`, "Invalid API request", "Invalid paths: {'notallowed'}"},
				{"one_invalid_path", `{"paths": ["messages", "queues"]}`, "Invalid API request", "Invalid paths: {'queues'}"},
				{"paths_string", `{"paths": "messages"}`, "Invalid API request", "Invalid paths: {'a', 'e', 'g', 'm', 's'}"},
				{"paths_object", `{"paths": {"messages": 1}}`, "Invalid API request", "`paths` must be a non-empty list"},
				{"methods_string", `{"methods": "x"}`, "Invalid API request", "`methods` should be a list"},
				{"methods_not_strings", `{"methods": ["GET", 1]}`, "Invalid API request", "`methods` should be a list of strings"},
				{"expires_not_a_date", `{"expires": "wrong date format"}`, "Invalid API request", "Unable to parse date string 'wrong date format'"},
				{"expires_integer_string", `{"expires": "1700000000"}`, "Invalid API request", integer + "1700000000"},
				{"expires_integer", `{"expires": 4102444800}`, "Invalid API request", integer + "4102444800"},
				{"expires_date_digits", `{"expires": "20990101"}`, "Invalid API request", integer + "20990101"},
				{"expires_past", `{"expires": "2000-01-01T00:00:00"}`, "Invalid API request", "`expires` is lower than the current time"},
				{"expires_no_such_day", `{"expires": "2099-02-30T00:00:00"}`, "Invalid API request", "day is out of range for month"},
				{"unknown_key_first", `{"dummy": 1, "paths": ["x"], "methods": "x"}`, "Invalid API request", "Unknown keys: {'dummy'}"},
				{"paths_before_methods", `{"paths": ["x"], "methods": "x"}`, "Invalid API request", "Invalid paths: {'x'}"},
				{"not_json", `not json`, "Invalid request body", "Request body could not be parsed."},
				{"array", `["messages"]`, "Invalid request body", "Document type not supported."},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := newClient(t, n)
					qtErr(t, c.post("/v2/queues/q/share", Raw(tc.body)), 400, tc.title, tc.desc)
				})
			}
		})

		t.Run("no_body", func(t *testing.T) {
			c := newClient(t, n)
			qtErr(t, qtRaw(t, n, "POST", "/v2/queues/q/share", nil, qtIdent(c)...), 400, "Invalid request body", "Request body can not be empty")
		})

		t.Run("expires_now", func(t *testing.T) {
			c := newClient(t, n)
			now := n.Clock.Now().UTC().Format("2006-01-02T15:04:05")
			qtErr(t, c.post("/v2/queues/q/share", map[string]any{"expires": now}), 400, "Invalid API request", "`expires` is lower than the current time")
		})

		t.Run("queue_name_checked", func(t *testing.T) {
			qtErr(t, newClient(t, n).post("/v2/queues/bad@name/share", map[string]any{}), 400, "Invalid queue identification", "not valid")
		})
	})
}

// TestShareContractExample: the share example of contract §2.2.8, on a
// node whose clock is set before the example's expiry.
func TestShareContractExample(t *testing.T) {
	configuredBackends(t, func(c *server.Config) { c.API.SignedURLKey = "s3cret" }, func(t *testing.T, n *node) {
		n.Clock.Advance(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Sub(n.Clock.Now()))
		c := newClient(t, n).inProject("7e55e1a7e")
		r := c.post("/v2/queues/q/share", map[string]any{"paths": []string{"subscriptions", "messages"}, "methods": []string{"POST", "GET"}, "expires": "2030-06-01T12:00:00"})
		qtEq(t, r, 200, `{"paths": ["/v2/queues/q/messages", "/v2/queues/q/subscriptions"],
			"methods": ["GET", "POST"], "project": "7e55e1a7e", "expires": "2030-06-01T12:00:00",
			"signature": "f67181ece64c5b5afa5fc053ec89609d78dda86f94c05262c832f503684dec16"}`)
	})
}

// --- signed requests (checklist item 61) ---

func TestSignedRequests(t *testing.T) {
	configuredBackends(t, sgWithKey, func(t *testing.T, n *node) {
		// setup gives a project with two messages in q and a share of q.
		setup := func(t *testing.T, share map[string]any) (*client, []string, api.Share) {
			c := newClient(t, n)
			ids := c.postMessages("q", msg(1, "ttl", sgLongTTL), msg(2, "ttl", sgLongTTL))
			return c, ids, sgCreate(t, c, "q", share)
		}

		t.Run("list_messages", func(t *testing.T) {
			_, ids, s := setup(t, map[string]any{})
			r := sgSend(t, n, "GET", "/v2/queues/q/messages", nil, sgHeaders(s)).expect(t, 200)
			mcEqualIDs(t, "signed listing", mcIDs(mcMessages(t, r)), ids)
		})

		t.Run("get_message", func(t *testing.T) {
			_, ids, s := setup(t, map[string]any{})
			r := sgSend(t, n, "GET", "/v2/queues/q/messages/"+ids[1], nil, sgHeaders(s)).expect(t, 200)
			if got := r.JSON(t)["id"]; got != ids[1] {
				t.Fatalf("got message %v, want %s", got, ids[1])
			}
		})

		t.Run("get_by_ids", func(t *testing.T) {
			_, ids, s := setup(t, map[string]any{})
			r := sgSend(t, n, "GET", "/v2/queues/q/messages?ids="+strings.Join(ids, ","), nil, sgHeaders(s)).expect(t, 200)
			mcEqualIDs(t, "signed get by ids", mcSorted(mcIDs(mcMessages(t, r))), mcSorted(ids))
		})

		t.Run("post_when_signed_for_post", func(t *testing.T) {
			c, _, s := setup(t, map[string]any{"methods": []string{"GET", "POST"}})
			sgSend(t, n, "POST", "/v2/queues/q/messages", []byte(`{"messages": [{"body": 3}]}`), sgHeaders(s)).expect(t, 201)
			mcExpectStats(c, "q", 3, 0, 3)
		})

		t.Run("delete_when_signed_for_delete", func(t *testing.T) {
			c, ids, s := setup(t, map[string]any{"methods": []string{"DELETE"}})
			qtEmpty(t, sgSend(t, n, "DELETE", "/v2/queues/q/messages/"+ids[0], nil, sgHeaders(s)), 204)
			mcExpectStats(c, "q", 1, 0, 1)
		})

		t.Run("claims_path", func(t *testing.T) {
			c, _, s := setup(t, map[string]any{"paths": []string{"claims"}, "methods": []string{"POST"}})
			sgSend(t, n, "POST", "/v2/queues/q/claims?limit=1", []byte(`{}`), sgHeaders(s)).expect(t, 201)
			mcExpectStats(c, "q", 2, 1, 1)
		})

		t.Run("expiry_written_another_way", func(t *testing.T) {
			// The expiry is signed in its normalised form.
			_, _, s := setup(t, map[string]any{"expires": "2099-01-01"})
			h := sgHeaders(s)
			for _, e := range []string{"2099-01-01", "2099-01-01T00:00:00.123456", "2099-01-01T01:00:00+01:00"} {
				h["URL-Expires"] = e
				sgSend(t, n, "GET", "/v2/queues/q/messages", nil, h).expect(t, 200)
			}
		})

		t.Run("still_needs_client_id", func(t *testing.T) {
			_, _, s := setup(t, map[string]any{})
			h := sgHeaders(s)
			delete(h, "Client-ID")
			qtErr(t, sgSend(t, n, "GET", "/v2/queues/q/messages", nil, h), 400, "Missing header value", `The "Client-ID" header is required.`)
		})

		// Every failure is the framework's bare 404 and changes nothing.
		for _, tc := range []struct {
			name   string
			share  map[string]any
			method string
			path   func(ids []string) string // nil: the messages collection
			body   string
			edit   func(h map[string]string, n *node)
		}{
			{name: "wrong_signature", edit: func(h map[string]string, _ *node) {
				h["URL-Signature"] = strings.Repeat("0", 64)
			}},
			{name: "signature_of_other_values", edit: func(h map[string]string, _ *node) {
				h["URL-Paths"] = "/v2/queues/q/messages,/v2/queues/q/claims"
			}},
			{name: "empty_signature", edit: func(h map[string]string, _ *node) { h["URL-Signature"] = "" }},
			{name: "expired", edit: func(_ map[string]string, n *node) { n.Clock.Advance(24*time.Hour + time.Second) }},
			{name: "method_not_listed", method: "POST", body: `{"messages": [{"body": 3}]}`},
			{name: "delete_not_listed", method: "DELETE", path: func(ids []string) string { return "/v2/queues/q/messages/" + ids[0] }},
			{name: "methods_with_space", share: map[string]any{"methods": []string{"GET", "POST"}}, method: "POST", body: `{"messages": [{"body": 3}]}`,
				edit: func(h map[string]string, _ *node) { h["URL-Methods"] = "GET, POST" }},
			{name: "empty_url_methods", edit: func(h map[string]string, _ *node) { h["URL-Methods"] = "" }},
			{name: "no_url_methods", edit: func(h map[string]string, _ *node) { delete(h, "URL-Methods") }},
			{name: "no_url_paths", edit: func(h map[string]string, _ *node) { delete(h, "URL-Paths") }},
			{name: "unparseable_expiry", edit: func(h map[string]string, _ *node) { h["URL-Expires"] = "tomorrow" }},
			{name: "no_expiry", edit: func(h map[string]string, _ *node) { delete(h, "URL-Expires") }},
			// 20990101 reads as a date but is an integer to Zaqar; the same
			// expiry as 2099-01-01 verifies (expiry_written_another_way).
			{name: "integer_expiry", share: map[string]any{"expires": "2099-01-01"},
				edit: func(h map[string]string, _ *node) { h["URL-Expires"] = "20990101" }},
			{name: "other_project", edit: func(h map[string]string, _ *node) { h["X-Project-ID"] = "other-" + newID()[:8] }},
			{name: "path_of_another_queue", path: func([]string) string { return "/v2/queues/other/messages" }},
			{name: "queue_of_the_path", path: func([]string) string { return "/v2/queues/q" }},
			{name: "checked_before_other_hooks", method: "POST", body: "a=b", edit: func(h map[string]string, _ *node) {
				h["URL-Signature"] = strings.Repeat("0", 64)
				h["Content-Type"] = "application/x-www-form-urlencoded"
				h["Accept"] = "application/xml"
				delete(h, "Client-ID")
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				share := tc.share
				if share == nil {
					share = map[string]any{}
				}
				c, ids, s := setup(t, share)
				method, path := tc.method, "/v2/queues/q/messages"
				if method == "" {
					method = "GET"
				}
				if tc.path != nil {
					path = tc.path(ids)
				}
				h := sgHeaders(s)
				if tc.edit != nil {
					tc.edit(h, n)
				}
				var body []byte
				if tc.body != "" {
					body = []byte(tc.body)
				}
				r := sgSend(t, n, method, path, body, h)
				qtEq(t, r, 404, `{"title": "404 Not Found"}`)
				mcExpectStats(c, "q", 2, 0, 2)
			})
		}
	})
}

// TestSignedWithoutKey: with no key configured shares are refused and no
// signed request verifies (contract §5.1 signed_url.secret_key).
func TestSignedWithoutKey(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		t.Run("share_refused", func(t *testing.T) {
			c := newClient(t, n)
			for _, body := range []string{`{}`, `{"methods": "x", "expires": "junk"}`} {
				qtErr(t, c.post("/v2/queues/q/share", Raw(body)), 400, "Invalid API request", "The `key` can't be None")
			}
			// Unknown keys and paths are checked before the key.
			qtErr(t, c.post("/v2/queues/q/share", Raw(`{"dummy": 1}`)), 400, "Invalid API request", "Unknown keys: {'dummy'}")
			qtErr(t, c.post("/v2/queues/q/share", Raw(`{"paths": ["x"]}`)), 400, "Invalid API request", "Invalid paths: {'x'}")
		})

		t.Run("signed_requests_not_found", func(t *testing.T) {
			c := newClient(t, n)
			c.postMessages("q", msg(1))
			paths, methods := []string{"/v2/queues/q/messages"}, []string{"GET"}
			expires := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
			for _, key := range []string{"", sgKey} {
				s := api.Share{Paths: paths, Methods: methods, Project: c.Project, Expires: "2099-01-01T00:00:00",
					Signature: api.Sign(key, paths, methods, c.Project, expires)}
				qtEq(t, sgSend(t, n, "GET", "/v2/queues/q/messages", nil, sgHeaders(s)), 404, `{"title": "404 Not Found"}`)
			}
			// Without URL-Signature the request is an ordinary one.
			r := c.as(newID()).get("/v2/queues/q/messages").expect(t, 200)
			if got := len(mcMessages(t, r)); got != 1 {
				t.Fatalf("%d messages, want 1", got)
			}
		})
	})
}

// TestSignedURLKeyFromEnvironment: herald serve takes the key from
// HERALD_SIGNED_URL_KEY (or --signed-url-key).
func TestSignedURLKeyFromEnvironment(t *testing.T) {
	t.Setenv("HERALD_SIGNED_URL_KEY", sgKey)
	p := startProc(t, "--data", t.TempDir())
	c := clientOf(t, p)
	c.postMessages("q", msg(1))
	s := sgCreate(t, c, "q", map[string]any{})
	sgCheckSignature(t, sgKey, s)
	r := sgSend(t, &node{URL: p.URL}, "GET", "/v2/queues/q/messages", nil, sgHeaders(s)).expect(t, 200)
	if got := len(mcMessages(t, r)); got != 1 {
		t.Fatalf("%d messages, want 1", got)
	}
	p.stop(t)
}

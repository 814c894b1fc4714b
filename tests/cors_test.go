package tests

// End-to-end tests of CORS on the REST API, answered as oslo.middleware
// answers in front of Zaqar (contract §1.2 step 1, §5.1 [cors]).

import (
	"reflect"
	"strings"
	"testing"

	"github.com/heraldmq/herald/api/rest"
	"github.com/heraldmq/herald/cmd/herald/server"
)

const (
	corsOrigin = "https://app.example"
	corsOther  = "https://other.example"
	// corsExpose is Zaqar's default list of exposed headers.
	corsExpose = "X-Auth-Token,X-Subject-Token,X-Service-Token,X-OpenStack-Request-ID"
)

// corsHeaders are the response's Access-Control-* and Vary headers.
func corsHeaders(r *resp) map[string]string {
	out := map[string]string{}
	for k, v := range r.Header {
		if strings.HasPrefix(k, "Access-Control-") || k == "Vary" {
			out[k] = strings.Join(v, ", ")
		}
	}
	return out
}

// corsCase is one request and what it must get.
type corsCase struct {
	name    string
	method  string
	path    string
	ident   bool     // send Client-ID and X-Project-ID
	headers []string // more header lines
	status  int
	cors    map[string]string // the Access-Control-* and Vary headers, exactly
}

// corsRun sends each case on n and checks status and CORS headers; a
// preflight answered by CORS has an empty body.
func corsRun(t *testing.T, n *node, cases []corsCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.ident {
				h = qtIdent(newClient(t, n))
			}
			r := qtRaw(t, n, tc.method, tc.path, nil, append(h, tc.headers...)...)
			r.expect(t, tc.status)
			if got := corsHeaders(r); !reflect.DeepEqual(got, tc.cors) {
				t.Fatalf("CORS headers %v, want %v", got, tc.cors)
			}
			if tc.method == "OPTIONS" && tc.cors["Access-Control-Allow-Methods"] != "" && len(r.Body) != 0 {
				t.Fatalf("preflight answered with a body: %s", r.Body)
			}
		})
	}
}

func preflightOK(origin, method, headers string) map[string]string {
	m := map[string]string{"Vary": "Origin", "Access-Control-Allow-Origin": origin,
		"Access-Control-Max-Age": "3600", "Access-Control-Allow-Methods": method}
	if headers != "" {
		m["Access-Control-Allow-Headers"] = headers
	}
	return m
}

func actualOK(origin string) map[string]string {
	return map[string]string{"Vary": "Origin", "Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": corsExpose}
}

var corsNone = map[string]string{}

func TestCORS(t *testing.T) {
	configure := func(c *server.Config) { c.CORS = rest.CORS{AllowedOrigins: []string{corsOrigin, corsOther}} }
	configuredBackends(t, configure, func(t *testing.T, n *node) {
		from := func(o string) string { return "Origin: " + o }
		asks := func(m string) string { return "Access-Control-Request-Method: " + m }
		asksHeaders := func(h string) string { return "Access-Control-Request-Headers: " + h }
		corsRun(t, n, []corsCase{
			// Preflights from allowed origins are answered before any hook.
			{name: "preflight", method: "OPTIONS", path: "/v2/queues/q/messages",
				headers: []string{from(corsOrigin), asks("POST"), asksHeaders("client-id, Content-Type,X-Auth-Token")},
				status:  200, cors: preflightOK(corsOrigin, "POST", "client-id,Content-Type,X-Auth-Token")},
			{name: "preflight_second_origin", method: "OPTIONS", path: "/v2/queues",
				headers: []string{from(corsOther), asks("GET")}, status: 200, cors: preflightOK(corsOther, "GET", "")},
			{name: "preflight_unknown_path", method: "OPTIONS", path: "/nothing",
				headers: []string{from(corsOrigin), asks("DELETE")}, status: 200, cors: preflightOK(corsOrigin, "DELETE", "")},
			{name: "preflight_simple_headers", method: "OPTIONS", path: "/v2/queues",
				headers: []string{from(corsOrigin), asks("PUT"), asksHeaders("Accept-Language"), asksHeaders("pragma")},
				status:  200, cors: preflightOK(corsOrigin, "PUT", "Accept-Language,pragma")},
			// Zaqar's default list lacks X-Project-ID: oslo then answers
			// without permission, and so does Herald.
			{name: "preflight_header_not_allowed", method: "OPTIONS", path: "/v2/queues",
				headers: []string{from(corsOrigin), asks("GET"), asksHeaders("Client-ID, X-Project-ID")}, status: 200, cors: corsNone},
			{name: "preflight_method_not_allowed", method: "OPTIONS", path: "/v2/queues",
				headers: []string{from(corsOrigin), asks("TRACE")}, status: 200, cors: corsNone},
			{name: "preflight_method_case", method: "OPTIONS", path: "/v2/queues",
				headers: []string{from(corsOrigin), asks("get")}, status: 200, cors: corsNone},

			// Other OPTIONS requests go on to the hooks and the router.
			{name: "preflight_disallowed_origin", method: "OPTIONS", path: "/v2/queues",
				headers: []string{from("https://evil.example"), asks("GET")}, status: 400, cors: corsNone},
			{name: "preflight_disallowed_origin_with_headers", method: "OPTIONS", path: "/v2/queues", ident: true,
				headers: []string{from("https://evil.example"), asks("GET")}, status: 200, cors: corsNone},
			{name: "origin_compared_exactly", method: "OPTIONS", path: "/v2/queues",
				headers: []string{from("https://APP.example"), asks("GET")}, status: 400, cors: corsNone},
			{name: "options_without_requested_method", method: "OPTIONS", path: "/v2/queues",
				headers: []string{from(corsOrigin)}, status: 400, cors: corsNone},

			// Other requests from allowed origins are readable, errors too.
			{name: "actual_request", method: "GET", path: "/v2/queues", ident: true,
				headers: []string{from(corsOrigin)}, status: 200, cors: actualOK(corsOrigin)},
			{name: "actual_request_second_origin", method: "PUT", path: "/v2/queues/q", ident: true,
				headers: []string{from(corsOther)}, status: 201, cors: actualOK(corsOther)},
			{name: "actual_request_error", method: "GET", path: "/v2/queues",
				headers: []string{from(corsOrigin)}, status: 400, cors: actualOK(corsOrigin)},
			{name: "actual_request_unknown_route", method: "GET", path: "/v3/", ident: true,
				headers: []string{from(corsOrigin)}, status: 404, cors: actualOK(corsOrigin)},
			{name: "actual_request_disallowed_origin", method: "GET", path: "/v2/queues", ident: true,
				headers: []string{from("https://evil.example")}, status: 200, cors: corsNone},
			{name: "actual_request_without_origin", method: "GET", path: "/v2/queues", ident: true, status: 200, cors: corsNone},
		})
	})
}

// TestCORSWildcard: "*" admits any origin, answered with "*"; a listed
// origin is still echoed. Credentials are allowed when configured.
func TestCORSWildcard(t *testing.T) {
	configure := func(c *server.Config) {
		c.CORS = rest.CORS{AllowedOrigins: []string{corsOrigin, "*"}, AllowCredentials: true}
	}
	withCredentials := func(m map[string]string) map[string]string {
		m["Access-Control-Allow-Credentials"] = "true"
		return m
	}
	configuredBackends(t, configure, func(t *testing.T, n *node) {
		corsRun(t, n, []corsCase{
			{name: "preflight_listed", method: "OPTIONS", path: "/v2/queues",
				headers: []string{"Origin: " + corsOrigin, "Access-Control-Request-Method: GET"},
				status:  200, cors: withCredentials(preflightOK(corsOrigin, "GET", ""))},
			{name: "preflight_any", method: "OPTIONS", path: "/v2/queues",
				headers: []string{"Origin: https://any.example", "Access-Control-Request-Method: GET"},
				status:  200, cors: withCredentials(preflightOK("*", "GET", ""))},
			{name: "actual_listed", method: "GET", path: "/v2/queues", ident: true,
				headers: []string{"Origin: " + corsOrigin}, status: 200, cors: withCredentials(actualOK(corsOrigin))},
			{name: "actual_any", method: "GET", path: "/v2/queues", ident: true,
				headers: []string{"Origin: https://any.example"}, status: 200, cors: withCredentials(actualOK("*"))},
			{name: "actual_without_origin", method: "GET", path: "/v2/queues", ident: true, status: 200, cors: corsNone},
		})
	})
}

// TestCORSDisabledByDefault: with no allowed origin nothing changes; a
// preflight meets the hooks like any OPTIONS request.
func TestCORSDisabledByDefault(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		corsRun(t, n, []corsCase{
			{name: "preflight", method: "OPTIONS", path: "/v2/queues",
				headers: []string{"Origin: " + corsOrigin, "Access-Control-Request-Method: GET"}, status: 400, cors: corsNone},
			{name: "actual_request", method: "GET", path: "/v2/queues", ident: true,
				headers: []string{"Origin: " + corsOrigin}, status: 200, cors: corsNone},
		})
	})
}

// TestCORSFlag: herald serve --cors-allowed-origins takes a comma list.
func TestCORSFlag(t *testing.T) {
	p := startProc(t, "--data", t.TempDir(), "--cors-allowed-origins", " "+corsOrigin+" , "+corsOther+",")
	corsRun(t, &node{URL: p.URL}, []corsCase{
		{name: "preflight", method: "OPTIONS", path: "/v2/queues/q",
			headers: []string{"Origin: " + corsOther, "Access-Control-Request-Method: PATCH"}, status: 200, cors: preflightOK(corsOther, "PATCH", "")},
		{name: "actual_request", method: "GET", path: "/v2/ping", ident: true,
			headers: []string{"Origin: " + corsOrigin}, status: 204, cors: actualOK(corsOrigin)},
	})
	p.stop(t)
}

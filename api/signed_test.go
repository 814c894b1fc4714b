package api

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// TestSignedVectors checks Sign against the contract's test vectors
// (§3.11, checklist item 62).
func TestSignedVectors(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(SignedDateFormat, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		key              string
		paths, methods   []string
		project, expires string
		want             string
	}{
		{"test", []string{"/v2/queues/q/messages"}, []string{"POST", "GET"}, "p", "2030-01-01T00:00:00",
			"d31fe798e01426a67f7eb8a127aa791627f2d2ecfff76c52f3856190f7d4b795"},
		{"s3cret", []string{"/v2/queues/q/subscriptions", "/v2/queues/q/messages"}, []string{"POST", "GET"}, "7e55e1a7e", "2030-06-01T12:00:00",
			"f67181ece64c5b5afa5fc053ec89609d78dda86f94c05262c832f503684dec16"},
		{"test", []string{"/v2/queues/q/messages"}, []string{"GET"}, "", "2030-01-01T00:00:00",
			"e90d65b4fd790993c09cc0684333bd9fbffba42502a33e7239d47fe57fb3c5c0"},
	} {
		paths, methods := slices.Clone(tc.paths), slices.Clone(tc.methods)
		if got := Sign(tc.key, paths, methods, tc.project, at(tc.expires)); got != tc.want {
			t.Errorf("Sign(%q, %v, %v, %q, %s) = %s, want %s", tc.key, tc.paths, tc.methods, tc.project, tc.expires, got, tc.want)
		}
		if !slices.Equal(paths, tc.paths) || !slices.Equal(methods, tc.methods) {
			t.Errorf("Sign reordered its arguments: %v %v", paths, methods)
		}
		// The same instant in another zone signs the same.
		if got := Sign(tc.key, paths, methods, tc.project, at(tc.expires).In(time.FixedZone("", -5*3600))); got != tc.want {
			t.Errorf("Sign in another zone = %s, want %s", got, tc.want)
		}
	}
}

// TestVerifySigned checks REST verification (§3.11) on the first test
// vector: key test, path /v2/queues/q/messages, methods POST and GET,
// project p, expiry 2030-01-01T00:00:00.
func TestVerifySigned(t *testing.T) {
	const sig = "d31fe798e01426a67f7eb8a127aa791627f2d2ecfff76c52f3856190f7d4b795"
	type req struct{ method, path, sig, expires, methods, paths, project string }
	ok := req{"POST", "/v2/queues/q/messages", sig, "2030-01-01T00:00:00", "POST,GET", "/v2/queues/q/messages", "p"}
	with := func(f func(r *req)) req { r := ok; f(&r); return r }
	dotted := Sign("test", []string{"/v2/queues/a.b/messages"}, []string{"GET"}, "p", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	before := time.Date(2029, 12, 31, 23, 59, 59, 0, time.UTC)
	for _, tc := range []struct {
		name string
		key  string
		now  time.Time
		r    req
		want bool
	}{
		{"as_signed", "test", before, ok, true},
		{"other_listed_method", "test", before, with(func(r *req) { r.method = "GET" }), true},
		{"methods_in_other_order", "test", before, with(func(r *req) { r.methods = "GET,POST" }), true},
		{"item_under_path", "test", before, with(func(r *req) { r.path += "/5f3c0a1b2c3d4e5f6a7b8c9d" }), true},
		{"expiry_date_only", "test", before, with(func(r *req) { r.expires = "2030-01-01" }), true},
		{"expiry_microseconds", "test", before, with(func(r *req) { r.expires = "2030-01-01T00:00:00.123456" }), true},
		{"expiry_offset", "test", before, with(func(r *req) { r.expires = "2030-01-01T01:00:00+01:00" }), true},
		{"expiry_basic_format", "test", before, with(func(r *req) { r.expires = "20300101T000000Z" }), true},

		{"no_key", "", before, ok, false},
		{"other_key", "other", before, ok, false},
		{"wrong_signature", "test", before, with(func(r *req) { r.sig = sig[:63] + "0" }), false},
		{"upper_case_signature", "test", before, with(func(r *req) { r.sig = "D31FE798E01426A67F7EB8A127AA791627F2D2ECFFF76C52F3856190F7D4B795" }), false},
		{"empty_signature", "test", before, with(func(r *req) { r.sig = "" }), false},
		{"method_not_listed", "test", before, with(func(r *req) { r.method = "DELETE" }), false},
		{"methods_with_space", "test", before, with(func(r *req) { r.methods = "GET, POST" }), false},
		{"methods_empty", "test", before, with(func(r *req) { r.methods = "" }), false},
		{"paths_empty", "test", before, with(func(r *req) { r.paths = "" }), false},
		{"other_queue", "test", before, with(func(r *req) { r.path = "/v2/queues/r/messages" }), false},
		{"other_project", "test", before, with(func(r *req) { r.project = "x" }), false},
		{"no_project", "test", before, with(func(r *req) { r.project = "" }), false},
		{"expired", "test", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), ok, false},
		{"expiry_unparseable", "test", before, with(func(r *req) { r.expires = "tomorrow" }), false},
		{"expiry_empty", "test", before, with(func(r *req) { r.expires = "" }), false},
		// 20300101 is a date to ISO 8601 but an integer to Python: refused.
		{"expiry_integer", "test", before, with(func(r *req) { r.expires = "20300101" }), false},
		// The signed path is text, not a pattern: a.b does not cover aXb.
		{"path_is_not_a_pattern", "test", before, req{"GET", "/v2/queues/aXb/messages", dotted, "2030-01-01T00:00:00", "GET", "/v2/queues/a.b/messages", "p"}, false},
		{"path_with_dot", "test", before, req{"GET", "/v2/queues/a.b/messages", dotted, "2030-01-01T00:00:00", "GET", "/v2/queues/a.b/messages", "p"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{cfg: Config{SignedURLKey: tc.key}, now: func() time.Time { return tc.now }}
			r := tc.r
			if got := s.VerifySigned(r.method, r.path, r.sig, r.expires, r.methods, r.paths, r.project); got != tc.want {
				t.Fatalf("VerifySigned(%+v) = %v, want %v", r, got, tc.want)
			}
		})
	}
}

// TestSharePythonRepr: error texts show values as Python prints them.
func TestSharePythonRepr(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{"dummy", `'dummy'`},
		{"it's", `"it's"`},
		{`a'"b`, `'a\'"b'`},
		{"back\\slash", `'back\\slash'`},
		{"\x00\t\u00a0é\u2028\U000e0001", `'\x00\t\xa0é\u2028\U000e0001'`},
		{json.Number("12"), `12`},
		{json.Number("1.50"), `1.5`},
		{json.Number("1e2"), `100.0`},
		{json.Number("1e16"), `1e+16`},
		{json.Number("0.00001"), `1e-05`},
		{nil, `None`},
		{true, `True`},
		{[]any{json.Number("1"), "a"}, `[1, 'a']`},
		{map[string]any{"b": false, "a": nil}, `{'a': None, 'b': False}`},
	} {
		if got := pyRepr(tc.in); got != tc.want {
			t.Errorf("pyRepr(%#v) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if got := pySet([]any{"paths2", "dummy", "paths2"}); got != `{'dummy', 'paths2'}` {
		t.Errorf("pySet = %s", got)
	}
}

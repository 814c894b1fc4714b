package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/heraldmq/herald/projection"
)

// Pre-signed URLs (contract §2.2.8, §3.11) let a project hand out access
// to some paths of one queue, for some methods, until a time, without
// credentials: the holder presents the signed values back as URL-* headers.

// shareLifetime is how long a share lives when the body sets no expiry.
const shareLifetime = 86400 * time.Second

// Sign is Zaqar's signature of a pre-signed URL: the lowercase hex
// HMAC-SHA256 under key of the sorted, comma-joined paths and methods, the
// project (the text None when empty) and the expiry in UTC as
// %Y-%m-%dT%H:%M:%S, joined by the two characters backslash and n (not a
// newline: Zaqar formats a raw string).
func Sign(key string, paths, methods []string, project string, expires time.Time) string {
	if project == "" {
		project = "None"
	}
	msg := strings.Join([]string{
		strings.Join(slices.Sorted(slices.Values(paths)), ","),
		strings.Join(slices.Sorted(slices.Values(methods)), ","),
		project,
		expires.UTC().Format(SignedDateFormat),
	}, `\n`)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(msg))
	return hex.EncodeToString(mac.Sum(nil))
}

// Share is a pre-signed URL as POST /v2/queues/{q}/share answers it.
// Paths and Methods are sorted; Expires is UTC without a zone suffix.
type Share struct {
	Paths     []string `json:"paths"`
	Methods   []string `json:"methods"`
	Project   string   `json:"project"`
	Expires   string   `json:"expires"`
	Signature string   `json:"signature"`
}

// shareable are the resources of a queue a share may name.
var shareable = map[string]bool{"messages": true, "subscriptions": true, "claims": true}

// Share signs a URL to queue (a valid name) of the caller's project from a
// share request body (present is false when the request had none). It
// checks the body as Zaqar does and in Zaqar's order, so the same error
// wins: unknown keys, paths, the configured key, methods, then the expiry.
// It changes nothing.
func (s *Service) Share(ctx context.Context, c Caller, queue string, body []byte, present bool) (*Share, error) {
	if !present {
		return nil, ErrBodyEmpty
	}
	doc, e := ParseObject(body)
	if e != nil {
		return nil, e
	}
	var unknown []any
	for k := range doc {
		if k != "paths" && k != "methods" && k != "expires" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return nil, BadRequest("Unknown keys: %s", pySet(unknown))
	}
	names, e := sharePaths(doc["paths"])
	if e != nil {
		return nil, e
	}
	if s.cfg.SignedURLKey == "" {
		return nil, BadRequest("The `key` can't be None")
	}
	methods, e := shareMethods(doc["methods"])
	if e != nil {
		return nil, e
	}
	now := s.now()
	expires := now.Add(shareLifetime)
	if raw := doc["expires"]; raw != nil {
		var err error
		if expires, err = shareExpiry(raw); err != nil {
			return nil, BadRequest("%s", err)
		}
	}
	if !expires.After(now) {
		return nil, BadRequest("`expires` is lower than the current time")
	}
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = "/v2/queues/" + queue + "/" + n
	}
	slices.Sort(paths)
	slices.Sort(methods)
	return &Share{Paths: paths, Methods: methods, Project: c.Project,
		Expires:   expires.UTC().Format(SignedDateFormat),
		Signature: Sign(s.cfg.SignedURLKey, paths, methods, c.Project, expires)}, nil
}

// sharePaths reads a share's "paths": a falsy value means messages; a
// string is read as Python iterates it, character by character.
func sharePaths(v any) ([]string, *Error) {
	if !projection.Truthy(v) {
		return []string{"messages"}, nil
	}
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	case string:
		for _, r := range x {
			items = append(items, string(r))
		}
	default:
		return nil, BadRequest("`paths` must be a non-empty list")
	}
	var names []string
	var invalid []any
	for _, it := range items {
		if n, ok := it.(string); ok && shareable[n] {
			names = append(names, n)
		} else {
			invalid = append(invalid, it)
		}
	}
	if len(invalid) > 0 {
		return nil, BadRequest("Invalid paths: %s", pySet(invalid))
	}
	return names, nil
}

// shareMethods reads a share's "methods": a falsy value means GET; the
// names are not checked.
func shareMethods(v any) ([]string, *Error) {
	if !projection.Truthy(v) {
		return []string{"GET"}, nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, BadRequest("`methods` should be a list")
	}
	methods := make([]string, len(items))
	for i, it := range items {
		if methods[i], ok = it.(string); !ok {
			return nil, BadRequest("`methods` should be a list of strings")
		}
	}
	return methods, nil
}

// VerifySigned reports whether the URL-* headers of a REST request
// authorise it (contract §3.11): methods (split on commas, no trimming)
// contain the request method; one of the signed paths occurs in the
// request path, so a URL for …/messages also covers …/messages/{id}; the
// expiry is a date, not an integer, and in the future; and the signature
// over the headers' values and the request's project is the one given.
// Without a configured key nothing verifies.
//
// Zaqar searches the request path with each signed path as a regular
// expression; Herald looks for it as plain text, which never authorises
// more (a dot in a queue name matches only a dot).
func (s *Service) VerifySigned(method, path, sig, expires, methods, paths, project string) bool {
	key := s.cfg.SignedURLKey
	if key == "" {
		return false
	}
	ms, ps := strings.Split(methods, ","), strings.Split(paths, ",")
	if !slices.Contains(ms, method) {
		return false
	}
	if !slices.ContainsFunc(ps, func(p string) bool { return p != "" && strings.Contains(path, p) }) {
		return false
	}
	exp, err := parseExpiry(expires)
	if err != nil || !exp.After(s.now()) {
		return false
	}
	return hmac.Equal([]byte(Sign(key, ps, ms, project, exp)), []byte(sig))
}

// pySet renders values as Python prints a set of them (Zaqar puts sets in
// its error texts); sorted, where Python's order is arbitrary.
func pySet(values []any) string {
	seen := map[string]bool{}
	var reprs []string
	for _, v := range values {
		if r := pyRepr(v); !seen[r] {
			seen[r] = true
			reprs = append(reprs, r)
		}
	}
	sort.Strings(reprs)
	return "{" + strings.Join(reprs, ", ") + "}"
}

// pyRepr renders a decoded JSON value as Python's repr() does.
func pyRepr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			return string(x)
		}
		return pyFloat(string(x))
	case string:
		return pyStr(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = pyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		parts := make([]string, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, pyStr(k)+": "+pyRepr(x[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// pyTypeName is the name of the Python type a JSON value decodes to.
func pyTypeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return "float"
		}
		return "int"
	case string:
		return "str"
	case []any:
		return "list"
	}
	return "dict"
}

// pyFloat is the repr of a JSON float: the shortest digits, in positional
// notation for exponents from -4 to 15.
func pyFloat(s string) string {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return "inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	if exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:]); exp < -4 || exp >= 16 {
		return e
	}
	p := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(p, ".") {
		p += ".0"
	}
	return p
}

// pyStr is the repr of a Python str: single quotes unless the text has
// one and no double quote; unprintable characters escaped.
func pyStr(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

package ws

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestUIHandler: the demo page's files come with the content types
// browsers insist on (module scripts must be JavaScript), revalidate with
// their ETag, and nothing else is served. The page itself is tested in a
// real browser by tests/browser_test.go.
func TestUIHandler(t *testing.T) {
	srv := httptest.NewServer(UIHandler())
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		ctype        string
		contains     string
	}{
		{"GET", "/ui/", 200, "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"GET", "/ui/index.html", 200, "text/html; charset=utf-8", "<title>"},
		{"GET", "/ui/herald.js", 200, "text/javascript; charset=utf-8", "export async function connect"},
		{"GET", "/ui/app.js", 200, "text/javascript; charset=utf-8", "from './herald.js'"},
		{"GET", "/ui/style.css", 200, "text/css; charset=utf-8", ":root"},
		{"GET", "/ui/vendor/msgpack/index.mjs", 200, "text/javascript; charset=utf-8", "export { encode }"},
		{"GET", "/ui/vendor/msgpack/LICENSE", 200, "text/plain; charset=utf-8", "MessagePack Community"},
		{"HEAD", "/ui/herald.js", 200, "text/javascript; charset=utf-8", ""},
		{"GET", "/ui/vendor/", 404, "", ""},
		{"GET", "/ui/missing.js", 404, "", ""},
		{"GET", "/ui/../ui.go", 404, "", ""},
		{"POST", "/ui/", 405, "", ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, res.StatusCode, tc.status)
			continue
		}
		if tc.status != 200 {
			continue
		}
		if got := res.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.path, got, tc.ctype)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("%s %s: Cache-Control %q", tc.method, tc.path, got)
		}
		if !strings.Contains(string(body), tc.contains) {
			t.Errorf("%s %s: body lacks %q", tc.method, tc.path, tc.contains)
		}
	}

	// A browser revalidating with the ETag gets 304.
	res, err := http.Get(srv.URL + "/ui/herald.js")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	etag := res.Header.Get("ETag")
	req, _ := http.NewRequest("GET", srv.URL+"/ui/herald.js", nil)
	req.Header.Set("If-None-Match", etag)
	if res, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if etag == "" || res.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match %q: %d, want 304", etag, res.StatusCode)
	}
}

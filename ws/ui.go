package ws

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// The demo page and its browser client (ui/herald.js), with the vendored
// MessagePack codec under ui/vendor. Static files only: nothing is fetched
// or built when Herald builds or runs.
//
//go:embed ui
var ui embed.FS

// uiTypes are the content types of the files in ui/, by extension. Set here
// rather than read from the system's MIME database, which varies between
// machines, because browsers refuse module scripts served with a
// non-JavaScript type.
var uiTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".md":   "text/plain; charset=utf-8",
	"":      "text/plain; charset=utf-8", // LICENSE
}

type uiFile struct {
	body  []byte
	ctype string
	etag  string
}

// UIHandler serves the demo page and the browser client under /ui/
// (/ui/ is ui/index.html). Responses carry Cache-Control: no-cache with a
// content-hash ETag, so browsers revalidate and get a 304 until Herald is
// upgraded. Directories are not listed. It expects the full request path
// (mount it at /ui/ without stripping the prefix). Safe for concurrent use.
func UIHandler() http.Handler {
	files := map[string]uiFile{}
	err := fs.WalkDir(ui, "ui", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := ui.ReadFile(name)
		if err != nil {
			return err
		}
		ctype, ok := uiTypes[path.Ext(name)]
		if !ok {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		files["/"+name] = uiFile{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic("ws: embedded ui: " + err.Error()) // the embed is part of the binary; it cannot fail at run time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := r.URL.Path
		if p == "/ui" {
			http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
			return
		}
		if strings.HasSuffix(p, "/") {
			p += "index.html"
		}
		f, ok := files[path.Clean(p)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}

package rest

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// CORS configures cross-origin resource sharing as oslo.middleware's
// [cors] section does in front of Zaqar (contract §1.2 step 1, §5.1). It
// is off while AllowedOrigins is empty.
type CORS struct {
	// AllowedOrigins are the origins (scheme://host[:port], compared
	// exactly) that may read responses; "*" admits every other origin,
	// which is then answered with "*".
	AllowedOrigins []string
	// AllowCredentials adds Access-Control-Allow-Credentials: true.
	AllowCredentials bool
	// AllowMethods, AllowHeaders and ExposeHeaders default to Zaqar's
	// lists when nil. A preflight may also ask for the simple headers.
	AllowMethods  []string
	AllowHeaders  []string
	ExposeHeaders []string
	// MaxAge is how long, in seconds, a browser may keep a preflight
	// answer; 0 means oslo's 3600.
	MaxAge int
}

// Zaqar's CORS defaults (zaqar.transport.middleware.cors).
var (
	corsAllowMethods  = []string{"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"}
	corsAllowHeaders  = []string{"X-Auth-Token", "X-Identity-Status", "X-Roles", "X-Service-Catalog", "X-User-Id", "X-Tenant-Id", "X-OpenStack-Request-ID", "X-Trace-Info", "X-Trace-HMAC", "Client-id"}
	corsExposeHeaders = []string{"X-Auth-Token", "X-Subject-Token", "X-Service-Token", "X-OpenStack-Request-ID"}
	// corsSimpleHeaders may always be asked for (oslo's simple_headers).
	corsSimpleHeaders = []string{"Accept", "Accept-Language", "Content-Type", "Cache-Control", "Content-Language", "Expires", "Last-Modified", "Pragma"}
)

// corsHandler answers preflight requests from allowed origins itself,
// before any hook (no Client-ID needed), and marks the other responses to
// allowed origins as readable. Requests from other origins, and OPTIONS
// requests that are not preflights, pass through untouched.
type corsHandler struct {
	next        http.Handler
	origins     map[string]bool
	credentials bool
	methods     []string
	headers     map[string]bool // upper case
	expose      string
	maxAge      string
}

func newCORS(c CORS, next http.Handler) *corsHandler {
	if c.AllowMethods == nil {
		c.AllowMethods = corsAllowMethods
	}
	if c.AllowHeaders == nil {
		c.AllowHeaders = corsAllowHeaders
	}
	if c.ExposeHeaders == nil {
		c.ExposeHeaders = corsExposeHeaders
	}
	if c.MaxAge == 0 {
		c.MaxAge = 3600
	}
	h := &corsHandler{next: next, origins: map[string]bool{}, credentials: c.AllowCredentials, methods: c.AllowMethods,
		headers: map[string]bool{}, expose: strings.Join(c.ExposeHeaders, ","), maxAge: strconv.Itoa(c.MaxAge)}
	for _, o := range c.AllowedOrigins {
		h.origins[o] = true
	}
	for _, hd := range slices.Concat(c.AllowHeaders, corsSimpleHeaders) {
		h.headers[strings.ToUpper(hd)] = true
	}
	return h
}

// allowed returns what Access-Control-Allow-Origin answers origin with.
func (h *corsHandler) allowed(r *http.Request) (string, bool) {
	values, sent := r.Header["Origin"]
	switch {
	case !sent:
		return "", false
	case h.origins[values[0]]:
		return values[0], true
	case h.origins["*"]:
		return "*", true
	}
	return "", false
}

func (h *corsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin, ok := h.allowed(r)
	method, preflight := r.Header["Access-Control-Request-Method"]
	switch {
	case ok && r.Method == http.MethodOptions && preflight:
		h.preflight(w, r, origin, method[0])
		return
	case ok && r.Method != http.MethodOptions:
		hd := w.Header()
		hd.Add("Vary", "Origin")
		hd.Set("Access-Control-Allow-Origin", origin)
		if h.credentials {
			hd.Set("Access-Control-Allow-Credentials", "true")
		}
		if h.expose != "" {
			hd.Set("Access-Control-Expose-Headers", h.expose)
		}
	}
	h.next.ServeHTTP(w, r)
}

// preflight answers 200, with the permission headers only when the method
// and every requested header are allowed (oslo's checks, in its order).
func (h *corsHandler) preflight(w http.ResponseWriter, r *http.Request, origin, method string) {
	var asked []string
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for _, hd := range strings.Split(v, ",") {
			if hd = strings.TrimSpace(hd); hd != "" {
				asked = append(asked, hd)
			}
		}
	}
	grant := slices.Contains(h.methods, method)
	for _, hd := range asked {
		grant = grant && h.headers[strings.ToUpper(hd)]
	}
	if grant {
		hd := w.Header()
		hd.Set("Vary", "Origin")
		hd.Set("Access-Control-Allow-Origin", origin)
		if h.credentials {
			hd.Set("Access-Control-Allow-Credentials", "true")
		}
		hd.Set("Access-Control-Max-Age", h.maxAge)
		hd.Set("Access-Control-Allow-Methods", method)
		if len(asked) > 0 {
			hd.Set("Access-Control-Allow-Headers", strings.Join(asked, ","))
		}
	}
	w.WriteHeader(http.StatusOK)
}

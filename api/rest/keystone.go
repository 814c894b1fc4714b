package rest

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/heraldmq/herald/api"
)

// Keystone authentication in front of the REST API, as keystonemiddleware
// sits in front of Zaqar: every request but GET / and pre-signed ones
// needs an X-Auth-Token that api.KeystoneValidator accepts. The token's
// project, roles and user then replace whatever the client sent in
// X-Project-ID, X-Roles and X-User-ID.

// Keystone configures token validation (see api.Keystone).
type Keystone = api.Keystone

type keystoneAuth struct {
	v   *api.KeystoneValidator
	url string
}

func newKeystoneAuth(cfg Keystone) *keystoneAuth {
	return &keystoneAuth{v: api.NewKeystoneValidator(cfg), url: strings.TrimRight(cfg.URL, "/")}
}

// authenticate wraps next: requests without a valid token get 401.
func (k *keystoneAuth) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, signed := r.Header[http.CanonicalHeaderKey("URL-Signature")]
		if r.URL.Path == "/" || r.URL.Path == "/metrics" || (signed && !strings.HasPrefix(r.URL.Path, "/v1")) {
			next.ServeHTTP(w, r)
			return
		}
		token := r.Header.Get("X-Auth-Token")
		if token == "" {
			k.unauthorized(w)
			return
		}
		id, err := k.v.Validate(r.Context(), token)
		if errors.Is(err, api.ErrInvalidToken) {
			k.unauthorized(w)
			return
		}
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{
				"code": 503, "title": "Service Unavailable", "message": "The identity service could not be reached."}})
			return
		}
		r.Header.Set("X-Project-ID", id.Project)
		r.Header.Set("X-Roles", strings.Join(id.Roles, ","))
		r.Header.Set("X-User-ID", id.User)
		next.ServeHTTP(w, r)
	})
}

func (k *keystoneAuth) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf("Keystone uri=%q", k.url))
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
		"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}})
}

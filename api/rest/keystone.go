package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Keystone authentication (contract §1.2 step 2, §3.13): with a Keystone
// configured, every request but GET / and pre-signed ones needs an
// X-Auth-Token that Keystone v3 validates. The token's project, roles
// and user then replace whatever the client sent in X-Project-ID,
// X-Roles and X-User-ID, as keystonemiddleware does in front of Zaqar.
// Valid tokens are cached for a bounded time.

// Keystone configures token validation.
type Keystone struct {
	// URL is the identity endpoint, e.g. http://127.0.0.1:5000/v3.
	URL string
	// The service user Herald validates tokens as (it needs the
	// admin or service role to read other users' tokens).
	User, Password, Project string
	// Domain of the service user and project; "Default" when empty.
	Domain string
	// CacheTTL bounds how long a validated token is trusted without
	// asking Keystone again (never past its expiry); 5 minutes when 0.
	CacheTTL time.Duration
	// Client is the HTTP client for Keystone (a 10 s timeout when nil).
	Client *http.Client
}

// identity is what a valid token says about its holder.
type identity struct {
	project string
	roles   []string
	user    string
	until   time.Time // trusted until
}

type keystoneAuth struct {
	cfg Keystone
	now func() time.Time

	mu           sync.Mutex
	serviceToken string
	serviceUntil time.Time
	cache        map[string]identity
}

// maxCachedTokens bounds the token cache; past it expired entries go,
// and if that is not enough, all of them.
const maxCachedTokens = 10000

func newKeystoneAuth(cfg Keystone) *keystoneAuth {
	if cfg.Domain == "" {
		cfg.Domain = "Default"
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 5 * time.Minute
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	return &keystoneAuth{cfg: cfg, now: time.Now, cache: map[string]identity{}}
}

// errInvalidToken means Keystone does not know the token (or it expired).
var errInvalidToken = errors.New("keystone: invalid token")

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
		id, err := k.validate(r.Context(), token)
		if errors.Is(err, errInvalidToken) {
			k.unauthorized(w)
			return
		}
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{
				"code": 503, "title": "Service Unavailable", "message": "The identity service could not be reached."}})
			return
		}
		r.Header.Set("X-Project-ID", id.project)
		r.Header.Set("X-Roles", strings.Join(id.roles, ","))
		r.Header.Set("X-User-ID", id.user)
		next.ServeHTTP(w, r)
	})
}

func (k *keystoneAuth) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf("Keystone uri=%q", k.cfg.URL))
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
		"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}})
}

// validate returns the identity of a token, from the cache or Keystone.
func (k *keystoneAuth) validate(ctx context.Context, token string) (identity, error) {
	now := k.now()
	k.mu.Lock()
	id, ok := k.cache[token]
	k.mu.Unlock()
	if ok && now.Before(id.until) {
		return id, nil
	}
	id, err := k.fetch(ctx, token, true)
	if err != nil {
		return id, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.cache) >= maxCachedTokens {
		for t, e := range k.cache {
			if !now.Before(e.until) {
				delete(k.cache, t)
			}
		}
		if len(k.cache) >= maxCachedTokens {
			clear(k.cache)
		}
	}
	k.cache[token] = id
	return id, nil
}

// tokenBody is the part of Keystone's token document Herald reads.
type tokenBody struct {
	Token struct {
		ExpiresAt time.Time `json:"expires_at"`
		Project   *struct {
			ID string `json:"id"`
		} `json:"project"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		Roles []struct {
			Name string `json:"name"`
		} `json:"roles"`
	} `json:"token"`
}

// fetch asks Keystone about token (GET /v3/auth/tokens). A rejected
// service token is renewed once.
func (k *keystoneAuth) fetch(ctx context.Context, token string, retry bool) (identity, error) {
	svc, err := k.service(ctx)
	if err != nil {
		return identity{}, err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", k.cfg.URL+"/auth/tokens", nil)
	if err != nil {
		return identity{}, err
	}
	req.Header.Set("X-Auth-Token", svc)
	req.Header.Set("X-Subject-Token", token)
	res, err := k.cfg.Client.Do(req)
	if err != nil {
		return identity{}, fmt.Errorf("keystone: %w", err)
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusUnauthorized && retry:
		k.mu.Lock()
		k.serviceToken = ""
		k.mu.Unlock()
		return k.fetch(ctx, token, false)
	case res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusUnauthorized:
		return identity{}, errInvalidToken
	case res.StatusCode != http.StatusOK:
		return identity{}, fmt.Errorf("keystone: token validation answered %s", res.Status)
	}
	var body tokenBody
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return identity{}, fmt.Errorf("keystone: token document: %w", err)
	}
	if body.Token.Project == nil {
		// An unscoped token names no project to work in.
		return identity{}, errInvalidToken
	}
	id := identity{project: body.Token.Project.ID, user: body.Token.User.ID, until: k.now().Add(k.cfg.CacheTTL)}
	if !body.Token.ExpiresAt.IsZero() && body.Token.ExpiresAt.Before(id.until) {
		id.until = body.Token.ExpiresAt
	}
	for _, r := range body.Token.Roles {
		id.roles = append(id.roles, r.Name)
	}
	return id, nil
}

// service returns Herald's own token, issuing one with the service
// user's password when there is none or it is about to expire.
func (k *keystoneAuth) service(ctx context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.serviceToken != "" && k.now().Add(time.Minute).Before(k.serviceUntil) {
		return k.serviceToken, nil
	}
	domain := map[string]string{"name": k.cfg.Domain}
	doc := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": k.cfg.User, "password": k.cfg.Password, "domain": domain}}},
		"scope": map[string]any{"project": map[string]any{"name": k.cfg.Project, "domain": domain}},
	}}
	b, _ := json.Marshal(doc)
	req, err := http.NewRequestWithContext(ctx, "POST", k.cfg.URL+"/auth/tokens", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := k.cfg.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("keystone: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("keystone: service user authentication answered %s", res.Status)
	}
	var body tokenBody
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("keystone: token document: %w", err)
	}
	k.serviceToken, k.serviceUntil = res.Header.Get("X-Subject-Token"), body.Token.ExpiresAt
	return k.serviceToken, nil
}

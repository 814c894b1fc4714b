package api

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

// Keystone authentication (contract §1.2 step 2, §3.13, §4.4): a token is
// valid when Keystone v3 says so; its project, roles and user then stand
// for the caller. Valid tokens are cached for a bounded time. The REST
// and WebSocket transports share this validator.

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

// Identity is what a valid token says about its holder.
type Identity struct {
	Project string
	Roles   []string
	User    string
	// Until is when the validation stops being trusted (the cache's
	// bound); Expires is when the token itself expires.
	Until, Expires time.Time
}

// KeystoneValidator validates tokens against Keystone and caches the
// valid ones. It is safe for concurrent use.
type KeystoneValidator struct {
	cfg Keystone
	now func() time.Time

	mu    sync.Mutex // guards cache only: never held across a call to Keystone
	cache map[string]Identity

	// smu serialises fetching the service token (one fetch at a time).
	smu          sync.Mutex
	serviceToken string
	serviceUntil time.Time
}

// maxCachedTokens bounds the token cache; past it expired entries go,
// and if that is not enough, all of them.
const maxCachedTokens = 10000

// NewKeystoneValidator returns a validator for cfg.
func NewKeystoneValidator(cfg Keystone) *KeystoneValidator {
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
	return &KeystoneValidator{cfg: cfg, now: time.Now, cache: map[string]Identity{}}
}

// ErrInvalidToken means Keystone does not know the token (or it expired).
var ErrInvalidToken = errors.New("keystone: invalid token")

// Validate returns the identity of a token, from the cache or Keystone;
// ErrInvalidToken when Keystone does not accept it.
func (k *KeystoneValidator) Validate(ctx context.Context, token string) (Identity, error) {
	now := k.now()
	k.mu.Lock()
	id, ok := k.cache[token]
	k.mu.Unlock()
	if ok && now.Before(id.Until) {
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
			if !now.Before(e.Until) {
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
func (k *KeystoneValidator) fetch(ctx context.Context, token string, retry bool) (Identity, error) {
	svc, err := k.service(ctx)
	if err != nil {
		return Identity{}, err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", k.cfg.URL+"/auth/tokens", nil)
	if err != nil {
		return Identity{}, err
	}
	req.Header.Set("X-Auth-Token", svc)
	req.Header.Set("X-Subject-Token", token)
	res, err := k.cfg.Client.Do(req)
	if err != nil {
		return Identity{}, fmt.Errorf("keystone: %w", err)
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusUnauthorized && retry:
		k.smu.Lock()
		k.serviceToken = ""
		k.smu.Unlock()
		return k.fetch(ctx, token, false)
	case res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusUnauthorized:
		return Identity{}, ErrInvalidToken
	case res.StatusCode != http.StatusOK:
		return Identity{}, fmt.Errorf("keystone: token validation answered %s", res.Status)
	}
	var body tokenBody
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return Identity{}, fmt.Errorf("keystone: token document: %w", err)
	}
	if body.Token.Project == nil {
		// An unscoped token names no project to work in.
		return Identity{}, ErrInvalidToken
	}
	id := Identity{Project: body.Token.Project.ID, User: body.Token.User.ID,
		Until: k.now().Add(k.cfg.CacheTTL), Expires: body.Token.ExpiresAt}
	if !id.Expires.IsZero() && id.Expires.Before(id.Until) {
		id.Until = id.Expires
	}
	for _, r := range body.Token.Roles {
		id.Roles = append(id.Roles, r.Name)
	}
	return id, nil
}

// service returns Herald's own token, issuing one with the service
// user's password when there is none or it is about to expire.
func (k *KeystoneValidator) service(ctx context.Context) (string, error) {
	k.smu.Lock()
	defer k.smu.Unlock()
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

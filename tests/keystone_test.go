package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldmq/herald/api/rest"
	"github.com/heraldmq/herald/cmd/herald/server"
)

// Keystone authentication (contract §1.2 step 2, §3.13, M23, checklist
// item 65) against a real Keystone: tests/keystone/start-keystone.sh runs
// Debian's python3-keystone on loopback with a sqlite database.

type keystone struct {
	URL, AdminProject, DemoProject string
}

func startKeystone(t *testing.T) *keystone {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("keystone", "start-keystone.sh"), dir, fmt.Sprint(port))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("start keystone: %v\n%s", err, stderr.String())
	}
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vals[k] = v
		}
	}
	t.Cleanup(func() {
		var pid int
		if _, err := fmt.Sscan(vals["KEYSTONE_PID"], &pid); err == nil && pid > 0 {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	})
	if vals["KEYSTONE_URL"] == "" {
		t.Fatalf("start-keystone printed %q\n%s", out, stderr.String())
	}
	return &keystone{URL: vals["KEYSTONE_URL"], AdminProject: vals["KEYSTONE_ADMIN_PROJECT_ID"], DemoProject: vals["KEYSTONE_DEMO_PROJECT_ID"]}
}

// token issues a project-scoped token for user/secret.
func (k *keystone) token(t *testing.T, user, project string) string {
	t.Helper()
	dom := map[string]string{"name": "Default"}
	body, _ := json.Marshal(map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"},
			"password": map[string]any{"user": map[string]any{"name": user, "password": "secret", "domain": dom}}},
		"scope": map[string]any{"project": map[string]any{"name": project, "domain": dom}},
	}})
	res, err := http.Post(k.URL+"/auth/tokens", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("token for %s: %s", user, res.Status)
	}
	return res.Header.Get("X-Subject-Token")
}

// revoke revokes token with the admin's.
func (k *keystone) revoke(t *testing.T, admin, token string) {
	t.Helper()
	req, _ := http.NewRequest("DELETE", k.URL+"/auth/tokens", nil)
	req.Header.Set("X-Auth-Token", admin)
	req.Header.Set("X-Subject-Token", token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("revoke: %s", res.Status)
	}
}

func withToken(token string, h map[string]string) map[string]string {
	out := map[string]string{"X-Auth-Token": token}
	for k, v := range h {
		out[k] = v
	}
	return out
}

func TestKeystoneAuthentication(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("Keystone tests need Debian's python3 and python3-keystone (see .ci/run)")
	}
	ks := startKeystone(t)
	n := startNode(t, nodeOptions{Configure: func(c *server.Config) {
		c.AdminMode = true
		c.API.SignedURLKey = "s3cret"
		c.Keystone = &rest.Keystone{URL: ks.URL, User: "admin", Password: "secret", Project: "admin", CacheTTL: 200 * time.Millisecond}
	}})
	demo := ks.token(t, "demo", "demo")
	admin := ks.token(t, "admin", "admin")
	c := newClient(t, n)

	// Item 65: no token, a bad token → 401; GET / needs none.
	c.do("GET", "/", req{Headers: map[string]string{"Client-ID": "", "X-Project-ID": ""}}).expect(t, 300)
	for _, h := range []map[string]string{nil, {"X-Auth-Token": "not-a-token"}} {
		for _, path := range []string{"/v2/queues", "/v2/", "/v2/queues/q/messages", "/v2/no/such/route"} {
			r := c.do("GET", path, req{Headers: h}).expect(t, 401)
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Keystone uri=") {
				t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
			}
			e := r.JSON(t)["error"].(map[string]any)
			if e["code"] != 401.0 || e["message"] != "The request you have made requires authentication." {
				t.Fatalf("401 body %s", r.Body)
			}
		}
	}

	// M23: the project comes from the token; what the client says is
	// ignored, and X-Project-ID may be left out.
	c.do("PUT", "/v2/queues/q", req{Headers: withToken(demo, map[string]string{"X-Project-ID": "forged"})}).expect(t, 201)
	c.do("POST", "/v2/queues/q/messages", req{Body: map[string]any{"messages": []any{msg("hi")}},
		Headers: withToken(demo, map[string]string{"X-Project-ID": ""})}).expect(t, 201)
	names := listNames(c.do("GET", "/v2/queues", req{Headers: withToken(demo, nil)}).expect(t, 200).JSON(t), "queues")
	if len(names) != 1 || names[0] != "q" {
		t.Fatalf("demo's queues %v", names)
	}
	if names := listNames(c.do("GET", "/v2/queues", req{Headers: withToken(admin, nil)}).expect(t, 200).JSON(t), "queues"); len(names) != 0 {
		t.Fatalf("admin's project sees demo's queues: %v", names)
	}
	c.inProject(ks.DemoProject).get("/v2/queues").expect(t, 401)

	// Roles come from the token too: a forged X-Roles gives no admin.
	c.do("GET", "/v2/health", req{Headers: withToken(demo, map[string]string{"X-Roles": "admin"})}).expect(t, 403)
	c.do("GET", "/v2/health", req{Headers: withToken(admin, nil)}).expect(t, 200)

	// Pre-signed requests skip token auth; the signature binds the project.
	share := c.do("POST", "/v2/queues/q/share", req{Body: map[string]any{"methods": []string{"GET"}}, Headers: withToken(demo, nil)}).expect(t, 200).JSON(t)
	signed := map[string]string{
		"URL-Signature": share["signature"].(string), "URL-Expires": share["expires"].(string),
		"URL-Methods": "GET", "URL-Paths": "/v2/queues/q/messages", "X-Project-ID": ks.DemoProject,
	}
	msgs := c.do("GET", "/v2/queues/q/messages?echo=true", req{Headers: signed}).expect(t, 200).JSON(t)["messages"].([]any)
	if len(msgs) != 1 {
		t.Fatalf("signed listing %v", msgs)
	}

	// A revoked token stops working once the bounded cache lets go of it.
	ks.revoke(t, admin, demo)
	deadline := time.Now().Add(10 * time.Second)
	for c.do("GET", "/v2/queues", req{Headers: withToken(demo, nil)}).Status != 401 {
		if time.Now().After(deadline) {
			t.Fatal("a revoked token is still accepted after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

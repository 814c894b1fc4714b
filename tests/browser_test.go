package tests

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chromium is Debian's Chromium, which the browser test drives (it never
// downloads a browser of its own).
const chromium = "/usr/bin/chromium"

// TestBrowserDemoPage drives Debian's headless Chromium through
// browser/ui.test.mjs (playwright-core) against the herald binary's demo
// page /ui/: the page on the WebSocket in JSON and in MessagePack, a
// stream resumed after the connection is cut, the separate WebSocket
// listener, and the fallback to REST polling when WebSockets are blocked.
// The script's check lines are the test log; its screenshots go to
// $HERALD_UI_SCREENSHOTS when set.
func TestBrowserDemoPage(t *testing.T) {
	node := browserTools(t)
	installBrowserDeps(t)
	p := startProc(t, "--data", t.TempDir())
	wsAddr := logAddr(p, "WebSocket API listening")
	if wsAddr == "" {
		t.Fatalf("herald logged no \"WebSocket API listening\" line (startProc passes --ws-listen):\n%s", p.output())
	}
	shots := os.Getenv("HERALD_UI_SCREENSHOTS") // to keep them, e.g. as CI artifacts
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	runCheckScript(t, p, 4*time.Minute, []string{"HERALD_WS_URL=ws://" + wsAddr + "/"},
		node, "browser/ui.test.mjs", p.URL, shots)
}

// browserTools returns node; a missing node or Chromium fails the test
// with what CI must install.
func browserTools(t *testing.T) string {
	t.Helper()
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node (Node.js 18 or later, with npm)")
	} else if _, err := exec.LookPath("npm"); err != nil {
		missing = append(missing, "npm")
	}
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (Debian's chromium package)")
	}
	if len(missing) > 0 {
		t.Fatalf("the browser test needs %s; install with: apt-get install -y --no-install-recommends chromium (and nodejs with npm), then (cd tests/browser && npm ci)", strings.Join(missing, ", "))
	}
	return node
}

// installBrowserDeps runs npm ci in browser/ when its node_modules is
// missing or older than package-lock.json (playwright-core only: npm ci
// downloads no browser).
func installBrowserDeps(t *testing.T) {
	t.Helper()
	lock, err := os.Stat("browser/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	if installed, err := os.Stat("browser/node_modules/.package-lock.json"); err == nil && !installed.ModTime().Before(lock.ModTime()) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = "browser"
	out, err := cmd.CombinedOutput()
	t.Logf("npm ci in tests/browser:\n%s", out)
	if err != nil {
		t.Fatalf("npm ci in tests/browser: %v (the npm registry must be reachable, or run npm ci there beforehand)", err)
	}
}

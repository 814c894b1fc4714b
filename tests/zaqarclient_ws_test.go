package tests

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPythonZaqarClientWS runs python-zaqarclient's WebSocket transport
// (zaqarclient.transport.ws, the one `ws://` URLs select) against the
// herald binary: zaqarclient/ws_interop.py drives queues, messages, pop,
// claims and subscriptions over Herald's WebSocket listener and its REST
// listener's /ws. The script's output is the test log.
func TestPythonZaqarClientWS(t *testing.T) {
	python := zaqarclientWSPython(t)
	p := startProc(t, "--data", t.TempDir())
	// Logged before "REST API listening", which startProc waits for.
	wsAddr := logAddr(p, "WebSocket API listening")
	if wsAddr == "" {
		t.Fatalf("herald logged no WebSocket listener:\n%s", p.output())
	}
	runCheckScript(t, p, 3*time.Minute, []string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"},
		python, "zaqarclient/ws_interop.py", "ws://"+wsAddr+"/", "ws"+strings.TrimPrefix(p.URL, "http")+"/ws")
}

// zaqarclientWSPython returns Debian's python3 once it can import the
// client's WebSocket transport and the websocket-client module that
// transport needs (python3-zaqarclient does not depend on it). Anything
// missing fails the test with the packages to install: CI must install
// them.
func zaqarclientWSPython(t *testing.T) string {
	t.Helper()
	const python = "/usr/bin/python3"
	const hint = "apt-get install python3-zaqarclient python3-websocket"
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s is missing; install Debian's python3 and the client (%s)", python, hint)
	}
	var missing []string
	for _, m := range []struct{ module, pkg string }{{"zaqarclient.transport.ws", "python3-zaqarclient"}, {"websocket", "python3-websocket"}} {
		out, err := exec.Command(python, "-c", "import "+m.module).CombinedOutput()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			missing = append(missing, m.pkg+" ("+lastLine(string(out))+")")
		case err != nil:
			t.Fatalf("run %s: %v", python, err)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("python-zaqarclient's WebSocket transport cannot run; install the Debian packages (%s). Missing: %s", hint, strings.Join(missing, "; "))
	}
	return python
}

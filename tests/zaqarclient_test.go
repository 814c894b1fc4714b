package tests

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPythonZaqarClient runs the real python-zaqarclient (Debian's
// python3-zaqarclient, the client OpenStack tools use) against the herald
// binary. zaqarclient/interop.py goes through the client's v2 API:
// queues, messages, claims, subscriptions, pre-signed URLs, ping, health,
// pools and flavors. The script's output is the test log.
func TestPythonZaqarClient(t *testing.T) {
	python := zaqarclientPython(t)
	p := startProc(t, "--data", t.TempDir(), "--admin-mode", "--signed-url-key", "s3cret")

	runCheckScript(t, p, 3*time.Minute, []string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"},
		python, "zaqarclient/interop.py", p.URL, t.TempDir())
}

// zaqarclientPython returns a python3 that can import zaqarclient: the one
// on PATH, else Debian's, which the python3-zaqarclient package installs
// into. A missing client fails the test: CI must install it.
func zaqarclientPython(t *testing.T) string {
	t.Helper()
	var tried []string
	for _, name := range []string{"python3", "/usr/bin/python3"} {
		bin, err := exec.LookPath(name)
		if err != nil {
			tried = append(tried, name+": not found")
			continue
		}
		out, err := exec.Command(bin, "-c", "import zaqarclient.queues.v2.client").CombinedOutput()
		if err == nil {
			return bin
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("run %s: %v", bin, err)
		}
		tried = append(tried, bin+": "+lastLine(string(out)))
	}
	t.Fatalf("python-zaqarclient is not installed; install the Debian package python3-zaqarclient (apt-get install python3-zaqarclient). Tried: %q", tried)
	return ""
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

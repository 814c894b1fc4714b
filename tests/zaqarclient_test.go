package tests

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
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

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "zaqarclient/interop.py", p.URL, t.TempDir())
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout // tracebacks interleaved with the check lines
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var last string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		last = sc.Text()
		t.Log(last)
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("interop.py did not finish in time:\nherald log:\n%s", p.output())
	}
	if err != nil {
		t.Fatalf("interop.py: %v\nherald log:\n%s", err, p.output())
	}
	if !regexp.MustCompile(`^[1-9][0-9]* passed, 0 failed$`).MatchString(last) {
		t.Fatalf("interop.py exited 0 without its summary line; last line: %q", last)
	}
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

package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Helpers for tests that check a herald process from outside with a
// program of another language (a browser script, a Python client).

// logAddr returns the addr of the first JSON log line of p with message msg.
func logAddr(p *proc, msg string) string {
	for _, line := range strings.Split(p.output(), "\n") {
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
			return rec.Addr
		}
	}
	return ""
}

// runCheckScript runs a program that checks p from outside and prints one
// line per check, then "N passed, M failed". Its output (stderr
// interleaved) is the test log; it fails the test when the program fails,
// overruns timeout, or ends without a clean summary.
func runCheckScript(t *testing.T, p *proc, timeout time.Duration, env []string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	script := filepath.Base(args[0])
	var last string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		last = sc.Text()
		t.Log(last)
	}
	err = cmd.Wait()
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s did not finish within %v:\nherald log:\n%s", script, timeout, p.output())
	case err != nil:
		t.Fatalf("%s: %v\nherald log:\n%s", script, err, p.output())
	case !regexp.MustCompile(`^[1-9][0-9]* passed, 0 failed$`).MatchString(last):
		t.Fatalf("%s exited 0 without its summary line; last line: %q", script, last)
	}
}

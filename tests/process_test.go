package tests

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests in this file run the real herald binary as a separate process.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// heraldBinary builds cmd/herald once per test run.
func heraldBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "herald-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "herald")
		cmd := exec.Command("go", "build", "-race", "-o", binPath, "../cmd/herald")
		if os.Getenv("HERALD_TEST_NORACE") != "" {
			cmd = exec.Command("go", "build", "-o", binPath, "../cmd/herald")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build herald: %v\n%s", buildErr, binPath)
	}
	return binPath
}

// proc is a running herald process.
type proc struct {
	cmd  *exec.Cmd
	URL  string
	done chan struct{}
	mu   sync.Mutex
	logs []string
}

// startProc starts `herald serve` with args plus a loopback listener and
// JSON logs, and waits until it serves.
func startProc(t testing.TB, args ...string) *proc {
	t.Helper()
	args = append([]string{"serve", "--listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0", "--log-format", "json"}, args...)
	cmd := exec.Command(heraldBinary(t), args...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs = append(p.logs, line)
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "REST API listening" {
				addr <- rec.Addr
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	select {
	case a := <-addr:
		p.URL = "http://" + a
	case <-p.done:
		t.Fatalf("herald exited before serving:\n%s", p.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("herald did not start in time:\n%s", p.output())
	}
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs, "\n")
}

// kill ends the process with SIGKILL, as a crash would.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the process with SIGTERM and checks it shut down cleanly.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("herald did not stop on SIGTERM:\n%s", p.output())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("herald exited with %d:\n%s", code, p.output())
	}
}

// clientOf returns a client of a new project talking to a process.
func clientOf(t testing.TB, p *proc) *client {
	return newClient(t, &node{URL: p.URL})
}

// TestStartFailsCleanly: a node that cannot listen reports why and exits
// non-zero, without a panic.
func TestStartFailsCleanly(t *testing.T) {
	p := startProc(t, "--data", t.TempDir())
	addr := strings.TrimPrefix(p.URL, "http://")
	out, err := exec.Command(heraldBinary(t), "serve", "--data", t.TempDir(), "--listen", addr).CombinedOutput()
	if err == nil {
		t.Fatalf("second node on %s started:\n%s", addr, out)
	}
	if code := err.(*exec.ExitError).ExitCode(); code != 1 || strings.Contains(string(out), "panic") || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// An external test package: the node's assembly (cmd/herald/server)
// imports api/rest, so only rest_test may import it.
package rest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldmq/herald/cmd/herald/server"
)

// The benchmarks drive a real node (embedded Pebble log with group commit,
// projector, REST on a loopback listener) over HTTP/1.1 keep-alive. With
// b.SetParallelism(p), RunParallel runs p×GOMAXPROCS client goroutines.

const (
	benchPoster = "0123456789abcdef0123456789abcdef"
	benchReader = "fedcba9876543210fedcba9876543210"
)

// benchBody is a 256-byte compact JSON message body (a JSON string).
var benchBody = `"` + strings.Repeat("x", 254) + `"`

func postBody(n int) []byte {
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = `{"ttl":3600,"body":` + benchBody + `}`
	}
	return []byte(`{"messages":[` + strings.Join(msgs, ",") + `]}`)
}

type benchNode struct {
	base    string
	client  *http.Client
	project atomic.Int64
}

func startBenchNode(b *testing.B) *benchNode {
	b.Helper()
	srv, err := server.Start(context.Background(), server.Config{
		DataDir: b.TempDir(), Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	b.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			b.Error(err)
		}
	})
	return &benchNode{base: "http://" + srv.Addr(), client: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// newProject names a fresh project, so each benchmark round starts from
// an empty queue.
func (n *benchNode) newProject() string {
	return fmt.Sprintf("bench-%d", n.project.Add(1))
}

// do sends one request and returns the status and, when keep is set, the
// body (otherwise the body is discarded).
func (n *benchNode) do(method, path, project, clientID string, body []byte, keep bool) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, n.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Client-ID", clientID)
	req.Header.Set("X-Project-ID", project)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := n.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	if keep || res.StatusCode >= 400 {
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, b, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil, err
}

func (n *benchNode) expect(method, path, project, clientID string, body []byte, keep bool, want int) ([]byte, error) {
	st, resp, err := n.do(method, path, project, clientID, body, keep)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if st != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, st, want, resp)
	}
	return resp, nil
}

// fill posts total messages to the project's queue q, 10 per request, from
// 16 goroutines.
func (n *benchNode) fill(b *testing.B, project string, total int) {
	b.Helper()
	body := postBody(10)
	reqs := (total + 9) / 10
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Pointer[error]
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(reqs) && first.Load() == nil {
				if _, err := n.expect("POST", "/v2/queues/q/messages", project, benchPoster, body, false, 201); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if errp := first.Load(); errp != nil {
		b.Fatal(*errp)
	}
}

var parallelisms = []int{1, 16}

func reportRates(b *testing.B, reqs, msgs int64) {
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(reqs)/s, "req/s")
	b.ReportMetric(float64(msgs)/s, "msgs/s")
}

// BenchmarkPostMessages: one op is one POST /v2/queues/q/messages of n
// messages (each append waits for its fsync and for the projector).
func BenchmarkPostMessages(b *testing.B) {
	n := startBenchNode(b)
	for _, msgs := range []int{1, 10} {
		for _, par := range parallelisms {
			b.Run(fmt.Sprintf("messages=%d/parallelism=%d", msgs, par), func(b *testing.B) {
				project := n.newProject()
				body := postBody(msgs)
				// The first post creates the queue (an extra event).
				if _, err := n.expect("POST", "/v2/queues/q/messages", project, benchPoster, body, false, 201); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetParallelism(par)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := n.expect("POST", "/v2/queues/q/messages", project, benchPoster, body, false, 201); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				reportRates(b, int64(b.N), int64(b.N*msgs))
			})
		}
	}
}

type claimResponse struct {
	Messages []struct {
		Href string `json:"href"`
	} `json:"messages"`
}

// BenchmarkClaimDelete: one op is POST /v2/queues/q/claims?limit=10 on a
// queue filled beforehand, then DELETE of each claimed message with its
// claim id (11 requests, 10 messages consumed).
func BenchmarkClaimDelete(b *testing.B) {
	n := startBenchNode(b)
	claimBody := []byte(`{"ttl":300,"grace":60}`)
	for _, par := range parallelisms {
		b.Run(fmt.Sprintf("limit=10/parallelism=%d", par), func(b *testing.B) {
			project := n.newProject()
			n.fill(b, project, 10*b.N)
			var reqs, msgs atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := n.expect("POST", "/v2/queues/q/claims?limit=10", project, benchPoster, claimBody, true, 201)
					if err != nil {
						b.Error(err)
						return
					}
					reqs.Add(1)
					var cr claimResponse
					if err := json.Unmarshal(resp, &cr); err != nil {
						b.Error(err)
						return
					}
					for _, m := range cr.Messages {
						if _, err := n.expect("DELETE", m.Href, project, benchPoster, nil, false, 204); err != nil {
							b.Error(err)
							return
						}
						reqs.Add(1)
						msgs.Add(1)
					}
				}
			})
			b.StopTimer()
			if got := msgs.Load(); got != int64(10*b.N) && !b.Failed() {
				b.Errorf("consumed %d messages, want %d", got, 10*b.N)
			}
			reportRates(b, reqs.Load(), msgs.Load())
		})
	}
}

// BenchmarkListMessages: one op is GET /v2/queues/q/messages (default
// limit 10, echo=false) by a client that did not post, on a queue of 1000
// messages.
func BenchmarkListMessages(b *testing.B) {
	n := startBenchNode(b)
	for _, par := range parallelisms {
		b.Run(fmt.Sprintf("depth=1000/limit=10/parallelism=%d", par), func(b *testing.B) {
			project := n.newProject()
			n.fill(b, project, 1000)
			resp, err := n.expect("GET", "/v2/queues/q/messages", project, benchReader, nil, true, 200)
			if err != nil {
				b.Fatal(err)
			}
			var page claimResponse
			if err := json.Unmarshal(resp, &page); err != nil || len(page.Messages) != 10 {
				b.Fatalf("listing = %d messages, %v; want 10: %s", len(page.Messages), err, resp)
			}
			b.ReportAllocs()
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := n.expect("GET", "/v2/queues/q/messages", project, benchReader, nil, false, 200); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			reportRates(b, int64(b.N), int64(10*b.N))
		})
	}
}

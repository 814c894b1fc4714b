// Package bench is `herald bench`, a load generator for Zaqar v2
// endpoints (REST and WebSocket) and, for comparison, NATS JetStream,
// modelled on zaqar-bench.
//
// Producers post, consumers claim and delete, observers list. Each worker
// has its own connection and Client-ID and works on one queue (workers of
// a role are spread round-robin over the queues). The latency of every
// request that starts inside the measured window (after the warm-up,
// before the end of --duration) goes into an HDR histogram per operation;
// failed requests are counted by kind instead. At the end the messages
// consumers received are checked against what producers posted
// (verify.go).
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"sync"
	"time"
)

// Config is one bench run. Flags map one to one onto it (flags.go).
type Config struct {
	Target  string // "rest", "ws" or "nats"
	URL     string // REST server root
	WSURL   string
	WSAuth  string // token for an `authenticate` frame; empty sends none
	NATSURL string

	Producers, Consumers, Observers int
	MessagesPerRequest              int
	BodySize                        int
	ClaimLimit                      int
	ConsumerDelete                  string // "each" or "bulk"
	WSPipeline                      int

	Queues      int
	QueuePrefix string
	Project     string // empty: bench-<random>

	Duration, Warmup, Timeout time.Duration
	KeepAlive                 bool
	Setup, Clean              bool
	Verify                    bool

	// Progress, when set, receives a line or two about what the run does.
	Progress io.Writer
}

// DefaultConfig is the configuration of `herald bench` without flags.
func DefaultConfig() Config {
	return Config{
		Target: "rest", URL: "http://127.0.0.1:8888", WSURL: "ws://127.0.0.1:9000", NATSURL: "nats://127.0.0.1:4222",
		Producers: 1, Consumers: 1, MessagesPerRequest: 1, BodySize: 256, ClaimLimit: 10,
		ConsumerDelete: "each", WSPipeline: 1, Queues: 1, QueuePrefix: "bench",
		Duration: 10 * time.Second, Timeout: 10 * time.Second,
		KeepAlive: true, Setup: true, Verify: true,
	}
}

// UsageError is a configuration the bench refuses to run.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

func usageErr(format string, args ...any) error { return &UsageError{fmt.Sprintf(format, args...)} }

var queueName = regexp.MustCompile(`^[a-zA-Z0-9_\-.]{1,64}$`)

func (c *Config) validate() error {
	switch c.Target {
	case "rest", "ws", "nats":
	default:
		return usageErr("--target must be rest, ws or nats, not %q", c.Target)
	}
	switch {
	case c.Producers < 0 || c.Consumers < 0 || c.Observers < 0:
		return usageErr("worker counts must not be negative")
	case c.Producers+c.Consumers+c.Observers == 0:
		return usageErr("nothing to do: --producers, --consumers and --observers are all 0")
	case c.Target == "nats" && c.Observers > 0:
		return usageErr("--observers is not supported with --target nats: JetStream has no listing that leaves messages in place the way Zaqar's does")
	case c.MessagesPerRequest < 1:
		return usageErr("--messages-per-request must be at least 1")
	case c.BodySize < 0:
		return usageErr("--body-size must not be negative")
	case c.ClaimLimit < 1:
		return usageErr("--claim-limit must be at least 1")
	case c.ConsumerDelete != "each" && c.ConsumerDelete != "bulk":
		return usageErr("--consumer-delete must be each or bulk, not %q", c.ConsumerDelete)
	case c.WSPipeline < 1:
		return usageErr("--ws-pipeline must be at least 1")
	case c.Queues < 1:
		return usageErr("--queues must be at least 1")
	case c.Duration <= 0:
		return usageErr("--duration must be positive")
	case c.Warmup < 0:
		return usageErr("--warmup must not be negative")
	case c.Timeout <= 0:
		return usageErr("--timeout must be positive")
	case !queueName.MatchString(fmt.Sprintf("%s-%d", c.QueuePrefix, c.Queues-1)):
		return usageErr("--queue-prefix %q does not give valid queue names (letters, digits, _ - . and at most 64 characters)", c.QueuePrefix)
	}
	return nil
}

func (c *Config) endpoint() string {
	switch c.Target {
	case "ws":
		return c.WSURL
	case "nats":
		return c.NATSURL
	}
	return c.URL
}

func (c *Config) newTarget() (Target, error) {
	switch c.Target {
	case "ws":
		return newWSTarget(c)
	case "nats":
		return newNATSTarget(c), nil
	}
	return newRESTTarget(c)
}

// run is one execution of a Config.
type run struct {
	cfg    Config
	target Target
	id     string // names the run in message tokens
	// Requests that start in [from, until) are measured; no request
	// starts after until, and none outlives hard.
	from, until, hard time.Time
	maxLatency        time.Duration
}

// Execute runs the bench and reports its figures. It returns an error,
// a *UsageError when the configuration is refused, only when the bench
// could not run (setup failed); failed requests are in the report.
// Cancelling ctx ends the run early; the report then covers what ran.
func Execute(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Project == "" {
		cfg.Project = "bench-" + randomHex(4)
	}
	target, err := cfg.newTarget()
	if err != nil {
		return nil, err
	}
	queues := make([]string, cfg.Queues)
	for i := range queues {
		queues[i] = fmt.Sprintf("%s-%d", cfg.QueuePrefix, i)
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	if cfg.Setup {
		sctx, cancel := context.WithTimeout(ctx, cfg.Timeout*time.Duration(1+len(queues)))
		err := target.Setup(sctx, queues)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("setup: %w", err)
		}
	}
	fmt.Fprintf(progress, "herald bench: %s %s, project %s, %d queue(s), %d producer(s), %d consumer(s), %d observer(s), %s",
		cfg.Target, cfg.endpoint(), cfg.Project, len(queues), cfg.Producers, cfg.Consumers, cfg.Observers, cfg.Duration)
	if cfg.Warmup > 0 {
		fmt.Fprintf(progress, " after %s of warm-up", cfg.Warmup)
	}
	fmt.Fprintln(progress)

	r := &run{cfg: cfg, target: target, id: randomHex(4), maxLatency: cfg.Timeout + time.Minute}
	r.from = time.Now().Add(cfg.Warmup)
	r.until = r.from.Add(cfg.Duration)
	r.hard = r.until.Add(cfg.Timeout)
	ws := r.workers(queues)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { w.run(ctx) })
	}
	wg.Wait()
	end := time.Now()
	if end.After(r.until) {
		end = r.until
	}
	if cfg.Clean {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeout*time.Duration(1+len(queues)))
		if err := target.Clean(cctx, queues); err != nil {
			fmt.Fprintln(progress, "herald bench: clean:", err)
		}
		cancel()
	}
	return r.report(ws, end), nil
}

// workers builds the workers of every role, each on its queue.
func (r *run) workers(queues []string) []*worker {
	var ws []*worker
	add := func(role string, n int, ops ...string) {
		for i := range n {
			w := &worker{r: r, role: role, index: i, queue: queues[i%len(queues)],
				clientID: randomUUID(), ops: map[string]*opStats{}}
			for _, op := range ops {
				w.ops[op] = newOpStats(r.maxLatency)
			}
			if role == roleProducer {
				w.posts = &postLog{run: r.id, producer: i, bodySize: r.cfg.BodySize}
			}
			ws = append(ws, w)
		}
	}
	add(roleProducer, r.cfg.Producers, opPost)
	add(roleConsumer, r.cfg.Consumers, opClaim, opDelete)
	add(roleObserver, r.cfg.Observers, opList)
	return ws
}

const (
	roleProducer = "producer"
	roleConsumer = "consumer"
	roleObserver = "observer"

	opPost   = "post"
	opClaim  = "claim"
	opDelete = "delete"
	opList   = "list"
)

// worker is one producer, consumer or observer with its own connection.
type worker struct {
	r        *run
	role     string
	index    int
	queue    string
	clientID string
	conn     Conn
	ops      map[string]*opStats
	posts    *postLog   // producers
	got      []delivery // consumers, with --verify
	cursor   string     // observers: the next page
}

// record notes the outcome of a request that started at start, if it
// started inside the measured window and the run was not interrupted.
func (w *worker) record(ctx context.Context, op string, start time.Time, msgs int, err error) {
	if ctx.Err() != nil || start.Before(w.r.from) || !start.Before(w.r.until) {
		return
	}
	w.ops[op].add(time.Since(start), msgs, err)
}

func (w *worker) running(ctx context.Context) bool {
	return ctx.Err() == nil && time.Now().Before(w.r.until)
}

// request derives the context of one request: the per-request timeout,
// never past the hard end of the run.
func (w *worker) request(hard context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(hard, w.r.cfg.Timeout)
}

func (w *worker) run(ctx context.Context) {
	hard, cancel := context.WithDeadline(ctx, w.r.hard)
	defer cancel()
	defer func() {
		if w.conn != nil {
			w.conn.Close()
		}
	}()
	for w.running(ctx) {
		if w.conn == nil && !w.dial(ctx, hard) {
			continue
		}
		var err error
		switch w.role {
		case roleProducer:
			err = w.produce(ctx, hard)
		case roleConsumer:
			err = w.consume(ctx, hard)
		case roleObserver:
			err = w.observe(ctx, hard)
		}
		if isTransport(err) {
			pause(hard, 10*time.Millisecond)
		}
	}
	if ap, ok := w.conn.(AsyncPoster); ok {
		dctx, cancel := w.request(hard)
		ap.Drain(dctx)
		cancel()
	}
}

// dial connects the worker; a failure counts as a failed request of the
// role's first operation.
func (w *worker) dial(ctx, hard context.Context) bool {
	start := time.Now()
	rctx, cancel := w.request(hard)
	conn, err := w.r.target.Dial(rctx, w.clientID)
	cancel()
	if err != nil {
		w.record(ctx, w.firstOp(), start, 0, err)
		pause(hard, 100*time.Millisecond)
		return false
	}
	w.conn = conn
	return true
}

func (w *worker) firstOp() string {
	switch w.role {
	case roleProducer:
		return opPost
	case roleConsumer:
		return opClaim
	}
	return opList
}

// produce posts one request of --messages-per-request messages.
func (w *worker) produce(ctx, hard context.Context) error {
	n := w.r.cfg.MessagesPerRequest
	bodies, first := w.posts.next(n)
	done := func(start time.Time, err error) {
		w.posts.settle(first, n, err)
		w.record(ctx, opPost, start, n, err)
	}
	start := time.Now()
	rctx, cancel := w.request(hard)
	defer cancel()
	if ap, ok := w.conn.(AsyncPoster); ok && w.r.cfg.WSPipeline > 1 {
		err := ap.PostAsync(rctx, w.queue, bodies, done)
		if err != nil {
			done(start, err)
		}
		return err
	}
	err := w.conn.Post(rctx, w.queue, bodies)
	done(start, err)
	return err
}

// consume claims messages and deletes every one it got.
func (w *worker) consume(ctx, hard context.Context) error {
	start := time.Now()
	rctx, cancel := w.request(hard)
	ds, err := w.conn.Claim(rctx, w.queue, w.r.cfg.ClaimLimit)
	cancel()
	w.record(ctx, opClaim, start, len(ds), err)
	if err != nil || len(ds) == 0 {
		return err
	}
	base := len(w.got)
	if w.r.cfg.Verify {
		at := time.Now()
		for _, d := range ds {
			w.got = append(w.got, delivery{id: d.ID, token: bodyToken(d.Body), at: at})
		}
	}
	deleted := func(i int) {
		if w.r.cfg.Verify {
			w.got[base+i].deleted = true
		}
	}
	// Claimed messages are deleted even past the end of the window, so a
	// run leaves nothing claimed behind; hard still bounds it.
	if w.r.cfg.ConsumerDelete == "bulk" {
		start := time.Now()
		rctx, cancel := w.request(hard)
		err := w.conn.DeleteMany(rctx, w.queue, ds)
		cancel()
		w.record(ctx, opDelete, start, len(ds), err)
		if err == nil {
			for i := range ds {
				deleted(i)
			}
		}
		return err
	}
	var last error
	for i, d := range ds {
		start := time.Now()
		rctx, cancel := w.request(hard)
		err := w.conn.Delete(rctx, w.queue, d)
		cancel()
		w.record(ctx, opDelete, start, 1, err)
		if err == nil {
			deleted(i)
		} else {
			last = err
		}
	}
	return last
}

// observe reads one page, following the next link, or the head again
// after an empty page.
func (w *worker) observe(ctx, hard context.Context) error {
	start := time.Now()
	rctx, cancel := w.request(hard)
	n, next, err := w.conn.List(rctx, w.queue, w.cursor)
	cancel()
	w.record(ctx, opList, start, n, err)
	if err != nil || n == 0 {
		w.cursor = ""
	} else {
		w.cursor = next
	}
	return err
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// randomUUID is a version 4 UUID, the form Zaqar wants in Client-ID.
func randomUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

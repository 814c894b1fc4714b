// Package api holds Herald's transport-independent operations: validate a
// request, turn it into an event, append it to the log, wait until the
// local projector applied it, and answer from the projection. REST (package
// api/rest) and WebSocket call the same operations and share the same error
// type, so both transports behave alike.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// Config holds the service's limits and defaults (contract §5.1). Zero
// values take Zaqar's defaults.
type Config struct {
	DefaultMessageTTL   int64
	DefaultMessageDelay int64
	DefaultClaimTTL     int64
	DefaultClaimGrace   int64
	MaxQueuesPerPage    int
	MaxMessagesPerPage  int
	MaxMessagesPerClaim int // also the pop maximum
	MaxQueueMetadata    int64
	MaxMessagesPostSize int64
	MaxMessageTTL       int64
	MaxMessageDelay     int64
	MaxClaimTTL         int64
	MaxClaimGrace       int64

	DefaultSubscriptionTTL  int64
	MaxSubscriptionsPerPage int

	// PoolDir holds the projections of pools (one directory each) and
	// Partitions is the partition count of pool logs.
	PoolDir    string
	Partitions int32
	Logger     *slog.Logger
	// Feed receives the applied events of the pools' replicas (the node
	// passes the one its own replica publishes to).
	Feed *projection.Feed

	// IdempotencyWindow is how long an Idempotency-Key is remembered.
	IdempotencyWindow time.Duration

	// SignedURLKey is the secret that signs pre-signed URLs (conf
	// signed_url.secret_key); empty: shares are refused and no signed
	// request verifies.
	SignedURLKey string
	// RequireConfirmation (conf notification.require_confirmation): only
	// confirmed subscriptions get notifications, and with a SignedURLKey
	// each new subscription is sent a confirmation request.
	RequireConfirmation bool
	// ReadOnly is set on a node serving a rebuilt projection: pools are
	// never opened (their logs are not in the projection).
	ReadOnly bool
	// ApplyTimeout bounds how long a write waits for its own event to be
	// applied before answering 503 (the event is not lost).
	ApplyTimeout time.Duration
}

func (c *Config) withDefaults() {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.DefaultMessageTTL, 3600)
	def(&c.DefaultClaimTTL, 300)
	def(&c.DefaultClaimGrace, 60)
	defInt(&c.MaxQueuesPerPage, 20)
	defInt(&c.MaxMessagesPerPage, 20)
	defInt(&c.MaxMessagesPerClaim, 20)
	def(&c.MaxQueueMetadata, 65536)
	def(&c.MaxMessagesPostSize, 262144)
	def(&c.MaxMessageTTL, 1209600)
	def(&c.MaxMessageDelay, 900)
	def(&c.MaxClaimTTL, 43200)
	def(&c.MaxClaimGrace, 43200)
	def(&c.DefaultSubscriptionTTL, 3600)
	defInt(&c.MaxSubscriptionsPerPage, 20)
	if c.Partitions == 0 {
		c.Partitions = 16
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.IdempotencyWindow == 0 {
		c.IdempotencyWindow = 10 * time.Minute
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 10 * time.Second
	}
}

// Service implements the operations. It is safe for concurrent use.
type Service struct {
	cfg       Config
	pools     *poolSet
	now       func() time.Time
	tracer    trace.Tracer
	appendDur metric.Float64Histogram
}

// New returns a service over the node's own replica (its log, projection
// and projector) and the pools its catalog names. now is the clock for
// event times and reads (time.Now in production). Close closes the pools
// it opened; the caller keeps owning primary.
func New(cfg Config, primary *projection.Replica, now func() time.Time) (*Service, error) {
	cfg.withDefaults()
	if now == nil {
		now = time.Now
	}
	hist, err := otel.Meter("github.com/heraldmq/herald/api").Float64Histogram("herald.log.append.duration",
		metric.WithUnit("s"), metric.WithDescription("Time to append one event durably to the log."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, now: now, tracer: otel.Tracer("github.com/heraldmq/herald/api"), appendDur: hist}
	s.pools = &poolSet{primary: primary, dir: cfg.PoolDir, partitions: cfg.Partitions, cfg: &s.cfg, open: map[string]*openPool{}}
	return s, nil
}

// Close closes the replicas of the pools the service opened.
func (s *Service) Close(ctx context.Context) error { return s.pools.close(ctx) }

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Now is the service clock in Unix nanoseconds.
func (s *Service) Now() int64 { return s.now().UnixNano() }

// Caller identifies who makes a request: the project every resource is
// scoped to and the normalised Client-ID.
type Caller struct {
	Project   string
	ClientID  string
	RequestID string
	// IdempotencyKey, when set, makes a post, claim or subscription
	// request a no-op repeat of an earlier one with the same key and
	// Fingerprint (a digest of the request) within the idempotency window.
	IdempotencyKey string
	Fingerprint    []byte
}

// idempotent reports whether requests of event type t honour an
// Idempotency-Key.
func idempotent(t hlog.Type) bool {
	switch t {
	case hlog.MessagesPosted, hlog.ClaimCreated, hlog.SubscriptionCreated:
		return true
	}
	return false
}

var queueNameRE = regexp.MustCompile(`^[a-zA-Z0-9_\-.]+$`)

// ValidQueueName reports whether name is a valid queue or topic name.
func ValidQueueName(name string) bool {
	return len(name) <= 64 && queueNameRE.MatchString(name)
}

// ValidProject reports whether project is acceptable on queue routes.
func ValidProject(project string) bool { return project != "" && len(project) <= 256 }

// NormalizeClientID parses a Client-ID the way Python's uuid.UUID does and
// returns its 32 lowercase hex digits.
func NormalizeClientID(s string) (string, bool) {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "urn:", ""), "uuid:", "")
	s = strings.ReplaceAll(strings.Trim(s, "{}"), "-", "")
	if len(s) != 32 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

var propagator = propagation.TraceContext{}

// write appends ev to the log of its queue (see replicaFor) for caller c,
// waits until the local projector applied it and returns its position and
// outcome.
func (s *Service) write(ctx context.Context, c Caller, ev *hlog.Event) (int32, int64, *projection.Outcome, error) {
	return s.startWrite(ctx, c, ev).wait(ctx)
}

// startWrite is write without the waiting: the event is on its way to the
// log when it returns, behind every write this goroutine started before
// on the same queue.
func (s *Service) startWrite(ctx context.Context, c Caller, ev *hlog.Event) *pendingWrite {
	r, err := s.replicaFor(ctx, ev.Project, ev.Queue)
	if err != nil {
		return &pendingWrite{err: err, answered: true}
	}
	return s.startWriteTo(ctx, c, r, ev)
}

// writeTo is write to the log of replica r.
func (s *Service) writeTo(ctx context.Context, c Caller, r *projection.Replica, ev *hlog.Event) (int32, int64, *projection.Outcome, error) {
	return s.startWriteTo(ctx, c, r, ev).wait(ctx)
}

// pendingWrite is an event on its way to the log; wait returns what write
// returns. The goroutine waiting is woken once, when the event is applied
// (or the append failed): the log's acknowledgement goes straight to the
// projector's watermark instead of through it.
type pendingWrite struct {
	s     *Service
	r     *projection.Replica
	ev    *hlog.Event
	rec   *hlog.Record
	span  trace.Span
	start time.Time
	// deadline ends the wait for the apply (ApplyTimeout after the start,
	// however late the waiting begins, as for pipelined posts).
	deadline time.Time
	// result receives the append's error, or nil once the event is
	// applied; appended is closed when the log acknowledged it, after
	// stopWaiting is set.
	result      chan error
	appended    chan struct{}
	stopWaiting func()
	// answered is set when the result is known without waiting: a repeat
	// of an applied request, or a failure before the append.
	answered bool
	p        int32
	off      int64
	out      *projection.Outcome
	err      error
}

func (s *Service) startWriteTo(ctx context.Context, c Caller, r *projection.Replica, ev *hlog.Event) *pendingWrite {
	w := &pendingWrite{s: s, r: r, ev: ev}
	ev.ClientID, ev.RequestID = c.ClientID, c.RequestID
	if c.IdempotencyKey != "" && idempotent(ev.Type) {
		ev.Idempotency = &hlog.Idempotency{Key: c.IdempotencyKey, Fingerprint: c.Fingerprint,
			Window: int64(s.cfg.IdempotencyWindow / time.Second)}
		// A retry of a request already applied is answered without
		// appending anything.
		out, err := r.Store.Repeat(ev.Project, ev.Queue, c.IdempotencyKey, c.Fingerprint, ev.Time)
		switch {
		case err != nil:
			w.answered, w.err = true, Unavailable("The request could not be checked.", err)
			return w
		case out != nil && out.Status >= 400:
			w.answered, w.out, w.err = true, out, &Error{Status: out.Status, Title: out.Title, Description: out.Description}
			return w
		case out != nil:
			w.answered, w.out = true, out
			w.p, w.off = hlog.PartitionFor(ev.Key(), r.Log.Partitions()), out.Offset
			return w
		}
	}
	ctx, w.span = s.tracer.Start(ctx, "log.append", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("herald.event_type", string(ev.Type))))
	carrier := propagation.MapCarrier{}
	propagator.Inject(ctx, carrier)
	ev.Traceparent, ev.Tracestate = carrier["traceparent"], carrier["tracestate"]

	rec, err := ev.Record()
	if err != nil {
		w.span.End()
		w.answered, w.err = true, err
		return w
	}
	w.rec, w.start = rec, time.Now()
	w.deadline = w.start.Add(s.cfg.ApplyTimeout)
	w.result, w.appended = make(chan error, 1), make(chan struct{})
	r.Log.AppendAsync(ctx, rec, func(err error) {
		if err != nil {
			w.result <- err
			return
		}
		s.appendDur.Record(context.Background(), time.Since(w.start).Seconds())
		w.stopWaiting = r.Projector.OnApplied(rec.Partition, rec.Offset, func() { w.result <- nil })
		close(w.appended)
	})
	return w
}

func (w *pendingWrite) wait(ctx context.Context) (int32, int64, *projection.Outcome, error) {
	if w.answered {
		return w.p, w.off, w.out, w.err
	}
	defer w.span.End()
	timer := time.NewTimer(time.Until(w.deadline))
	defer timer.Stop()
	var late error // why the wait ended before the event was applied
	select {
	case err := <-w.result:
		return w.applied(err)
	case <-timer.C:
		late = Unavailable("The request was recorded but is not applied yet.", context.DeadlineExceeded)
	case <-ctx.Done():
		late = ctx.Err()
	}
	// Until the log has answered, the record may still become durable:
	// wait for its answer whatever ctx says, so a failure is never
	// reported for a write that happened.
	select {
	case <-w.appended:
	case err := <-w.result:
		return w.applied(err)
	}
	w.stopWaiting()
	select {
	case err := <-w.result: // applied meanwhile
		return w.applied(err)
	default:
		return 0, 0, nil, late
	}
}

// applied finishes a write whose result came: the log's error, or nil when
// the event is applied.
func (w *pendingWrite) applied(err error) (int32, int64, *projection.Outcome, error) {
	ev, rec, r := w.ev, w.rec, w.r
	if err != nil {
		w.span.RecordError(err)
		if errors.Is(err, hlog.ErrReadOnly) {
			return 0, 0, nil, ReadOnly("Nothing can be changed here.")
		}
		return 0, 0, nil, Unavailable(fmt.Sprintf("%s could not be written.", ev.Type), err)
	}
	w.span.SetAttributes(attribute.Int("herald.partition", int(rec.Partition)), attribute.Int64("herald.offset", rec.Offset))
	if !projection.HasOutcome(ev.Type) && ev.Idempotency == nil {
		return rec.Partition, rec.Offset, nil, nil
	}
	out, err := r.Store.Outcome(rec.Partition, rec.Offset)
	if err != nil {
		return 0, 0, nil, err
	}
	if out != nil && out.Status >= 400 {
		return 0, 0, out, &Error{Status: out.Status, Title: out.Title, Description: out.Description}
	}
	return rec.Partition, rec.Offset, out, nil
}

func (s *Service) event(t hlog.Type, c Caller, queue string, payload any) (*hlog.Event, error) {
	return hlog.NewEvent(t, c.Project, queue, s.Now(), payload)
}

// Ready reports whether the log and the projection answer (GET /v2/ping).
func (s *Service) Ready(ctx context.Context) bool {
	r := s.pools.primary
	if _, err := r.Log.End(ctx, 0); err != nil {
		return false
	}
	_, err := r.Store.Applied(0)
	return err == nil
}

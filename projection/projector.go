package projection

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	hlog "github.com/heraldmq/herald/log"
)

// Projector runs one apply loop per partition of a log into a Store.
//
// Each loop reads its partition from the stored applied offset, applies a
// run of records in one indexed batch and commits it together with the new
// applied offset, so every event is applied exactly once. After the commit
// it advances the partition's watermark, which is what WaitApplied waits
// on. Start, WaitApplied, Applied and CatchUp may be called concurrently.
type Projector struct {
	store  *Store
	log    hlog.Log
	logger *slog.Logger
	tracer trace.Tracer
	batch  int
	feed   *Feed
	// readOnly: see ProjectorOptions.ReadOnly.
	readOnly bool

	parts  []*watermark
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type watermark struct {
	// unpublished holds a committed batch whose follow-ups could not be
	// appended: the apply loop publishes it to the feed once they are.
	// Only the partition's apply loop touches it.
	unpublished []Applied

	applied atomic.Int64
	mu      sync.Mutex
	// waiting holds the callbacks of offsets not applied yet, a min-heap
	// by offset: an advance calls exactly those it reached, so a commit
	// wakes the requests it answers and no others. Callbacks given up on
	// (their request ended) stay until reached or until they are most of
	// the heap, which is then rebuilt without them.
	waiting   waiters
	abandoned int
}

type waiter struct {
	off  int64
	fn   func()
	gone bool // given up on, or out of the heap; guarded by watermark.mu
}

type waiters []*waiter

func (h waiters) Len() int           { return len(h) }
func (h waiters) Less(i, j int) bool { return h[i].off < h[j].off }
func (h waiters) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *waiters) Push(x any)        { *h = append(*h, x.(*waiter)) }
func (h *waiters) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return w
}

func (w *watermark) advance(to int64) {
	w.mu.Lock()
	w.applied.Store(to)
	var due []func()
	for len(w.waiting) > 0 && w.waiting[0].off < to {
		wt := heap.Pop(&w.waiting).(*waiter)
		if wt.gone {
			w.abandoned--
			continue
		}
		wt.gone = true // out of the heap: abandoning it now changes nothing
		due = append(due, wt.fn)
	}
	w.mu.Unlock()
	for _, fn := range due {
		fn()
	}
}

// onApplied calls fn once the event at off is applied: at once when it
// is, else from the apply loop. It returns the waiter to abandon, or nil
// when fn ran already.
func (w *watermark) onApplied(off int64, fn func()) *waiter {
	if w.applied.Load() > off {
		fn()
		return nil
	}
	w.mu.Lock()
	if w.applied.Load() > off {
		w.mu.Unlock()
		fn()
		return nil
	}
	wt := &waiter{off: off, fn: fn}
	heap.Push(&w.waiting, wt)
	w.mu.Unlock()
	return wt
}

// abandon drops wt, whose fn is no longer wanted (it may still run when
// the apply loop reached it first).
func (w *watermark) abandon(wt *waiter) {
	if wt == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if wt.gone {
		return
	}
	wt.gone = true
	w.abandoned++
	if w.abandoned > 1024 && w.abandoned > len(w.waiting)/2 {
		kept := w.waiting[:0]
		for _, x := range w.waiting {
			if !x.gone {
				kept = append(kept, x)
			}
		}
		clear(w.waiting[len(kept):])
		w.waiting = kept
		heap.Init(&w.waiting)
		w.abandoned = 0
	}
}

// ProjectorOptions configures a Projector.
type ProjectorOptions struct {
	Logger *slog.Logger
	// Batch bounds how many records one commit applies.
	Batch int
	// Feed, if set, receives every applied event.
	Feed *Feed
	// ReadOnly projectors apply nothing: they only report the store's
	// applied offsets (a read-only node serving a rebuilt projection).
	ReadOnly bool
}

// NewProjector returns a projector of log l into s. Start runs it.
func NewProjector(s *Store, l hlog.Log, opts ProjectorOptions) *Projector {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Batch <= 0 {
		opts.Batch = 512
	}
	p := &Projector{
		store: s, log: l, logger: opts.Logger, batch: opts.Batch, feed: opts.Feed, readOnly: opts.ReadOnly,
		tracer: otel.Tracer("github.com/heraldmq/herald/projection"),
		parts:  make([]*watermark, l.Partitions()),
	}
	for i := range p.parts {
		p.parts[i] = &watermark{}
	}
	return p
}

// Start loads the applied offsets and starts the apply loops.
func (p *Projector) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	for i := range p.parts {
		part := int32(i)
		off, err := p.store.Applied(part)
		if err != nil {
			cancel()
			return fmt.Errorf("projector: applied offset of partition %d: %w", part, err)
		}
		p.parts[i].applied.Store(off)
	}
	if p.readOnly {
		return nil
	}
	for i := range p.parts {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.run(ctx, int32(i))
		}()
	}
	return nil
}

// Shutdown stops the apply loops and waits for them.
func (p *Projector) Shutdown(ctx context.Context) error {
	if p.cancel != nil {
		p.cancel()
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Applied returns the next offset partition part will apply.
func (p *Projector) Applied(part int32) int64 { return p.parts[part].applied.Load() }

// WaitApplied blocks until the event at (part, off) is applied.
func (p *Projector) WaitApplied(ctx context.Context, part int32, off int64) error {
	w := p.parts[part]
	if w.applied.Load() > off {
		return nil
	}
	ch := make(chan struct{})
	wt := w.onApplied(off, func() { close(ch) })
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		w.abandon(wt)
		return ctx.Err()
	}
}

// OnApplied calls fn once the event at (part, off) is applied: at once
// when it is, else from the partition's apply loop, so fn must not block.
// Cancel gives up on a callback not called yet.
func (p *Projector) OnApplied(part int32, off int64, fn func()) (cancel func()) {
	w := p.parts[part]
	wt := w.onApplied(off, fn)
	return func() { w.abandon(wt) }
}

// CatchUp waits until every partition has applied everything that was
// durable in the log when CatchUp was called.
func (p *Projector) CatchUp(ctx context.Context) error {
	ends, err := p.log.Ends(ctx)
	if err != nil {
		return err
	}
	for i, end := range ends {
		if end > 0 {
			if err := p.WaitApplied(ctx, int32(i), end-1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Projector) run(ctx context.Context, part int32) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := p.follow(ctx, part)
		if ctx.Err() != nil || errors.Is(err, hlog.ErrClosed) {
			return
		}
		p.logger.Error("projector failed, retrying", "partition", part, "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// follow applies partition part until ctx ends or something fails.
func (p *Projector) follow(ctx context.Context, part int32) error {
	replayEnd, err := p.log.End(ctx, part)
	if err != nil {
		return err
	}
	scan := &followScan{p: p, src: part, replayEnd: replayEnd, targets: map[int32]*targetScan{}}
	// Follow-ups of batches committed before a crash or a failed append
	// go out first; the watermark then catches up with the store.
	if err := p.flushOutbox(ctx, part, scan); err != nil {
		return err
	}
	applied, err := p.store.Applied(part)
	if err != nil {
		return err
	}
	if applied > p.parts[part].applied.Load() {
		p.parts[part].advance(applied)
	}
	if u := p.parts[part].unpublished; u != nil {
		p.parts[part].unpublished = nil
		p.feed.publish(u)
	}
	a, err := newApplier(p.store.db, part)
	if err != nil {
		return err
	}
	cur, err := p.log.OpenCursor(part, applied)
	if err != nil {
		return err
	}
	defer cur.Close()
	for {
		recs, err := cur.Next(ctx, p.batch)
		if err != nil {
			return err
		}
		if err := p.applyBatch(ctx, a, part, recs, scan); err != nil {
			return err
		}
	}
}

var propagator = propagation.TraceContext{}

func (p *Projector) applyBatch(ctx context.Context, a *applier, part int32, recs []hlog.Record, scan *followScan) error {
	b := p.store.db.NewIndexedBatch()
	defer b.Close()
	var changes []Applied
	for i := range recs {
		ev, err := p.applyRecord(ctx, b, a, &recs[i])
		if err != nil {
			return err
		}
		if ev != nil && p.feed != nil {
			changes = append(changes, Applied{Partition: part, Offset: recs[i].Offset, Event: ev, Delivers: a.delivers})
		}
		a.delivers = false
	}
	next := recs[len(recs)-1].Offset + 1
	if err := p.store.commitApplied(b, a, part, next); err != nil {
		return err
	}
	if a.outboxed {
		a.outboxed = false
		if err := p.flushOutbox(ctx, part, scan); err != nil {
			p.parts[part].unpublished = changes
			return err
		}
	}
	p.parts[part].advance(next)
	p.feed.publish(changes)
	return nil
}

// applyRecord applies one record and returns its event when the event
// changed something (not a rejection, not a repeated request).
func (p *Projector) applyRecord(ctx context.Context, b *pebble.Batch, a *applier, rec *hlog.Record) (*hlog.Event, error) {
	carrier := propagation.MapCarrier{}
	if tp := rec.HeaderValue(hlog.HeaderTraceparent); tp != nil {
		carrier[hlog.HeaderTraceparent] = string(tp)
		if ts := rec.HeaderValue(hlog.HeaderTracestate); ts != nil {
			carrier[hlog.HeaderTracestate] = string(ts)
		}
	}
	link := trace.LinkFromContext(propagator.Extract(context.Background(), carrier))
	ctx, span := p.tracer.Start(ctx, "projection.apply", trace.WithLinks(link),
		trace.WithAttributes(
			attribute.Int("herald.partition", int(rec.Partition)),
			attribute.Int64("herald.offset", rec.Offset),
			attribute.String("herald.event_type", string(rec.HeaderValue(hlog.HeaderType)))))
	defer span.End()

	ev, err := hlog.DecodeEvent(rec.Value)
	return p.applyDecoded(ctx, b, a, rec, ev, err)
}

// applyDecoded is applyRecord of a record already decoded into ev (or
// that failed to decode with err).
func (p *Projector) applyDecoded(ctx context.Context, b *pebble.Batch, a *applier, rec *hlog.Record, ev *hlog.Event, err error) (*hlog.Event, error) {
	if err != nil {
		p.logger.Warn("skipping undecodable event", "partition", rec.Partition, "offset", rec.Offset, "err", err)
		return nil, putRecord(b, outcomeKey(rec.Partition, rec.Offset), &Outcome{Status: 400, Title: "Invalid request body", Description: err.Error()})
	}
	span := trace.SpanFromContext(ctx)
	out, err := a.apply(b, rec.Offset, ev)
	if err != nil {
		span.RecordError(err)
		return nil, fmt.Errorf("apply %s at %d/%d: %w", ev.Type, rec.Partition, rec.Offset, err)
	}
	if out != nil {
		span.SetAttributes(attribute.Int("herald.outcome", out.Status))
		if out.Status >= 400 || out.Repeat {
			return nil, nil
		}
	}
	return ev, nil
}

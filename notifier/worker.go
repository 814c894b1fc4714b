package notifier

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// idleTimeout is how long a worker without deliveries waits for more
// before its goroutine ends (its progress stays with the partition).
const idleTimeout = 30 * time.Second

// worker delivers the pending deliveries of one subscription, at most
// Concurrency at a time, and reports its progress.
type worker struct {
	pt   *partition
	t    target
	wake chan struct{}

	running bool // guarded by pt.mu

	// Done through this position (-1: nothing yet), ahead of the
	// projection until the report is applied; only the goroutine of run
	// touches it.
	off int64
	idx int32
	// probeAt is when a suspended subscription is tried next (zero: not
	// suspended as far as this worker knows).
	probeAt time.Time

	mu       sync.Mutex // guards the report below; deliveries run concurrently
	rep      hlog.SubscriptionDeliveredV1
	dirty    bool
	reported time.Time
}

func (w *worker) run(ctx context.Context) {
	n := w.pt.n
	idleSince := time.Now()
	for {
		if ctx.Err() != nil {
			w.flush()
			w.stop()
			return
		}
		sub, err := n.store.Subscription(w.t.Project, w.t.Queue, w.t.ID, n.cfg.Clock.Now().UnixNano())
		if err != nil {
			n.cfg.Logger.Error("notifier: read subscription", "subscription", w.t.ID, "err", err)
		}
		if sub == nil {
			// Deleted or expired: its deliveries went with it.
			w.pt.mu.Lock()
			delete(w.pt.workers, w.t)
			w.running = false
			w.pt.mu.Unlock()
			return
		}
		if sub.Delivery.Suspended {
			w.probe(ctx, sub)
			continue
		}
		w.probeAt = time.Time{}
		if w.deliver(ctx, sub) {
			idleSince = time.Now()
			continue
		}
		w.flush()
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-time.After(idleTimeout - time.Since(idleSince)):
			if w.stop() {
				return
			}
		}
	}
}

// stop ends the goroutine unless it was woken meanwhile.
func (w *worker) stop() bool {
	w.pt.mu.Lock()
	defer w.pt.mu.Unlock()
	select {
	case <-w.wake:
		if w.pt.ctx.Err() == nil {
			return false
		}
	default:
	}
	w.running = false
	// Once its progress is reported the projection knows it all: forget
	// the worker, or the partition would keep one for every subscription
	// it ever delivered to (expired and deleted ones included).
	w.mu.Lock()
	if !w.dirty {
		delete(w.pt.workers, w.t)
	}
	w.mu.Unlock()
	return true
}

// inflight is a delivery being made.
type inflight struct {
	d    projection.Delivery
	done bool
	res  result
}

// maxWindow bounds the deliveries a worker keeps between the first one
// not done and the last one launched: those done behind a delivery being
// retried wait there until it is done, and are made again if it is not.
const maxWindow = 1024

// deliver makes the pending deliveries, each with the retry policy, as a
// sliding window: up to Concurrency in flight, a free slot refilled at
// once with the next pending one (so a delivery being retried holds up
// only its own slot, for up to maxWindow deliveries after it), and the
// progress advanced over the prefix that is done. It returns once nothing
// is pending and in flight (false if there was nothing to do), or when a
// delivery exhausted the policy: that suspends the subscription, and it
// and those after it stay pending.
func (w *worker) deliver(ctx context.Context, sub *projection.Subscription) bool {
	n := w.pt.n
	policy := w.policy(sub)
	results := make(chan *inflight, n.cfg.Concurrency)
	var window []*inflight // in log order
	running := 0           // deliveries of the window not done
	off, idx := w.off, w.idx
	exhausted, worked := false, false
	tick := time.NewTicker(n.cfg.ReportInterval)
	defer tick.Stop()
	for {
		// Free slots: in flight are those not done, not the whole window.
		free := min(n.cfg.Concurrency-running, max(maxWindow, n.cfg.Concurrency)-len(window))
		if !exhausted && ctx.Err() == nil && free > 0 {
			ds, err := n.store.PendingDeliveries(w.pt.p, w.t, off, idx, free)
			if err != nil {
				n.cfg.Logger.Error("notifier: read pending deliveries", "subscription", w.t.ID, "err", err)
			}
			for _, d := range ds {
				f := &inflight{d: d}
				window = append(window, f)
				running++
				go func() {
					f.res = w.attempts(ctx, sub, &f.d, policy)
					results <- f
				}()
				off, idx = d.Offset, d.Index
				worked = true
			}
		}
		if len(window) == 0 {
			break
		}
		select {
		case f := <-results:
			running--
			f.done, f.d.Body = true, nil // only its position is needed now
			if f.res == retry && ctx.Err() == nil {
				exhausted = true
			}
		case <-w.wake:
		case <-tick.C:
			w.flushIfDirty()
			continue
		}
		// Advance over the finished prefix; a delivery that was not
		// made (exhausted, or abandoned as ctx ended) stops it.
		for len(window) > 0 && window[0].done && window[0].res != retry {
			f := window[0]
			window = window[1:]
			w.off, w.idx = f.d.Offset, f.d.Index
			w.mu.Lock()
			w.rep.Through, w.rep.Index = w.off, w.idx
			if f.res == ok {
				w.rep.Delivered++
			} else {
				w.rep.Dropped++
			}
			w.dirty = true
			w.mu.Unlock()
		}
		if (exhausted || ctx.Err() != nil) && running == 0 {
			break // everything launched came back; nothing more goes out
		}
		if time.Since(w.reported) >= n.cfg.ReportInterval {
			w.flush()
		}
	}
	if exhausted {
		w.mu.Lock()
		w.rep.Suspended = true
		w.dirty = true
		w.mu.Unlock()
		n.cfg.Logger.Warn("notifier: retry policy exhausted, subscription suspended",
			"project", w.t.Project, "queue", w.t.Queue, "subscription", w.t.ID)
		// Read the suspension back before going on, so the next round
		// sees it in the projection.
		w.flushAndWait(ctx)
	}
	return worked
}

// attempts makes one delivery: a first attempt, then retries on the
// policy's schedule while attempts fail in a way worth retrying. It
// returns retry when the schedule ran out (or ctx ended).
func (w *worker) attempts(ctx context.Context, sub *projection.Subscription, d *projection.Delivery, p *Policy) result {
	n := w.pt.n
	res := w.attempt(ctx, sub, d)
	if res != retry {
		return res
	}
	for _, pause := range p.Schedule() {
		if !sleep(ctx, n.cfg.Clock, pause) {
			return retry
		}
		// The subscription may have changed during the pause: deleted
		// or expired (its deliveries went with it: no more attempts), or
		// updated (the next attempt goes to the new subscriber, with the
		// new options).
		cur, err := n.store.Subscription(w.t.Project, w.t.Queue, w.t.ID, n.cfg.Clock.Now().UnixNano())
		if err == nil {
			if cur == nil {
				return refused
			}
			sub = cur
		}
		if res = w.attempt(ctx, sub, d); res != retry {
			return res
		}
	}
	return retry
}

// attempt makes one attempt and notes how it went.
func (w *worker) attempt(ctx context.Context, sub *projection.Subscription, d *projection.Delivery) result {
	n := w.pt.n
	res, err := n.send(ctx, w.pt.p, w.t, sub, d)
	if ctx.Err() != nil && res == retry {
		return retry // abandoned, not failed: no report
	}
	n.attempts.Add(ctx, 1, resultAttrs[res])
	w.mu.Lock()
	defer w.mu.Unlock()
	if res == ok {
		w.rep.Failures = 0
	} else {
		w.rep.Failures++
		w.rep.LastError = truncate(err.Error(), 512)
		w.rep.ErrorAt = n.cfg.Clock.Now().UnixNano()
	}
	w.dirty = true
	return res
}

// send renders a delivery and sends it by the subscriber's scheme.
func (n *Notifier) send(ctx context.Context, p int32, t target, sub *projection.Subscription, d *projection.Delivery) (result, error) {
	doc := n.payload(t, d)
	payload, err := json.Marshal(doc)
	if err != nil {
		return refused, err
	}
	id := projection.PositionID(p, d.Offset, int(d.Index))
	if strings.HasPrefix(strings.ToLower(sub.Subscriber), "mailto:") {
		return n.mail(ctx, sub, id, d, doc, payload)
	}
	return n.webhook(ctx, sub, id, payload)
}

// probe waits until the next probe is due (returning early when woken:
// an update of the subscription lifts the suspension), then tries the
// first pending delivery once; a success resumes delivery.
func (w *worker) probe(ctx context.Context, sub *projection.Subscription) {
	n := w.pt.n
	if w.probeAt.IsZero() {
		w.probeAt = time.Now().Add(n.cfg.ProbeInterval)
	}
	select {
	case <-ctx.Done():
		return
	case <-w.wake:
		return // look again; the probe stays due at probeAt
	case <-time.After(time.Until(w.probeAt)):
	}
	w.probeAt = time.Now().Add(n.cfg.ProbeInterval)
	batch, err := n.store.PendingDeliveries(w.pt.p, w.t, w.off, w.idx, 1)
	if err != nil {
		// Nothing is known about the backlog: stay suspended and probe
		// again later.
		n.cfg.Logger.Error("notifier: read pending deliveries", "partition", w.pt.p, "queue", w.t.Queue, "subscription", w.t.ID, "err", err)
		return
	}
	if len(batch) == 0 {
		w.mu.Lock()
		w.rep.Suspended, w.dirty = false, true
		w.mu.Unlock()
		w.flushAndWait(ctx)
		return
	}
	res := w.attempt(ctx, sub, &batch[0])
	if res == retry {
		w.mu.Lock()
		w.rep.Suspended = true // still
		w.mu.Unlock()
		w.flush()
		return
	}
	w.off, w.idx = batch[0].Offset, batch[0].Index
	w.mu.Lock()
	w.rep.Through, w.rep.Index = w.off, w.idx
	if res == ok {
		w.rep.Delivered++
	} else {
		w.rep.Dropped++
	}
	w.rep.Suspended, w.dirty = false, true
	w.mu.Unlock()
	n.cfg.Logger.Info("notifier: subscription resumed", "subscription", w.t.ID)
	w.flushAndWait(ctx)
}

// policy is the retry policy of a subscription's webhooks.
func (w *worker) policy(sub *projection.Subscription) *Policy {
	var qp *Policy
	if meta, exists, err := w.pt.n.store.QueueMetadata(w.t.Project, w.t.Queue); err == nil && exists {
		qp = policyOf(meta)
	}
	return effectivePolicy(policyOf(sub.Options), qp)
}

// reportTimeout bounds the append of a report, also after the partition
// was revoked (its progress should reach the log before the next owner
// starts).
const reportTimeout = 5 * time.Second

func (w *worker) flushIfDirty() {
	w.mu.Lock()
	dirty := w.dirty
	w.mu.Unlock()
	if dirty {
		w.flush()
	}
}

// flush appends the pending report, if any; it returns the report's
// position.
func (w *worker) flush() (int32, int64, bool) {
	n := w.pt.n
	w.mu.Lock()
	if !w.dirty {
		w.mu.Unlock()
		return 0, 0, false
	}
	rep := w.rep
	rep.ID = w.t.ID
	if rep.Delivered == 0 && rep.Dropped == 0 {
		rep.Through = -1
	}
	// Suspended is said by the report that suspends (or keeps suspended)
	// alone: the owner's update may lift it at any time.
	w.rep.Delivered, w.rep.Dropped, w.rep.Suspended, w.dirty = 0, 0, false, false
	w.reported = time.Now()
	w.mu.Unlock()

	ev, err := hlog.NewEvent(hlog.SubscriptionDelivered, w.t.Project, w.t.Queue, time.Now().UnixNano(), &rep)
	if err == nil {
		var rec *hlog.Record
		if rec, err = ev.Record(); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
			defer cancel()
			if err = n.log.Append(ctx, rec); err == nil {
				return rec.Partition, rec.Offset, true
			}
		}
	}
	// Not reported: the deliveries stay pending in the projection and
	// will be made again (at least once), so count them again.
	n.cfg.Logger.Error("notifier: report progress", "subscription", w.t.ID, "err", err)
	w.mu.Lock()
	w.rep.Delivered += rep.Delivered
	w.rep.Dropped += rep.Dropped
	w.dirty = true
	w.mu.Unlock()
	return 0, 0, false
}

// flushAndWait flushes and waits until the report is applied.
func (w *worker) flushAndWait(ctx context.Context) {
	if p, off, ok := w.flush(); ok {
		w.pt.n.proj.WaitApplied(ctx, p, off)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

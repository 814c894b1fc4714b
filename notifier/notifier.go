// Package notifier delivers the notifications of Herald's subscriptions:
// webhooks (with Zaqar's retry policies and Herald's request signing) and
// e-mail, plus the confirmation requests of the contract's opt-in
// confirmation flow. WebSocket subscriptions are the ws package's.
//
// What to deliver is decided in the projection, from the log alone (see
// projection/deliveries.go): each posted message leaves one pending
// delivery per subscription that may receive it. The notifier works
// through them and reports what it did as subscription.delivered events,
// which remove the done ones and record the delivery status. Progress is
// therefore as durable as the log: after a crash or restart whoever
// delivers next starts from what is still pending, so a message may be
// delivered twice — receivers get a stable id to drop duplicates — but
// never skipped.
//
// Partitions are owned by one node at a time ([log.Own]): every partition
// on the embedded log; on Kafka, those the consumer group assigns to this
// node, moving when a node stops. A subscription's deliveries are those of
// its queue's partition, so each is sent by one node.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// Config configures a notifier.
type Config struct {
	// Replica is the log and projection the notifier delivers from; Feed
	// is the change feed its projector publishes to.
	Replica *projection.Replica
	Feed    *projection.Feed
	Logger  *slog.Logger

	// Group names the ownership group of the notifiers sharing a Kafka
	// log ("herald-notifier" by default); Own tunes the membership.
	Group string
	Own   hlog.OwnOptions
	// Node names this node in the User-Agent of its requests.
	Node string

	// Timeout bounds one webhook request or SMTP session (10s).
	Timeout time.Duration
	// Concurrency is how many deliveries of one subscription may be in
	// flight at once (4); other subscriptions never wait for them.
	Concurrency int
	// ProbeInterval is how often a suspended subscription is tried again
	// (5 minutes).
	ProbeInterval time.Duration
	// ReportInterval is how often delivery status is reported while
	// deliveries are being retried (1s).
	ReportInterval time.Duration

	// SignedURLKey signs the confirm URLs of confirmation requests.
	SignedURLKey string
	// PublicURL and PublicWSURL, when set, are the service's public REST
	// and WebSocket base URLs, named in confirmation requests.
	PublicURL, PublicWSURL string
	// ConfirmationPage, when set, is the page confirmation e-mails link
	// to (Zaqar's external_confirmation_url).
	ConfirmationPage string

	Mail MailConfig
	// Clock paces retries and stamps signatures (the real clock if nil).
	Clock Clock
	// Transport makes webhook requests (http.DefaultTransport's settings
	// if nil).
	Transport http.RoundTripper
}

func (c *Config) withDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Group == "" {
		c.Group = "herald-notifier"
	}
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = 5 * time.Minute
	}
	if c.ReportInterval <= 0 {
		c.ReportInterval = time.Second
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Mail.From == "" {
		c.Mail.From = "herald@" + c.Node
	}
}

// result is how one attempt went.
type result int

var resultAttrs = [...]metric.MeasurementOption{
	metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "ok"))),
	metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "retry"))),
	metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "refused"))),
}

const (
	ok      result = iota
	retry          // failed; worth another attempt (transport error, 5xx, 408, 429)
	refused        // refused for good (other 4xx, bad address): not retried
)

type target = projection.DeliveryTarget

// Notifier delivers notifications; see the package documentation.
type Notifier struct {
	cfg       Config
	log       hlog.Log
	store     *projection.Store
	proj      *projection.Projector
	http      *http.Client
	userAgent string
	attempts  metric.Int64Counter

	mu    sync.Mutex
	parts map[int32]*partition

	own        hlog.Ownership
	cancelFeed func()
	closeOnce  sync.Once
}

// Start starts delivering on the partitions this node comes to own.
func Start(cfg Config) (*Notifier, error) {
	cfg.withDefaults()
	if cfg.Replica == nil {
		return nil, errors.New("notifier: no replica")
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		tr = t
	}
	n := &Notifier{
		cfg: cfg, log: cfg.Replica.Log, store: cfg.Replica.Store, proj: cfg.Replica.Projector,
		http: &http.Client{Transport: tr,
			// A redirect is an answer, as it is to Zaqar: not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		userAgent: fmt.Sprintf("Herald-Notifier (%s)", cfg.Node),
		parts:     map[int32]*partition{},
	}
	var err error
	n.attempts, err = otel.Meter("github.com/heraldmq/herald/notifier").Int64Counter("herald.notifier.attempts",
		metric.WithDescription("Delivery attempts, by result (ok, retry, refused)."))
	if err != nil {
		return nil, err
	}
	if cfg.Feed != nil {
		n.cancelFeed = cfg.Feed.Subscribe(n.onApplied)
	}
	own, err := hlog.Own(n.log, cfg.Group, cfg.Own, n.assign, n.revoke)
	if err != nil {
		if n.cancelFeed != nil {
			n.cancelFeed()
		}
		return nil, fmt.Errorf("notifier: %w", err)
	}
	n.own = own
	return n, nil
}

// Close stops delivering: in-flight deliveries are abandoned (they stay
// pending), progress so far is reported, and the partitions are released
// to the other nodes.
func (n *Notifier) Close() error {
	var err error
	n.closeOnce.Do(func() {
		if n.cancelFeed != nil {
			n.cancelFeed()
		}
		err = n.own.Close()
	})
	return err
}

// Owned returns the partitions this node delivers for.
func (n *Notifier) Owned() []int32 { return n.own.Owned() }

func (n *Notifier) assign(ps []int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range ps {
		if n.parts[p] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		part := &partition{n: n, p: p, ctx: ctx, cancel: cancel,
			wake: make(chan struct{}, 1), done: make(chan struct{}), workers: map[target]*worker{}}
		n.parts[p] = part
		go part.run()
	}
	n.cfg.Logger.Info("notifier: partitions assigned", "partitions", ps)
}

// revoke stops the partitions' deliveries and returns once they stopped,
// so the next owner never overlaps with this one.
func (n *Notifier) revoke(ps []int32) {
	n.mu.Lock()
	var stopping []*partition
	for _, p := range ps {
		if part := n.parts[p]; part != nil {
			delete(n.parts, p)
			part.cancel()
			stopping = append(stopping, part)
		}
	}
	n.mu.Unlock()
	for _, part := range stopping {
		<-part.done
	}
	n.cfg.Logger.Info("notifier: partitions revoked", "partitions", ps)
}

// onApplied wakes the partitions whose applied events may have made
// deliveries or resumed a subscription. It runs on the apply loop.
func (n *Notifier) onApplied(batch []projection.Applied) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range batch {
		wake := a.Delivers
		switch a.Event.Type {
		case hlog.SubscriptionCreated, hlog.SubscriptionUpdated, hlog.SubscriptionConfirmed:
			wake = true
		}
		if part := n.parts[a.Partition]; wake && part != nil {
			poke(part.wake)
		}
	}
}

// poke signals ch without blocking.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// rescanInterval is how often an owned partition looks for pending
// deliveries without being woken (deliveries left by another owner, or
// by this node before a restart, and missed wake-ups).
const rescanInterval = 10 * time.Second

// partition runs the deliveries of one owned partition: a worker per
// subscription with pending deliveries.
type partition struct {
	n      *Notifier
	p      int32
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	workers map[target]*worker
	wg      sync.WaitGroup
}

func (pt *partition) run() {
	defer close(pt.done)
	defer pt.wg.Wait()
	// Deliveries another owner already reported done are gone once the
	// projection has caught up with the log: start from there.
	if end, err := pt.n.log.End(pt.ctx, pt.p); err == nil && end > 0 {
		pt.n.proj.WaitApplied(pt.ctx, pt.p, end-1)
	}
	for pt.ctx.Err() == nil {
		err := pt.n.store.PendingSubscriptions(pt.p, func(t target) bool {
			pt.start(t)
			return pt.ctx.Err() == nil
		})
		if err != nil {
			pt.n.cfg.Logger.Error("notifier: scan pending deliveries", "partition", pt.p, "err", err)
		}
		select {
		case <-pt.ctx.Done():
		case <-pt.wake:
		case <-time.After(rescanInterval):
		}
	}
}

// start runs t's worker, or wakes it if it runs.
func (pt *partition) start(t target) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	w := pt.workers[t]
	if w == nil {
		w = &worker{pt: pt, t: t, off: -1, wake: make(chan struct{}, 1)}
		pt.workers[t] = w
	}
	if w.running {
		poke(w.wake)
		return
	}
	w.running = true
	pt.wg.Add(1)
	go func() {
		defer pt.wg.Done()
		w.run(pt.ctx)
	}()
}

package projection_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// The benchmarks run on a one-partition Pebble log, so one apply loop
// applies every event and events/s is the cost of apply itself (decode,
// reads and writes on the indexed batch, one NoSync commit per 512 events).

const (
	benchProject = "bench-project"
	benchPoster  = "0123456789abcdef0123456789abcdef" // Client-ID of every post
	benchReader  = "fedcba9876543210fedcba9876543210" // another client
)

// benchBody is a 256-byte compact JSON message body (a JSON string).
var benchBody = []byte(`"` + string(bytes.Repeat([]byte("x"), 254)) + `"`)

var benchT0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// benchEnv is a log and a store under construction.
type benchEnv struct {
	b     *testing.B
	log   hlog.Log
	store *projection.Store
	clock atomic.Int64 // event time; advances 1µs per event
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	l, err := hlog.OpenPebble(hlog.PebbleOptions{Dir: b.TempDir(), Partitions: 1, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	s, err := projection.Open(b.TempDir(), quiet)
	if err != nil {
		l.Close()
		b.Fatal(err)
	}
	e := &benchEnv{b: b, log: l, store: s}
	e.clock.Store(benchT0)
	return e
}

func (e *benchEnv) close() {
	if err := e.store.Close(); err != nil {
		e.b.Error(err)
	}
	if err := e.log.Close(); err != nil {
		e.b.Error(err)
	}
}

// event builds an event as the API would, at the next event time.
func (e *benchEnv) event(typ hlog.Type, queue string, payload any) *hlog.Event {
	ev, err := hlog.NewEvent(typ, benchProject, queue, e.clock.Add(int64(time.Microsecond)), payload)
	if err != nil {
		e.b.Fatal(err)
	}
	ev.ClientID = benchPoster
	ev.RequestID = "req-0123456789abcdef"
	return ev
}

// appendAll appends evs with 64 concurrent writers (so group commit fills
// the log quickly) and returns each event's offset. Events of one call
// are therefore in no particular order relative to each other.
func (e *benchEnv) appendAll(evs []*hlog.Event) []int64 {
	e.b.Helper()
	offs := make([]int64, len(evs))
	recs := make([]*hlog.Record, len(evs))
	for i, ev := range evs {
		rec, err := ev.Record()
		if err != nil {
			e.b.Fatal(err)
		}
		recs[i] = rec
	}
	projection.AppendConcurrently(e.b, e.log, recs)
	for i, rec := range recs {
		offs[i] = rec.Offset
	}
	return offs
}

// catchUp runs a fresh projector until it has applied the whole log. When
// timed, it stops the benchmark timer once caught up, before shutdown.
func (e *benchEnv) catchUp(timed bool) {
	e.b.Helper()
	p := projection.NewProjector(e.store, e.log, projection.ProjectorOptions{Logger: quiet})
	if err := p.Start(); err != nil {
		e.b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := p.CatchUp(ctx); err != nil {
		e.b.Fatal(err)
	}
	if timed {
		e.b.StopTimer()
	}
	if err := p.Shutdown(ctx); err != nil {
		e.b.Fatal(err)
	}
}

func postedMessages(n int) *hlog.MessagesPostedV1 {
	pl := &hlog.MessagesPostedV1{Messages: make([]hlog.PostedMessage, n)}
	for i := range pl.Messages {
		pl.Messages[i] = hlog.PostedMessage{TTL: 3600, Body: benchBody}
	}
	return pl
}

// postMany posts total messages to queue in events of up to 100 messages
// and returns the message ids.
func (e *benchEnv) postMany(queue string, total int) []string {
	var evs []*hlog.Event
	var sizes []int
	for left := total; left > 0; left -= 100 {
		n := min(left, 100)
		evs = append(evs, e.event(hlog.MessagesPosted, queue, postedMessages(n)))
		sizes = append(sizes, n)
	}
	offs := e.appendAll(evs)
	var ids []string
	for i, off := range offs {
		for j := range sizes[i] {
			ids = append(ids, projection.PositionID(0, off, j))
		}
	}
	return ids
}

func queueName(i int) string { return fmt.Sprintf("q%d", i) }

var claim10 = &hlog.ClaimCreatedV1{TTL: 300, Grace: 60, Limit: 10}

// applyCase builds the state before the timer (prefix, applied by an
// untimed projector) and returns the n events to time.
type applyCase struct {
	name   string
	prefix func(e *benchEnv, n int) []*hlog.Event
}

var applyCases = []applyCase{
	{"event=queue.created", func(e *benchEnv, n int) []*hlog.Event {
		evs := make([]*hlog.Event, n)
		for i := range evs {
			evs[i] = e.event(hlog.QueueCreated, queueName(i), &hlog.QueueCreatedV1{Metadata: []byte(`{"k":"v"}`)})
		}
		return evs
	}},
	{"event=messages.posted/messages=1", postedCase(1)},
	{"event=messages.posted/messages=10", postedCase(10)},
	// Each delete names a distinct message of one queue, without a claim.
	{"event=message.deleted", func(e *benchEnv, n int) []*hlog.Event {
		ids := e.postMany("q", n)
		evs := make([]*hlog.Event, n)
		for i := range evs {
			evs[i] = e.event(hlog.MessageDeleted, "q", &hlog.MessageDeletedV1{ID: ids[i]})
		}
		return evs
	}},
	// Claimed messages stay at the head of their queue and every claim
	// scans from the head, so claims are spread one per queue (20
	// messages each) to time the claim itself, independent of b.N.
	{"event=claim.created/limit=10/claimed_ahead=0", func(e *benchEnv, n int) []*hlog.Event {
		posts := make([]*hlog.Event, n)
		for i := range posts {
			posts[i] = e.event(hlog.MessagesPosted, queueName(i), postedMessages(20))
		}
		e.appendAll(posts)
		evs := make([]*hlog.Event, n)
		for i := range evs {
			evs[i] = e.event(hlog.ClaimCreated, queueName(i), claim10)
		}
		return evs
	}},
	// One queue whose first 10000 messages are claimed (by 10 claims of
	// 1000, which apply accepts though the API would not): each new claim
	// scans past them. The timed claims add 10 claimed messages each, so
	// the cost drifts up slightly with b.N.
	{"event=claim.created/limit=10/claimed_ahead=10000", func(e *benchEnv, n int) []*hlog.Event {
		e.postMany("q", 10000)
		big := &hlog.ClaimCreatedV1{TTL: 300, Grace: 60, Limit: 1000}
		for range 10 { // one at a time: each claim must see the previous
			e.appendAll([]*hlog.Event{e.event(hlog.ClaimCreated, "q", big)})
		}
		e.postMany("q", 10*n)
		evs := make([]*hlog.Event, n)
		for i := range evs {
			evs[i] = e.event(hlog.ClaimCreated, "q", claim10)
		}
		return evs
	}},
	// Each release frees a claim of 10 messages on its own queue.
	{"event=claim.released/messages=10", func(e *benchEnv, n int) []*hlog.Event {
		posts := make([]*hlog.Event, n)
		claims := make([]*hlog.Event, n)
		for i := range posts {
			posts[i] = e.event(hlog.MessagesPosted, queueName(i), postedMessages(10))
			claims[i] = e.event(hlog.ClaimCreated, queueName(i), claim10)
		}
		e.appendAll(posts)
		offs := e.appendAll(claims)
		evs := make([]*hlog.Event, n)
		for i := range evs {
			evs[i] = e.event(hlog.ClaimReleased, queueName(i), &hlog.ClaimReleasedV1{ClaimID: projection.PositionID(0, offs[i], 0)})
		}
		return evs
	}},
}

func postedCase(msgs int) func(e *benchEnv, n int) []*hlog.Event {
	return func(e *benchEnv, n int) []*hlog.Event {
		e.appendAll([]*hlog.Event{e.event(hlog.QueueCreated, "q", &hlog.QueueCreatedV1{Metadata: []byte(`{}`)})})
		evs := make([]*hlog.Event, n)
		for i := range evs {
			evs[i] = e.event(hlog.MessagesPosted, "q", postedMessages(msgs))
		}
		return evs
	}
}

// BenchmarkApply times a fresh projector (NewProjector, Start, CatchUp)
// applying b.N events of one type that were appended beforehand, on top
// of a prefix of events that an earlier, untimed projector applied. One
// op is one applied event.
func BenchmarkApply(b *testing.B) {
	for _, c := range applyCases {
		b.Run(c.name, func(b *testing.B) {
			b.StopTimer()
			e := newBenchEnv(b)
			defer e.close()
			evs := c.prefix(e, b.N)
			e.catchUp(false)
			e.appendAll(evs)
			b.ReportAllocs()
			b.ResetTimer()
			b.StartTimer()
			e.catchUp(true)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkQuery measures the API's reads on a store built by the
// projector. Reads take "now" one second after the last event.
func BenchmarkQuery(b *testing.B) {
	e := newBenchEnv(b)
	defer e.close()
	listIDs := e.postMany("list", 10000)
	e.postMany("stats", 1000)
	e.postMany("claim", 10)
	claimOff := e.appendAll([]*hlog.Event{e.event(hlog.ClaimCreated, "claim", claim10)})[0]
	claimID := projection.PositionID(0, claimOff, 0)
	e.catchUp(false)
	now := e.clock.Load() + int64(time.Second)
	var ids []string
	for i := 0; i < len(listIDs); i += len(listIDs) / 20 {
		ids = append(ids, listIDs[i])
	}
	s := e.store

	run := func(name string, want int, fn func() (int, error)) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := fn()
				if err != nil {
					b.Fatal(err)
				}
				if got != want {
					b.Fatalf("got %d results, want %d", got, want)
				}
			}
		})
	}
	// The API's default listing: echo=false for another client.
	run("op=ListMessages/depth=10000/limit=10", 10, func() (int, error) {
		ms, err := s.ListMessages(benchProject, "list", projection.ListFilter{Limit: 10, ClientID: benchReader, IncludeDelayed: true}, now)
		return len(ms), err
	})
	// echo=false for the client that posted every message: nothing is
	// visible, so the listing scans the whole queue.
	run("op=ListMessages/depth=10000/limit=10/echo_hides=all", 0, func() (int, error) {
		ms, err := s.ListMessages(benchProject, "list", projection.ListFilter{Limit: 10, ClientID: benchPoster, IncludeDelayed: true}, now)
		return len(ms), err
	})
	run("op=Messages/depth=10000/ids=20", 20, func() (int, error) {
		ms, err := s.Messages(benchProject, "list", ids, now)
		return len(ms), err
	})
	run("op=QueueStats/depth=1000", 1000, func() (int, error) {
		st, err := s.QueueStats(benchProject, "stats", now)
		return st.Total, err
	})
	run("op=Claim/messages=10", 10, func() (int, error) {
		c, ms, err := s.Claim(benchProject, "claim", claimID, now)
		if c == nil {
			return -1, err
		}
		return len(ms), err
	})
}

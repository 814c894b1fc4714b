package projection_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// BenchmarkRebuild times Rebuild of a whole Pebble log into a new store:
// what `herald replay` does. The log holds
// HERALD_REBUILD_EVENTS events (200000 unless set) on 16 partitions, a
// mix of queue creations, subscriptions, posts of 1 to 10 small messages,
// claims, releases and deletes. It is built once per run of the benchmark,
// before the timer, and reopened so that the rebuild reads it from disk.
// One op is one rebuild; events/s is the figure to watch. Large logs may
// need a -timeout above go test's default.
func BenchmarkRebuild(b *testing.B) {
	n := 200000
	if v := os.Getenv("HERALD_REBUILD_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("HERALD_REBUILD_EVENTS=%q is not a positive number", v)
		}
	}
	const partitions = 16
	tmp := b.TempDir()
	logDir := filepath.Join(tmp, "log")
	start := time.Now()
	writeRebuildLog(b, logDir, partitions, n)
	b.Logf("appended %d events to %d partitions in %s", n, partitions, time.Since(start).Round(time.Millisecond))
	l, err := hlog.OpenPebble(hlog.PebbleOptions{Dir: logDir, Partitions: partitions, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()

	b.Run(fmt.Sprintf("events=%d/partitions=%d", n, partitions), func(b *testing.B) {
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			dir, err := os.MkdirTemp(tmp, "projection-")
			if err != nil {
				b.Fatal(err)
			}
			s, err := projection.Open(dir, quiet)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			info, err := projection.Rebuild(context.Background(), l, s, projection.RebuildOptions{Logger: quiet})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			var applied int64
			for _, off := range info.Applied {
				applied += off
			}
			if applied != int64(n) {
				b.Fatalf("rebuilt %d events, the log holds %d", applied, n)
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// Shape of the rebuild benchmark's log.
const (
	rebuildWriters        = 1024 // concurrent appenders, so group commit fills the log quickly
	rebuildEventsPerQueue = 100
	rebuildProjects       = 10
)

var rebuildBody = []byte(`{"event":"order.created","id":123456,"amount":42.5,"currency":"EUR"}`)

// writeRebuildLog appends n events to a new log in dir. Each writer owns
// some queues and appends their events one at a time, so events of a
// queue are in time order and deletes and releases name messages and
// claims that exist; writers run concurrently.
func writeRebuildLog(b *testing.B, dir string, partitions int32, n int) {
	b.Helper()
	l, err := hlog.OpenPebble(hlog.PebbleOptions{Dir: dir, Partitions: partitions, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			b.Error(err)
		}
	}()
	queues := max(1, n/rebuildEventsPerQueue)
	writers := min(rebuildWriters, queues)
	var (
		clock atomic.Int64 // event time: 1 ms per event, so messages and claims expire along the way
		wg    sync.WaitGroup
		first atomic.Pointer[error]
	)
	clock.Store(benchT0)
	for w := range writers {
		events := n / writers
		if w < n%writers {
			events++
		}
		wg.Go(func() {
			if err := writeRebuildQueues(l, w, writers, queues, events, &clock); err != nil {
				first.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	if errp := first.Load(); errp != nil {
		b.Fatal(*errp)
	}
}

// rebuildQueue is what a writer remembers of one of its queues.
type rebuildQueue struct {
	project, name string
	created       bool
	subscribe     bool     // still to get its subscription
	messages      []string // ids of posted messages, some deleted since
	claims        []string
}

// writeRebuildQueues appends events events to the queues of writer w:
// every writers-th queue from w.
func writeRebuildQueues(l hlog.Log, w, writers, queues, events int, clock *atomic.Int64) error {
	rng := rand.New(rand.NewPCG(uint64(w), 1))
	var own []*rebuildQueue
	for q := w; q < queues; q += writers {
		own = append(own, &rebuildQueue{project: fmt.Sprintf("project-%d", q%rebuildProjects), name: fmt.Sprintf("queue-%d", q), subscribe: q%10 == 0})
	}
	for range events {
		q := own[rng.IntN(len(own))]
		typ, payload := nextRebuildEvent(rng, q)
		ev, err := hlog.NewEvent(typ, q.project, q.name, clock.Add(int64(time.Millisecond)), payload)
		if err != nil {
			return err
		}
		ev.ClientID = benchPoster
		rec, err := ev.Record()
		if err != nil {
			return err
		}
		if err := l.Append(context.Background(), rec); err != nil {
			return err
		}
		switch p := payload.(type) {
		case *hlog.MessagesPostedV1:
			for j := range p.Messages {
				q.messages = append(q.messages, projection.PositionID(rec.Partition, rec.Offset, j))
			}
		case *hlog.ClaimCreatedV1:
			q.claims = append(q.claims, projection.PositionID(rec.Partition, rec.Offset, 0))
		}
	}
	return nil
}

// nextRebuildEvent picks queue q's next event: its creation first (with a
// subscription on one queue in ten), then about 70% posts, 12% claims,
// 15% deletes of a posted message and 3% claim releases.
func nextRebuildEvent(rng *rand.Rand, q *rebuildQueue) (hlog.Type, any) {
	if !q.created {
		q.created = true
		return hlog.QueueCreated, &hlog.QueueCreatedV1{Metadata: []byte(`{"_max_claim_count":10}`)}
	}
	if q.subscribe {
		q.subscribe = false
		return hlog.SubscriptionCreated, &hlog.SubscriptionCreatedV1{Subscriber: "https://hooks.example.com/" + q.name, TTL: 86400, Secret: "s"}
	}
	switch r := rng.IntN(100); {
	case r < 70 || len(q.messages) == 0:
		pl := &hlog.MessagesPostedV1{Messages: make([]hlog.PostedMessage, 1+rng.IntN(10))}
		for j := range pl.Messages {
			pl.Messages[j] = hlog.PostedMessage{TTL: []int64{300, 3600}[rng.IntN(2)], Body: rebuildBody}
		}
		return hlog.MessagesPosted, pl
	case r < 82:
		return hlog.ClaimCreated, &hlog.ClaimCreatedV1{TTL: 60, Grace: 60, Limit: 1 + rng.IntN(10)}
	case r < 97 || len(q.claims) == 0:
		i := rng.IntN(len(q.messages))
		id := q.messages[i]
		q.messages[i] = q.messages[len(q.messages)-1]
		q.messages = q.messages[:len(q.messages)-1]
		return hlog.MessageDeleted, &hlog.MessageDeletedV1{ID: id}
	default:
		id := q.claims[len(q.claims)-1]
		q.claims = q.claims[:len(q.claims)-1]
		return hlog.ClaimReleased, &hlog.ClaimReleasedV1{ClaimID: id}
	}
}

package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// RebuildOptions bounds a rebuild.
type RebuildOptions struct {
	// Until is, per partition, the offset to stop before: the rebuilt
	// projection is the state right after the event at Until[p]-1. Nil
	// means each partition's end when the rebuild starts.
	Until []int64
	// AsOf, when not zero (Unix nanoseconds), also stops each partition
	// before its first event later than AsOf: the state as of that time.
	AsOf int64
	// PartitionAsOf, when set, is AsOf per partition (0: no time bound),
	// for cuts that are exact on some partitions and by time on others.
	PartitionAsOf []int64
	// Progress, when set, is called after every applied batch with the
	// records applied so far and the number the rebuild expects to apply
	// (an upper bound when AsOf is set). Calls are serialized.
	Progress func(done, total int64)
	Logger   *slog.Logger
}

// ReplayInfo describes a projection built by Rebuild. It is stored in the
// projection itself, so a rebuilt directory says what it holds.
type ReplayInfo struct {
	// Partitions is the partition count of the log it was built from.
	Partitions int32 `json:"partitions"`
	// Applied is, per partition, the next offset to apply: the rebuilt
	// state includes every event below it.
	Applied []int64 `json:"applied"`
	// AsOf is the time bound asked for (RFC 3339; empty for none).
	AsOf string `json:"as_of,omitempty"`
	// LastEventTime is the time of the latest event applied (RFC 3339;
	// empty when nothing was applied). A read-only node answers as of it.
	LastEventTime string `json:"last_event_time,omitempty"`
	// Built is when the rebuild finished.
	Built string `json:"built"`
}

// rebuildBatch is how many records one commit of a rebuild applies.
const rebuildBatch = 2048

// Rebuild applies log l into s from s's applied offsets up to the bounds
// of opts, and records a ReplayInfo in s. Unlike a Projector it never
// appends: follow-up events the rebuilt events cause are in the log
// already (their outbox entries are left in s, outside every digest). s
// is usually a new, empty store; a store a rebuild was interrupted in goes
// on from where it stopped. Partitions are rebuilt in parallel.
func Rebuild(ctx context.Context, l hlog.Log, s *Store, opts RebuildOptions) (*ReplayInfo, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	n := l.Partitions()
	until := opts.Until
	if until == nil {
		ends, err := l.Ends(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the log's ends: %w", err)
		}
		until = ends
	}
	if len(until) != int(n) {
		return nil, fmt.Errorf("rebuild: %d bounds for %d partitions", len(until), n)
	}
	from := make([]int64, n)
	var total int64
	for p := range n {
		off, err := s.Applied(p)
		if err != nil {
			return nil, err
		}
		if off > until[p] {
			return nil, fmt.Errorf("rebuild: partition %d is applied up to %d, past the bound %d", p, off, until[p])
		}
		from[p] = off
		total += until[p] - off
	}

	asOf := opts.PartitionAsOf
	if asOf == nil {
		asOf = make([]int64, n)
		for p := range asOf {
			asOf[p] = opts.AsOf
		}
	}
	if len(asOf) != int(n) {
		return nil, fmt.Errorf("rebuild: %d time bounds for %d partitions", len(asOf), n)
	}
	r := &rebuild{
		proj:  NewProjector(s, l, ProjectorOptions{Logger: opts.Logger}),
		asOf:  asOf,
		total: total,
		fn:    opts.Progress,
	}
	// s holds the events below from already, also those of a rebuild that
	// was interrupted before it could record a ReplayInfo.
	for p := range n {
		if from[p] > 0 {
			if err := r.sawApplied(ctx, l, p, from[p]-1); err != nil {
				return nil, fmt.Errorf("partition %d: %w", p, err)
			}
		}
	}
	applied := make([]int64, n)
	copy(applied, from)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for p := range n {
		if from[p] >= until[p] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			end, err := r.partition(ctx, p, from[p], until[p])
			mu.Lock()
			defer mu.Unlock()
			applied[p] = end
			if err != nil {
				errs = append(errs, fmt.Errorf("partition %d: %w", p, err))
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	info := &ReplayInfo{Partitions: n, Applied: applied, Built: time.Now().UTC().Format(time.RFC3339Nano)}
	if opts.AsOf != 0 {
		info.AsOf = time.Unix(0, opts.AsOf).UTC().Format(time.RFC3339Nano)
	}
	if prev, err := s.ReplayInfo(); err == nil && prev != nil {
		// An earlier bounded rebuild may have applied later events. Times
		// are compared parsed: RFC 3339 strings with fractions of a second
		// do not sort as times.
		if t, err := time.Parse(time.RFC3339Nano, prev.LastEventTime); err == nil {
			r.sawTime(t.UnixNano())
		}
	}
	if last := r.last.Load(); last != 0 {
		info.LastEventTime = time.Unix(0, last).UTC().Format(time.RFC3339Nano)
	}
	v, err := hlog.Marshal(info)
	if err != nil {
		return nil, err
	}
	if err := s.db.Set([]byte{tagReplay}, v, pebble.NoSync); err != nil {
		return nil, err
	}
	return info, s.db.Flush()
}

// ReplayInfo returns what Rebuild recorded in s, or nil for a projection
// no rebuild wrote (a node's live projection).
func (s *Store) ReplayInfo() (*ReplayInfo, error) {
	return getRecord[ReplayInfo](s.db, []byte{tagReplay})
}

// rebuild is the state a Rebuild's partitions share.
type rebuild struct {
	proj  *Projector
	asOf  []int64 // per partition
	total int64
	done  atomic.Int64
	last  atomic.Int64 // latest event time applied
	mu    sync.Mutex   // serializes progress: counting done and calling fn
	fn    func(done, total int64)
}

func (r *rebuild) sawTime(t int64) {
	for {
		cur := r.last.Load()
		if t <= cur || r.last.CompareAndSwap(cur, t) {
			return
		}
	}
}

// sawApplied counts the time of the event at (p, off), which the store
// holds already.
func (r *rebuild) sawApplied(ctx context.Context, l hlog.Log, p int32, off int64) error {
	ev, err := hlog.EventAt(ctx, l, p, off)
	if err == nil {
		r.sawTime(ev.Time)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

func (r *rebuild) progress(n int) {
	// Counted under the lock, so that calls see done increase.
	r.mu.Lock()
	defer r.mu.Unlock()
	done := r.done.Add(int64(n))
	if r.fn != nil {
		r.fn(done, r.total)
	}
}

// partition applies partition p from offset from up to until (or up to
// the as-of time) and returns the offset it stopped at.
func (r *rebuild) partition(ctx context.Context, p int32, from, until int64) (int64, error) {
	s := r.proj.store
	a, err := newApplier(s.db, p)
	if err != nil {
		return from, err
	}
	cur, err := r.proj.log.OpenCursor(p, from)
	if err != nil {
		return from, err
	}
	defer cur.Close()
	pos := from
	for pos < until {
		// A cursor with records at hand does not look at ctx.
		if err := ctx.Err(); err != nil {
			return pos, err
		}
		recs, err := cur.Next(ctx, int(min(until-pos, rebuildBatch)))
		if err != nil {
			return pos, err
		}
		b := s.db.NewIndexedBatch()
		stop := false
		n := 0
		for i := range recs {
			rec := &recs[i]
			if rec.Offset != pos+int64(n) {
				b.Close()
				return pos, fmt.Errorf("offset %d missing from the log (found %d)", pos+int64(n), rec.Offset)
			}
			ev, derr := hlog.DecodeEvent(rec.Value)
			if derr == nil {
				if r.asOf[p] != 0 && ev.Time > r.asOf[p] {
					stop = true
					break
				}
				r.sawTime(ev.Time)
			}
			if _, err := r.proj.applyDecoded(ctx, b, a, rec, ev, derr); err != nil {
				b.Close()
				return pos, err
			}
			n++
		}
		if n > 0 {
			next := pos + int64(n)
			if err := s.commitApplied(b, a, p, next); err != nil {
				b.Close()
				return pos, err
			}
			pos = next
			r.progress(n)
		}
		b.Close()
		if stop {
			break
		}
	}
	return pos, nil
}

package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// Tests of Rebuild, Parts and OpenReadOnly on real Pebble logs and stores.
// The property they hold Rebuild to: bounded by offsets or by time, it
// builds digest for digest the state a live projection had at that point.

// roundStep is the time between two events of a round. It is not a whole
// second, so event times (and ReplayInfo's times) have fractions.
const roundStep = int64(1500 * time.Millisecond)

var quietSlog = slog.New(slog.DiscardHandler)

var (
	roundProjects = []string{dlProject, "other"}
	roundQueues   = []string{"a", "b", "c"}
)

// add appends an event of queue in project at the rig's time, waits until
// it is applied and moves the time on by roundStep.
func (r *dlRig) add(project, queue string, typ hlog.Type, payload any) *hlog.Record {
	r.t.Helper()
	rec := r.write(project, queue, typ, payload)
	r.now += roundStep
	return rec
}

// settle waits until the live projection applied the whole log, including
// the follow-ups its own applies appended, and returns the log's ends.
func (r *dlRig) settle() []int64 {
	r.t.Helper()
	ctx := dlContext(r.t)
	for {
		before, err := r.log.Ends(ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		r.catchUp()
		after, err := r.log.Ends(ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		if slices.Equal(before, after) {
			return after
		}
	}
}

// liveState is what a live projection held at one point of its log.
type liveState struct {
	ends   []int64
	digest string
	parts  []Part
	last   int64 // time of the latest event below ends
}

// capture settles the live projection and records its state; last is the
// time of the latest event appended.
func (r *dlRig) capture(last int64) liveState {
	r.t.Helper()
	ends := r.settle()
	parts, err := r.store.Parts()
	if err != nil {
		r.t.Fatal(err)
	}
	return liveState{ends: ends, digest: r.digest(), parts: parts, last: last}
}

// script writes rounds of a scripted history into a live projection:
// queues in two projects, posts, claims and their release, deletes,
// metadata patches, purges, subscriptions with deliveries, a pool, and
// dead-lettering to the source's partition and to another one.
type script struct {
	r    *dlRig
	subs map[string]string // subscription id by "project/queue"
}

func newScript(r *dlRig) *script { return &script{r: r, subs: map[string]string{}} }

// round appends round k and returns the live state after it. Every event
// of a round is later than every event of the rounds before; the round's
// last event is its latest.
func (s *script) round(k int) liveState {
	r := s.r
	r.t.Helper()
	r.moveToDeadLetters(dlQueueOn(r.t, k%2 == 1))
	if k == 0 {
		r.add("", "", hlog.PoolPut, &hlog.PoolPutV1{Name: "pool", URI: "pebble:///pool", Weight: 1})
	}
	for _, p := range roundProjects {
		for _, q := range roundQueues {
			if k == 0 {
				r.add(p, q, hlog.QueueCreated, &hlog.QueueCreatedV1{Metadata: []byte(`{"k":1}`)})
				sub := r.add(p, q, hlog.SubscriptionCreated, &hlog.SubscriptionCreatedV1{Subscriber: "http://h/" + q, TTL: 600, Secret: "s"})
				s.subs[p+"/"+q] = PositionID(sub.Partition, sub.Offset, 0)
			}
			post := r.add(p, q, hlog.MessagesPosted, &hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{
				{TTL: 10, Body: []byte(`{"r":1}`)}, {TTL: 3600, Body: []byte(`"x"`)}, {TTL: 3600, Delay: 5, Body: []byte(`null`)},
			}})
			claim := r.add(p, q, hlog.ClaimCreated, &hlog.ClaimCreatedV1{TTL: 20, Grace: 20, Limit: 2})
			r.add(p, q, hlog.MessageDeleted, &hlog.MessageDeletedV1{ID: PositionID(post.Partition, post.Offset, 2)})
			switch k % 4 {
			case 0:
				r.add(p, q, hlog.ClaimReleased, &hlog.ClaimReleasedV1{ClaimID: PositionID(claim.Partition, claim.Offset, 0)})
			case 1:
				r.add(p, q, hlog.QueuePatched, &hlog.QueuePatchedV1{Ops: []hlog.PatchOp{{Op: "add", Key: "round", Value: []byte(fmt.Sprint(k))}},
					MaxMessageTTL: 1209600, MaxPostSize: 262144, MaxDelay: 900})
			case 2:
				r.add(p, q, hlog.SubscriptionDelivered, &hlog.SubscriptionDeliveredV1{ID: s.subs[p+"/"+q], Through: post.Offset, Index: 2, Delivered: 3})
			case 3:
				r.add(p, q, hlog.QueuePurged, &hlog.QueuePurgedV1{Messages: true})
			}
		}
	}
	if k == 3 {
		r.add(dlProject, "c", hlog.SubscriptionDeleted, &hlog.SubscriptionDeletedV1{ID: s.subs[dlProject+"/c"]})
	}
	r.add(dlProject, "a", hlog.MessagesPosted, &hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{{TTL: 3600, Body: []byte(`"last"`)}}})
	return r.capture(r.now - roundStep)
}

// newStore opens a new, empty projection, closed when the test ends.
func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), quietSlog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rebuilt rebuilds l into a new store.
func rebuilt(t *testing.T, l hlog.Log, opts RebuildOptions) (*Store, *ReplayInfo) {
	t.Helper()
	s := newStore(t)
	info, err := Rebuild(dlContext(t), l, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, info
}

func digestOf(t *testing.T, s *Store) string {
	t.Helper()
	d, err := s.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func partsOf(t *testing.T, s *Store) []Part {
	t.Helper()
	ps, err := s.Parts()
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func rfc3339(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// expectState fails unless s holds the live state want, part for part.
func expectState(t *testing.T, s *Store, want liveState) {
	t.Helper()
	if diff := CompareParts(want.parts, partsOf(t, s)); len(diff) != 0 {
		for _, d := range diff {
			t.Errorf("%s differs: live %s (%d keys), rebuilt %s (%d keys)", d.Name, d.Want.Digest, d.Want.Keys, d.Got.Digest, d.Got.Keys)
		}
	}
	if got := digestOf(t, s); got != want.digest {
		t.Fatalf("digest %s, live projection %s", got, want.digest)
	}
}

// TestRebuildAsOfReproducesLiveState captures a live projection after
// each round of a history and rebuilds every captured point from the
// whole log, bounded by the captured ends, by the time of the round's
// last event, or by both (partitions alternately): each rebuild must
// equal the live projection at that point.
func TestRebuildAsOfReproducesLiveState(t *testing.T) {
	l := dlOpenLog(t)
	sc := newScript(dlStart(t, l))
	var states []liveState
	for k := range 4 {
		states = append(states, sc.round(k))
		if k > 0 && states[k].digest == states[k-1].digest {
			t.Fatalf("round %d changed nothing", k)
		}
	}
	final := states[len(states)-1].ends
	for k, want := range states {
		t.Run(fmt.Sprintf("round %d", k), func(t *testing.T) { expectRebuildsOf(t, l, want, final) })
	}
}

// expectRebuildsOf rebuilds l, which ends at final, in three ways as of
// live state want: by its ends, by its time, and by its ends on odd
// partitions and its time on even ones. Each must reproduce it.
func expectRebuildsOf(t *testing.T, l hlog.Log, want liveState, final []int64) {
	mixedUntil := slices.Clone(final)
	mixedAsOf := make([]int64, dlPartitions)
	for p := range dlPartitions {
		if p%2 == 0 {
			mixedAsOf[p] = want.last
		} else {
			mixedUntil[p] = want.ends[p]
		}
	}
	for _, c := range []struct {
		name string
		opts RebuildOptions
		asOf string
	}{
		{"until", RebuildOptions{Until: want.ends}, ""},
		{"as of", RebuildOptions{AsOf: want.last}, rfc3339(want.last)},
		{"until and as of", RebuildOptions{Until: mixedUntil, PartitionAsOf: mixedAsOf}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, info := rebuilt(t, l, c.opts)
			expectState(t, s, want)
			if !slices.Equal(info.Applied, want.ends) {
				t.Errorf("applied %v, want %v", info.Applied, want.ends)
			}
			if info.LastEventTime != rfc3339(want.last) {
				t.Errorf("last event time %s, want %s", info.LastEventTime, rfc3339(want.last))
			}
			if info.AsOf != c.asOf {
				t.Errorf("as of %q, want %q", info.AsOf, c.asOf)
			}
			stored, err := s.ReplayInfo()
			if err != nil || stored == nil || !slices.Equal(stored.Applied, info.Applied) || stored.Built != info.Built {
				t.Errorf("stored replay info %+v (err %v), returned %+v", stored, err, info)
			}
		})
	}
}

// TestRebuildMatchesLiveProjection rebuilds the whole log that a live
// projection applied while it was written, partly concurrently.
func TestRebuildMatchesLiveProjection(t *testing.T) {
	l := dlOpenLog(t)
	r := dlStart(t, l)
	writeLog(t, l) // appended without waiting for the projection
	r.now += int64(24 * time.Hour)
	sc := newScript(r)
	sc.round(0)
	live := sc.round(1)

	s, info := rebuilt(t, l, RebuildOptions{})
	expectState(t, s, live)
	if info.Partitions != dlPartitions || !slices.Equal(info.Applied, live.ends) {
		t.Errorf("replay info %+v, want %d partitions applied to %v", info, dlPartitions, live.ends)
	}
	if _, err := time.Parse(time.RFC3339Nano, info.Built); err != nil {
		t.Errorf("built %q: %v", info.Built, err)
	}
	if got := project(t, l, 512); got != live.digest {
		t.Errorf("projector replay digest %s, live %s", got, live.digest)
	}
	if info, err := r.store.ReplayInfo(); err != nil || info != nil {
		t.Errorf("live projection has replay info %+v (err %v)", info, err)
	}
}

// TestRebuildResumes rebuilds in two steps, first up to a cut, then to
// the end, into the same store: the result equals a one-shot rebuild.
func TestRebuildResumes(t *testing.T) {
	l := dlOpenLog(t)
	writeLog(t, l)
	whole, want := rebuilt(t, l, RebuildOptions{})
	ends := want.Applied
	for _, c := range []struct {
		name string
		cut  func(p int, end int64) int64
	}{
		{"halfway", func(_ int, end int64) int64 { return end / 2 }},
		{"some partitions done, others not started", func(p int, end int64) int64 { return end * int64(p%2) }},
		{"nothing", func(int, int64) int64 { return 0 }},
		{"everything", func(_ int, end int64) int64 { return end }},
	} {
		t.Run(c.name, func(t *testing.T) {
			until := make([]int64, len(ends))
			for p, end := range ends {
				until[p] = c.cut(p, end)
			}
			s, first := rebuilt(t, l, RebuildOptions{Until: until})
			if !slices.Equal(first.Applied, until) {
				t.Fatalf("first step applied %v, want %v", first.Applied, until)
			}
			got, err := Rebuild(dlContext(t), l, s, RebuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Applied, ends) || got.LastEventTime != want.LastEventTime {
				t.Errorf("resumed: applied %v, last event %s; one shot: %v, %s", got.Applied, got.LastEventTime, ends, want.LastEventTime)
			}
			if d := digestOf(t, s); d != digestOf(t, whole) {
				t.Fatalf("resumed digest %s, one-shot %s", d, digestOf(t, whole))
			}
		})
	}
}

// TestRebuildResumeKeepsLatestEventTime resumes a rebuild whose first
// step ended on a whole second and whose second step applies an event a
// fraction of that second later.
func TestRebuildResumeKeepsLatestEventTime(t *testing.T) {
	l, err := hlog.OpenPebble(hlog.PebbleOptions{Dir: t.TempDir(), Partitions: 1, Logger: quietSlog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	times := []int64{t0, t0 + int64(250*time.Millisecond)}
	for _, at := range times {
		appendEvent(t, l, "p", "q", at, hlog.QueueCreated, &hlog.QueueCreatedV1{Metadata: []byte(`{}`)})
	}
	s := newStore(t)
	ctx := dlContext(t)
	for i, at := range times {
		info, err := Rebuild(ctx, l, s, RebuildOptions{Until: []int64{int64(i + 1)}})
		if err != nil {
			t.Fatal(err)
		}
		if info.LastEventTime != rfc3339(at) {
			t.Fatalf("step %d: last event time %s, want %s", i, info.LastEventTime, rfc3339(at))
		}
	}
}

// appendEvent appends one event at time at and returns its record.
func appendEvent(t *testing.T, l hlog.Log, project, queue string, at int64, typ hlog.Type, payload any) *hlog.Record {
	t.Helper()
	ev, err := hlog.NewEvent(typ, project, queue, at, payload)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ev.Record()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// lopsidedLog is a log whose queue bigQueue spans several rebuild batches
// and whose queue small, on another partition, holds a few events later
// than all of those.
type lopsidedLog struct {
	log        hlog.Log
	big, small int32 // their partitions
	latest     int64 // time of the latest event
}

const (
	bigQueue    = "big"
	bigEvents   = 3*rebuildBatch + 100
	smallEvents = 10
)

func newLopsidedLog(t *testing.T) *lopsidedLog {
	t.Helper()
	l := dlOpenLog(t)
	big := hlog.PartitionFor(hlog.QueueKey(dlProject, bigQueue), dlPartitions)
	small := "small"
	for i := 0; hlog.PartitionFor(hlog.QueueKey(dlProject, small), dlPartitions) == big; i++ {
		small = fmt.Sprintf("small%d", i)
	}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	recs := make([]*hlog.Record, bigEvents)
	for i := range recs {
		ev, err := hlog.NewEvent(hlog.MessagesPosted, dlProject, bigQueue, t0+int64(i)*int64(time.Millisecond),
			&hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{{TTL: 3600, Body: []byte(`1`)}}})
		if err != nil {
			t.Fatal(err)
		}
		if recs[i], err = ev.Record(); err != nil {
			t.Fatal(err)
		}
	}
	AppendConcurrently(t, l, recs)
	latest := t0 + int64(bigEvents)*int64(time.Millisecond)
	for i := range smallEvents {
		latest += int64(time.Millisecond) + 1 // not on a millisecond either
		appendEvent(t, l, dlProject, small, latest, hlog.MessagesPosted, &hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{{TTL: 3600, Body: []byte(fmt.Sprint(i))}}})
	}
	return &lopsidedLog{log: l, big: big, small: hlog.PartitionFor(hlog.QueueKey(dlProject, small), dlPartitions), latest: latest}
}

// AppendConcurrently appends recs with 64 writers, so that group commit
// fills the log quickly; records of one queue end up in no particular
// order among themselves. Exported for the external tests and benchmarks
// of this package (it exists only in test builds).
func AppendConcurrently(t testing.TB, l hlog.Log, recs []*hlog.Record) {
	t.Helper()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Pointer[error]
	)
	for range min(64, len(recs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(recs)) && first.Load() == nil; i = next.Add(1) - 1 {
				if err := l.Append(context.Background(), recs[i]); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if errp := first.Load(); errp != nil {
		t.Fatal(*errp)
	}
}

// TestRebuildReportsProgress checks the progress calls of a rebuild of
// several batches: serialized, increasing, against a fixed total that
// the last call reaches, for whole and bounded rebuilds.
func TestRebuildReportsProgress(t *testing.T) {
	ll := newLopsidedLog(t)
	ends, err := ll.log.Ends(dlContext(t))
	if err != nil {
		t.Fatal(err)
	}
	half := make([]int64, len(ends))
	for p, end := range ends {
		half[p] = end / 2
	}
	sum := func(offs []int64) (n int64) {
		for _, o := range offs {
			n += o
		}
		return n
	}
	s := newStore(t)
	for _, c := range []struct {
		name  string
		until []int64
		total int64
	}{
		{"to half", half, sum(half)},
		{"resumed to the end", nil, sum(ends) - sum(half)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var (
				calls   int
				last    int64
				running atomic.Int32
			)
			_, err := Rebuild(dlContext(t), ll.log, s, RebuildOptions{Until: c.until, Progress: func(done, total int64) {
				if running.Add(1) != 1 {
					t.Error("progress calls overlap")
				}
				defer running.Add(-1)
				calls++
				if total != c.total {
					t.Errorf("call %d: total %d, want %d", calls, total, c.total)
				}
				if done <= last || done > total {
					t.Errorf("call %d: done %d after %d, total %d", calls, done, last, total)
				}
				last = done
			}})
			if err != nil {
				t.Fatal(err)
			}
			if calls < 2 || last != c.total {
				t.Errorf("%d calls, last done %d; want several, reaching %d", calls, last, c.total)
			}
		})
	}
}

// TestRebuildProgressNeverGoesBack reports progress from many goroutines
// at once, as a rebuild's partitions do: each call must see more done
// than the one before.
func TestRebuildProgressNeverGoesBack(t *testing.T) {
	const goroutines, reports = 8, 200
	var last int64
	r := &rebuild{total: goroutines * reports, fn: func(done, _ int64) {
		if done <= last {
			t.Errorf("progress %d after %d", done, last)
		}
		last = done
	}}
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range reports {
				r.progress(1)
			}
		})
	}
	wg.Wait()
	if last != r.total {
		t.Fatalf("progress ended at %d, want %d", last, r.total)
	}
}

// TestRebuildStopsWhenCancelled cancels a rebuild after the first batch
// of its big partition: it stops there with the context's error, and a
// second rebuild into the same store completes it to the state and the
// replay info of a one-shot rebuild.
func TestRebuildStopsWhenCancelled(t *testing.T) {
	ll := newLopsidedLog(t)
	whole, want := rebuilt(t, ll.log, RebuildOptions{})
	if want.LastEventTime != rfc3339(ll.latest) {
		t.Fatalf("one-shot last event time %s, want %s", want.LastEventTime, rfc3339(ll.latest))
	}
	s := newStore(t)
	ctx, cancel := context.WithCancel(dlContext(t))
	defer cancel()
	_, err := Rebuild(ctx, ll.log, s, RebuildOptions{Progress: func(done, _ int64) {
		if done >= rebuildBatch { // only a batch of the big partition gets here
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled rebuild returned %v, want %v", err, context.Canceled)
	}
	if off, err := s.Applied(ll.big); err != nil || off != rebuildBatch {
		t.Fatalf("big partition applied to %d (err %v), want %d: one batch", off, err, rebuildBatch)
	}
	if info, err := s.ReplayInfo(); err != nil || info != nil {
		t.Fatalf("cancelled rebuild recorded replay info %+v (err %v)", info, err)
	}
	got, err := Rebuild(dlContext(t), ll.log, s, RebuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Applied, want.Applied) || got.LastEventTime != want.LastEventTime {
		t.Errorf("resumed: applied %v, last event %s; one shot: %v, %s", got.Applied, got.LastEventTime, want.Applied, want.LastEventTime)
	}
	if d := digestOf(t, s); d != digestOf(t, whole) {
		t.Fatalf("resumed digest %s, one-shot %s", d, digestOf(t, whole))
	}
}

// TestRebuildRejectsBadBounds checks that a rebuild refuses bounds it
// cannot meet and leaves the store as it was.
func TestRebuildRejectsBadBounds(t *testing.T) {
	l := dlOpenLog(t)
	writeLog(t, l)
	s, info := rebuilt(t, l, RebuildOptions{})
	before := digestOf(t, s)
	ends := info.Applied
	below := slices.Clone(ends)
	p := slices.IndexFunc(below, func(end int64) bool { return end > 0 })
	below[p]--
	for _, c := range []struct {
		name string
		opts RebuildOptions
		want string
	}{
		{"bound below applied", RebuildOptions{Until: below}, "past the bound"},
		{"too few bounds", RebuildOptions{Until: ends[1:]}, "bounds for"},
		{"too few time bounds", RebuildOptions{PartitionAsOf: make([]int64, dlPartitions-1)}, "time bounds for"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Rebuild(dlContext(t), l, s, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
			if d := digestOf(t, s); d != before {
				t.Fatalf("digest %s after a refused rebuild, %s before", d, before)
			}
			if got, err := s.ReplayInfo(); err != nil || got.Built != info.Built {
				t.Fatalf("replay info %+v (err %v) after a refused rebuild, %+v before", got, err, info)
			}
		})
	}
}

// TestPartsNameTheDifferingQueue compares the parts of a rebuilt
// projection with copies changed in one queue: only that queue differs.
func TestPartsNameTheDifferingQueue(t *testing.T) {
	l := dlOpenLog(t)
	sc := newScript(dlStart(t, l))
	sc.round(0)
	live := sc.round(1)
	want := partsOf(t, rebuiltStore(t, l))
	if diff := CompareParts(live.parts, want); len(diff) != 0 {
		t.Fatalf("rebuilt parts differ from live: %+v", diff)
	}
	var keys int
	for _, p := range want {
		keys += p.Keys
		if p.Digest == "" || p.Keys == 0 {
			t.Errorf("part %+v is empty", p)
		}
	}
	if n := digestedKeys(t, rebuiltStore(t, l)); keys != n {
		t.Errorf("parts hold %d keys, the projection %d", keys, n)
	}

	t.Run("changed message", func(t *testing.T) {
		s := rebuiltStore(t, l)
		k, v := firstKey(t, s, dataPrefix("other", "b"))
		if err := s.db.Set(k, append(v, '!'), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		diff := CompareParts(want, partsOf(t, s))
		if len(diff) != 1 {
			t.Fatalf("%d differences, want 1: %+v", len(diff), diff)
		}
		d := diff[0]
		if d.Project != "other" || d.Queue != "b" || d.Name != `queue "b" of project "other"` {
			t.Errorf("difference names %q (project %q, queue %q)", d.Name, d.Project, d.Queue)
		}
		if d.Want.Digest == d.Got.Digest || d.Want.Keys != d.Got.Keys || d.Got.Name != d.Name {
			t.Errorf("difference %+v, want the same keys with other digests", d)
		}
	})
	t.Run("missing queue", func(t *testing.T) {
		s := rebuiltStore(t, l)
		dropQueue(t, s, dlProject, "c")
		for _, c := range []struct {
			name       string
			want, got  []Part
			missingGot bool
		}{
			{"on the right", want, partsOf(t, s), true},
			{"on the left", partsOf(t, s), want, false},
		} {
			diff := CompareParts(c.want, c.got)
			if len(diff) != 1 {
				t.Fatalf("%s: %d differences, want 1: %+v", c.name, len(diff), diff)
			}
			d := diff[0]
			present, missing := d.Want, d.Got
			if !c.missingGot {
				present, missing = d.Got, d.Want
			}
			if d.Project != dlProject || d.Queue != "c" || present.Keys == 0 || missing.Digest != "" || missing.Keys != 0 {
				t.Errorf("%s: difference %+v, want queue c present on one side only", c.name, d)
			}
		}
	})
}

// rebuiltStore rebuilds the whole of l into a new store.
func rebuiltStore(t *testing.T, l hlog.Log) *Store {
	t.Helper()
	s, _ := rebuilt(t, l, RebuildOptions{})
	return s
}

// firstKey returns a copy of the first key with prefix and its value.
func firstKey(t *testing.T, s *Store, prefix []byte) (k, v []byte) {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if !it.First() {
		t.Fatalf("no key with prefix %q", prefix)
	}
	return slices.Clone(it.Key()), slices.Clone(it.Value())
}

func digestedKeys(t *testing.T, s *Store) int {
	t.Helper()
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if digested(it.Key()) {
			n++
		}
	}
	return n
}

// dropQueue deletes every key of the queue's part.
func dropQueue(t *testing.T, s *Store, project, queue string) {
	t.Helper()
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := s.db.NewBatch()
	for ok := it.First(); ok; ok = it.Next() {
		if digested(it.Key()) {
			if p := partOf(it.Key()); p.Project == project && p.Queue == queue {
				b.Delete(slices.Clone(it.Key()), nil)
			}
		}
	}
	if err := errors.Join(it.Close(), b.Commit(pebble.NoSync)); err != nil {
		t.Fatal(err)
	}
}

// TestOpenReadOnly serves a rebuilt projection read-only: it holds the
// rebuilt state and applied offsets, and its log refuses appends.
func TestOpenReadOnly(t *testing.T) {
	l := dlOpenLog(t)
	writeLog(t, l)
	dir := t.TempDir()
	s, err := Open(dir, quietSlog)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Rebuild(dlContext(t), l, s, RebuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantDigest := digestOf(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for range 2 { // opening read-only changes nothing, so it can be done again
		r, info, err := OpenReadOnly(dir, quietSlog)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(info.Applied, want.Applied) || info.Built != want.Built || info.LastEventTime != want.LastEventTime {
			t.Errorf("replay info %+v, rebuild returned %+v", info, want)
		}
		for p := range dlPartitions {
			if got := r.Projector.Applied(int32(p)); got != info.Applied[p] {
				t.Errorf("partition %d: projector applied %d, replay info %d", p, got, info.Applied[p])
			}
		}
		if d := digestOf(t, r.Store); d != wantDigest {
			t.Errorf("read-only digest %s, rebuilt %s", d, wantDigest)
		}
		rec, err := (&hlog.Event{Type: hlog.QueueCreated, Project: "p", Queue: "q"}).Record()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Log.Append(context.Background(), rec); !errors.Is(err, hlog.ErrReadOnly) {
			t.Errorf("append returned %v, want %v", err, hlog.ErrReadOnly)
		}
		if err := r.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenReadOnlyRefuses checks that only a projection a rebuild wrote
// opens read-only.
func TestOpenReadOnlyRefuses(t *testing.T) {
	live := t.TempDir()
	s, err := Open(live, quietSlog)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, dir, want string }{
		{"a live projection", live, "not written by"},
		{"an empty directory", t.TempDir(), "holds no projection"},
		{"no directory", t.TempDir() + "/missing", "holds no projection"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, info, err := OpenReadOnly(c.dir, quietSlog)
			if err == nil || !strings.Contains(err.Error(), c.want) || r != nil || info != nil {
				t.Fatalf("OpenReadOnly: %v, %v, error %v; want an error saying %q", r, info, err, c.want)
			}
		})
	}
}

package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// opener opens a fresh, empty log with the given partition count for one
// test, and returns a function that reopens the same log (same directory,
// same cluster and topic) after the first one is closed. The opener
// registers cleanup for what it creates besides the logs; the suite closes
// the logs.
type opener func(t *testing.T, partitions int32) (Log, func() Log)

// waitFor bounds every wait in the suite: long enough for a slow machine
// under -race, short enough that a hang fails the test instead of the run.
const waitFor = 20 * time.Second

// runLogContract checks the contract documented on Log and Cursor. Every
// backend runs it.
func runLogContract(t *testing.T, open opener) {
	t.Run("Placement", func(t *testing.T) { testPlacement(t, open) })
	t.Run("DenseOffsets", func(t *testing.T) { testDenseOffsets(t, open) })
	t.Run("ReadBackExact", func(t *testing.T) { testReadBackExact(t, open) })
	t.Run("ConcurrentAppends", func(t *testing.T) { testConcurrentAppends(t, open) })
	t.Run("NextBlocksUntilAppend", func(t *testing.T) { testNextBlocks(t, open) })
	t.Run("NextHonoursContext", func(t *testing.T) { testNextContext(t, open) })
	t.Run("CursorAtMiddle", func(t *testing.T) { testCursorAtMiddle(t, open) })
	t.Run("End", func(t *testing.T) { testEnd(t, open) })
	t.Run("BadPartition", func(t *testing.T) { testBadPartition(t, open) })
	t.Run("Reopen", func(t *testing.T) { testReopen(t, open) })
	t.Run("AppendAfterClose", func(t *testing.T) { testAppendAfterClose(t, open) })
	t.Run("AsyncAppendsKeepOrder", func(t *testing.T) { testAsyncOrder(t, open) })
	t.Run("AsyncAppendsAcrossClose", func(t *testing.T) { testAsyncAcrossClose(t, open) })
}

// harness holds the log under test and closes it exactly once.
type harness struct {
	t      *testing.T
	l      Log
	reopen func() Log
	closed bool
}

func newHarness(t *testing.T, open opener, partitions int32) *harness {
	t.Helper()
	l, reopen := open(t, partitions)
	h := &harness{t: t, l: l, reopen: reopen}
	t.Cleanup(func() {
		if !h.closed {
			h.l.Close()
		}
	})
	return h
}

func (h *harness) close() {
	h.t.Helper()
	h.closed = true
	if err := h.l.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
}

// restart closes the log and reopens it.
func (h *harness) restart() {
	h.t.Helper()
	h.close()
	h.l = h.reopen()
	h.closed = false
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

func appendOK(t *testing.T, l Log, key, value string, headers ...Header) Record {
	t.Helper()
	rec := Record{Key: []byte(key), Value: []byte(value), Headers: headers}
	if err := l.Append(ctxFor(t), &rec); err != nil {
		t.Fatalf("Append(%q): %v", key, err)
	}
	return rec
}

func openCursor(t *testing.T, l Log, p int32, offset int64) Cursor {
	t.Helper()
	c, err := l.OpenCursor(p, offset)
	if err != nil {
		t.Fatalf("OpenCursor(%d, %d): %v", p, offset, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readN reads exactly n records from c, failing on error or after waitFor.
func readN(t *testing.T, c Cursor, n int) []Record {
	t.Helper()
	ctx := ctxFor(t)
	var out []Record
	for len(out) < n {
		recs, err := c.Next(ctx, n-len(out))
		if err != nil {
			t.Fatalf("Next after %d of %d records: %v", len(out), n, err)
		}
		if len(recs) == 0 || len(recs) > n-len(out) {
			t.Fatalf("Next(max=%d) returned %d records", n-len(out), len(recs))
		}
		out = append(out, recs...)
	}
	return out
}

// keyIn returns a key that PartitionFor places on partition p.
func keyIn(t *testing.T, p, partitions int32) string {
	t.Helper()
	for i := range 10000 {
		k := fmt.Sprintf("project/queue-%d", i)
		if PartitionFor([]byte(k), partitions) == p {
			return k
		}
	}
	t.Fatalf("no key for partition %d of %d", p, partitions)
	return ""
}

func sameRecord(t *testing.T, got, want Record) {
	t.Helper()
	if got.Partition != want.Partition || got.Offset != want.Offset {
		t.Errorf("record at %d/%d, want %d/%d", got.Partition, got.Offset, want.Partition, want.Offset)
	}
	if !bytes.Equal(got.Key, want.Key) {
		t.Errorf("%d/%d: key %q, want %q", want.Partition, want.Offset, got.Key, want.Key)
	}
	if !bytes.Equal(got.Value, want.Value) {
		t.Errorf("%d/%d: value %q, want %q", want.Partition, want.Offset, trunc(got.Value), trunc(want.Value))
	}
	if !slices.EqualFunc(got.Headers, want.Headers, func(a, b Header) bool {
		return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
	}) {
		t.Errorf("%d/%d: headers %q, want %q", want.Partition, want.Offset, got.Headers, want.Headers)
	}
}

func trunc(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func testPlacement(t *testing.T, open opener) {
	const parts = 5
	h := newHarness(t, open, parts)
	if got := h.l.Partitions(); got != parts {
		t.Fatalf("Partitions() = %d, want %d", got, parts)
	}
	perPart := make([][]Record, parts)
	for i := range 100 {
		key := fmt.Sprintf("p%d/q%d", i%7, i)
		rec := appendOK(t, h.l, key, fmt.Sprint(i))
		if want := PartitionFor([]byte(key), parts); rec.Partition != want {
			t.Fatalf("key %q went to partition %d, PartitionFor says %d", key, rec.Partition, want)
		}
		perPart[rec.Partition] = append(perPart[rec.Partition], rec)
	}
	// The records are where Append said, and nowhere else.
	for p, want := range perPart {
		if len(want) == 0 {
			continue
		}
		got := readN(t, openCursor(t, h.l, int32(p), 0), len(want))
		for i := range want {
			sameRecord(t, got[i], want[i])
		}
		if end, err := h.l.End(ctxFor(t), int32(p)); err != nil || end != int64(len(want)) {
			t.Errorf("End(%d) = %d, %v; want %d", p, end, err, len(want))
		}
	}
}

func testDenseOffsets(t *testing.T, open opener) {
	const parts = 3
	h := newHarness(t, open, parts)
	next := make([]int64, parts)
	for i := range 60 {
		rec := appendOK(t, h.l, fmt.Sprintf("proj/q%d", i%10), "v")
		if rec.Offset != next[rec.Partition] {
			t.Fatalf("append %d: offset %d in partition %d, want %d", i, rec.Offset, rec.Partition, next[rec.Partition])
		}
		next[rec.Partition]++
	}
	for p := range int32(parts) {
		if next[p] == 0 {
			continue
		}
		for i, r := range readN(t, openCursor(t, h.l, p, 0), int(next[p])) {
			if r.Offset != int64(i) || r.Partition != p {
				t.Fatalf("partition %d: record %d read at %d/%d", p, i, r.Partition, r.Offset)
			}
		}
	}
}

func testReadBackExact(t *testing.T, open opener) {
	h := newHarness(t, open, 2)
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	binary := []byte{0, 1, 2, 0xff, 0xfe, 0, '\n', 0x80}
	key := "tenant/queue"
	inputs := []Record{
		{Key: []byte(key), Value: []byte("plain")},
		{Key: []byte(key), Value: binary, Headers: []Header{{Key: "bin", Value: binary}}},
		{Key: []byte(key), Value: big, Headers: []Header{
			{Key: HeaderType, Value: []byte("messages.posted")},
			{Key: HeaderTraceparent, Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
			{Key: "dup", Value: []byte("first")},
			{Key: "dup", Value: []byte("second")},
			{Key: "empty", Value: nil},
		}},
		{Key: []byte(key), Value: []byte{}},
		{Key: []byte(key), Value: []byte("ünïcödé ✓")},
	}
	var want []Record
	for i, in := range inputs {
		rec := in
		if err := h.l.Append(ctxFor(t), &rec); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		want = append(want, rec)
	}
	p := PartitionFor([]byte(key), 2)
	got := readN(t, openCursor(t, h.l, p, 0), len(want))
	for i := range want {
		if want[i].Offset != int64(i) {
			t.Fatalf("append %d got offset %d", i, want[i].Offset)
		}
		sameRecord(t, got[i], want[i])
	}
}

func testConcurrentAppends(t *testing.T, open opener) {
	const (
		parts      = 4
		goroutines = 32
		each       = 50
	)
	h := newHarness(t, open, parts)
	ctx := ctxFor(t)
	type appended struct {
		g, i int
		rec  Record
	}
	results := make([][]appended, goroutines)
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			// Each goroutine writes one key, so its records must land in
			// one partition in the order it appended them.
			key := fmt.Sprintf("proj/queue-%d", g)
			for i := range each {
				rec := Record{Key: []byte(key), Value: fmt.Appendf(nil, "%d/%d", g, i)}
				if err := h.l.Append(ctx, &rec); err != nil {
					errs <- fmt.Errorf("goroutine %d append %d: %w", g, i, err)
					return
				}
				results[g] = append(results[g], appended{g, i, rec})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	byPos := make([]map[int64]Record, parts)
	for p := range byPos {
		byPos[p] = make(map[int64]Record)
	}
	for g, rs := range results {
		for i, a := range rs {
			if prev, dup := byPos[a.rec.Partition][a.rec.Offset]; dup {
				t.Fatalf("offset %d/%d acknowledged twice: %q and %q", a.rec.Partition, a.rec.Offset, prev.Value, a.rec.Value)
			}
			byPos[a.rec.Partition][a.rec.Offset] = a.rec
			if i > 0 && a.rec.Offset <= rs[i-1].rec.Offset {
				t.Fatalf("goroutine %d: append %d at offset %d, not after %d", g, i, a.rec.Offset, rs[i-1].rec.Offset)
			}
		}
	}
	total := 0
	for p := range int32(parts) {
		n := len(byPos[p])
		total += n
		for off := range int64(n) {
			if _, ok := byPos[p][off]; !ok {
				t.Fatalf("partition %d: %d records but offset %d never acknowledged", p, n, off)
			}
		}
		if end, err := h.l.End(ctx, p); err != nil || end != int64(n) {
			t.Fatalf("End(%d) = %d, %v; want %d", p, end, err, n)
		}
		if n == 0 {
			continue
		}
		for _, r := range readN(t, openCursor(t, h.l, p, 0), n) {
			sameRecord(t, r, byPos[p][r.Offset])
		}
	}
	if total != goroutines*each {
		t.Fatalf("%d records acknowledged, want %d", total, goroutines*each)
	}
}

type nextResult struct {
	recs []Record
	err  error
}

func nextAsync(ctx context.Context, c Cursor, max int) <-chan nextResult {
	ch := make(chan nextResult, 1)
	go func() {
		recs, err := c.Next(ctx, max)
		ch <- nextResult{recs, err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan nextResult) nextResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitFor):
		t.Fatal("Next did not return")
		return nextResult{}
	}
}

func testNextBlocks(t *testing.T, open opener) {
	const parts = 2
	h := newHarness(t, open, parts)
	key := keyIn(t, 1, parts)
	first := appendOK(t, h.l, key, "first")
	c := openCursor(t, h.l, 1, 1) // at the end
	ch := nextAsync(ctxFor(t), c, 10)
	// Absence can only be checked for a while; this is not a wait for a
	// state, the append below is what Next must wait for.
	select {
	case r := <-ch:
		t.Fatalf("Next returned %d records, %v before any append", len(r.recs), r.err)
	case <-time.After(100 * time.Millisecond):
	}
	// An append to another partition must not wake this one with records.
	appendOK(t, h.l, keyIn(t, 0, parts), "elsewhere")
	second := appendOK(t, h.l, key, "second")
	r := await(t, ch)
	if r.err != nil {
		t.Fatalf("Next: %v", r.err)
	}
	if len(r.recs) != 1 {
		t.Fatalf("Next returned %d records, want 1", len(r.recs))
	}
	if first.Offset != 0 || second.Offset != 1 {
		t.Fatalf("offsets %d, %d; want 0, 1", first.Offset, second.Offset)
	}
	sameRecord(t, r.recs[0], second)
}

func testNextContext(t *testing.T, open opener) {
	const parts = 1
	h := newHarness(t, open, parts)
	c := openCursor(t, h.l, 0, 0)

	ctx, cancel := context.WithCancel(context.Background())
	ch := nextAsync(ctx, c, 10)
	cancel()
	if r := await(t, ch); !errors.Is(r.err, context.Canceled) || len(r.recs) != 0 {
		t.Fatalf("Next after cancel = %d records, %v; want context.Canceled", len(r.recs), r.err)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	if r := await(t, nextAsync(dctx, c, 10)); !errors.Is(r.err, context.DeadlineExceeded) || len(r.recs) != 0 {
		t.Fatalf("Next past deadline = %d records, %v; want context.DeadlineExceeded", len(r.recs), r.err)
	}

	// A cancelled Next loses nothing: the cursor is still at offset 0.
	want := []Record{appendOK(t, h.l, "a/b", "one"), appendOK(t, h.l, "a/b", "two"), appendOK(t, h.l, "a/b", "three")}
	got := readN(t, c, 1)
	got = append(got, readN(t, c, 2)...)
	for i := range want {
		sameRecord(t, got[i], want[i])
	}
}

func testCursorAtMiddle(t *testing.T, open opener) {
	h := newHarness(t, open, 1)
	var want []Record
	for i := range 10 {
		want = append(want, appendOK(t, h.l, "proj/q", fmt.Sprint(i)))
	}
	got := readN(t, openCursor(t, h.l, 0, 5), 5)
	for i := range got {
		sameRecord(t, got[i], want[5+i])
	}
	// max bounds every call.
	c := openCursor(t, h.l, 0, 2)
	recs, err := c.Next(ctxFor(t), 3)
	if err != nil || len(recs) == 0 || len(recs) > 3 || recs[0].Offset != 2 {
		t.Fatalf("Next(max=3) from 2 = %d records (first %v), %v", len(recs), recs, err)
	}
}

func testEnd(t *testing.T, open opener) {
	const parts = 3
	h := newHarness(t, open, parts)
	ctx := ctxFor(t)
	for p := range int32(parts) {
		if end, err := h.l.End(ctx, p); err != nil || end != 0 {
			t.Fatalf("End(%d) of an empty log = %d, %v", p, end, err)
		}
	}
	count := make([]int64, parts)
	for i := range 20 {
		rec := appendOK(t, h.l, fmt.Sprintf("x/%d", i), "v")
		count[rec.Partition]++
		// Durable at ack: the end already covers the record.
		end, err := h.l.End(ctx, rec.Partition)
		if err != nil || end != rec.Offset+1 {
			t.Fatalf("End(%d) after append at %d = %d, %v; want %d", rec.Partition, rec.Offset, end, err, rec.Offset+1)
		}
	}
	for p := range int32(parts) {
		if end, err := h.l.End(ctx, p); err != nil || end != count[p] {
			t.Fatalf("End(%d) = %d, %v; want %d", p, end, err, count[p])
		}
	}
	// Ends answers for every partition at once, the same as End.
	ends, err := h.l.Ends(ctx)
	if err != nil || len(ends) != parts {
		t.Fatalf("Ends = %v, %v", ends, err)
	}
	for p := range parts {
		if ends[p] != count[p] {
			t.Fatalf("Ends()[%d] = %d, want %d", p, ends[p], count[p])
		}
	}
}

func testBadPartition(t *testing.T, open opener) {
	h := newHarness(t, open, 2)
	for _, p := range []int32{-1, 2} {
		if _, err := h.l.End(ctxFor(t), p); err == nil {
			t.Errorf("End(%d) of 2 partitions succeeded", p)
		}
		if c, err := h.l.OpenCursor(p, 0); err == nil {
			c.Close()
			t.Errorf("OpenCursor(%d) of 2 partitions succeeded", p)
		}
	}
	if c, err := h.l.OpenCursor(0, -1); err == nil {
		c.Close()
		t.Errorf("OpenCursor at offset -1 succeeded")
	}
}

func testReopen(t *testing.T, open opener) {
	const parts = 2
	h := newHarness(t, open, parts)
	var want [parts][]Record
	for i := range 30 {
		rec := appendOK(t, h.l, fmt.Sprintf("proj/q%d", i%4), fmt.Sprint(i), Header{Key: "i", Value: fmt.Append(nil, i)})
		want[rec.Partition] = append(want[rec.Partition], rec)
	}
	h.restart()
	if got := h.l.Partitions(); got != parts {
		t.Fatalf("Partitions() after reopen = %d, want %d", got, parts)
	}
	for p := range int32(parts) {
		if end, err := h.l.End(ctxFor(t), p); err != nil || end != int64(len(want[p])) {
			t.Fatalf("End(%d) after reopen = %d, %v; want %d", p, end, err, len(want[p]))
		}
	}
	for i := range 10 {
		rec := appendOK(t, h.l, fmt.Sprintf("proj/q%d", i%4), fmt.Sprint("after-", i))
		if rec.Offset != int64(len(want[rec.Partition])) {
			t.Fatalf("append after reopen at %d/%d, want offset %d", rec.Partition, rec.Offset, len(want[rec.Partition]))
		}
		want[rec.Partition] = append(want[rec.Partition], rec)
	}
	for p := range int32(parts) {
		got := readN(t, openCursor(t, h.l, p, 0), len(want[p]))
		for i := range got {
			sameRecord(t, got[i], want[p][i])
		}
	}
}

func testAppendAfterClose(t *testing.T, open opener) {
	h := newHarness(t, open, 1)
	appendOK(t, h.l, "a/b", "before")
	h.close()
	// Run in a goroutine so a hang fails the test instead of the run.
	done := make(chan error, 1)
	go func() {
		rec := Record{Key: []byte("a/b"), Value: []byte("after")}
		done <- h.l.Append(context.Background(), &rec)
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Append after Close = %v, want ErrClosed", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Append after Close hangs")
	}
	// A cursor on a closed log fails when opened or when read.
	c, err := h.l.OpenCursor(0, 0)
	if err == nil {
		_, err = c.Next(ctxFor(t), 1)
		c.Close()
	}
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("reading a closed log = %v, want ErrClosed", err)
	}
}

// testAsyncOrder: several goroutines each start many appends without
// waiting; each goroutine's records land in its partition in the order it
// started them, every done is called once, and the log holds exactly what
// was acknowledged.
func testAsyncOrder(t *testing.T, open opener) {
	const (
		parts      = 4
		goroutines = 8
		each       = 200
	)
	h := newHarness(t, open, parts)
	ctx := ctxFor(t)
	recs := make([][]Record, goroutines)
	calls := make([][]atomic.Int32, goroutines)
	errs := make(chan error, goroutines*each)
	var pending sync.WaitGroup
	var starters sync.WaitGroup
	for g := range goroutines {
		recs[g] = make([]Record, each)
		calls[g] = make([]atomic.Int32, each)
		starters.Go(func() {
			key := fmt.Sprintf("proj/async-%d", g)
			for i := range each {
				recs[g][i] = Record{Key: []byte(key), Value: fmt.Appendf(nil, "%d/%d", g, i)}
				pending.Add(1)
				h.l.AppendAsync(ctx, &recs[g][i], func(err error) {
					if calls[g][i].Add(1) == 1 {
						pending.Done()
					}
					if err != nil {
						errs <- fmt.Errorf("goroutine %d append %d: %w", g, i, err)
					}
				})
			}
		})
	}
	starters.Wait()
	waitGroup(t, &pending, "async appends")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	perPart := make([]int, parts)
	for g := range goroutines {
		for i := range each {
			if n := calls[g][i].Load(); n != 1 {
				t.Fatalf("goroutine %d append %d: done called %d times", g, i, n)
			}
			r := recs[g][i]
			if i > 0 && (r.Partition != recs[g][i-1].Partition || r.Offset <= recs[g][i-1].Offset) {
				t.Fatalf("goroutine %d: append %d at %d/%d, not after %d/%d", g, i, r.Partition, r.Offset, recs[g][i-1].Partition, recs[g][i-1].Offset)
			}
		}
		perPart[recs[g][0].Partition] += each
	}
	for p := range int32(parts) {
		want := map[int64]Record{}
		for g := range goroutines {
			for _, r := range recs[g] {
				if r.Partition == p {
					want[r.Offset] = r
				}
			}
		}
		got := readN(t, openCursor(t, h.l, p, 0), perPart[p])
		for _, r := range got {
			sameRecord(t, r, want[r.Offset])
		}
	}
}

// testAsyncAcrossClose: appends started while the log closes each get
// exactly one answer, and every one answered with success is in the log
// after a reopen.
func testAsyncAcrossClose(t *testing.T, open opener) {
	h := newHarness(t, open, 2)
	ctx := ctxFor(t)
	const n = 20000 // more than the embedded log queues
	recs := make([]Record, n)
	results := make([]chan error, n)
	for i := range n {
		recs[i] = Record{Key: []byte("a/b"), Value: fmt.Appendf(nil, "%d", i)}
		results[i] = make(chan error, 2)
	}
	started := make(chan struct{})
	go func() {
		for i := range n {
			if i == n/10 {
				close(started)
			}
			h.l.AppendAsync(ctx, &recs[i], func(err error) { results[i] <- err })
		}
	}()
	<-started
	h.close()
	ok := 0
	for i := range n {
		select {
		case err := <-results[i]:
			if err == nil {
				ok++
			} else if !errors.Is(err, ErrClosed) {
				t.Fatalf("append %d across Close: %v", i, err)
			}
		case <-time.After(waitFor):
			t.Fatalf("append %d across Close never answered", i)
		}
		if len(results[i]) != 0 {
			t.Fatalf("append %d answered twice", i)
		}
	}
	l := h.reopen()
	defer l.Close()
	end, err := l.End(ctx, recs[0].Partition)
	if err != nil {
		t.Fatal(err)
	}
	if end < int64(ok) {
		t.Fatalf("%d appends acknowledged, the log holds %d", ok, end)
	}
	t.Logf("%d of %d appends acknowledged before Close", ok, n)
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatalf("%s never finished", what)
	}
}

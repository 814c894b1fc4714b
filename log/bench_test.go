package log_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hlog "github.com/heraldmq/herald/log"
)

// benchBody is a 256-byte compact JSON message body (a JSON string).
var benchBody = []byte(`"` + string(bytes.Repeat([]byte("x"), 254)) + `"`)

var benchNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func postedPayload(n int) *hlog.MessagesPostedV1 {
	pl := &hlog.MessagesPostedV1{Messages: make([]hlog.PostedMessage, n)}
	for i := range pl.Messages {
		pl.Messages[i] = hlog.PostedMessage{TTL: 3600, Body: benchBody}
	}
	return pl
}

// postedEvent is a messages.posted event as the API builds it: client id,
// request id and trace context set.
func postedEvent(tb testing.TB, queue string, n int) *hlog.Event {
	tb.Helper()
	ev, err := hlog.NewEvent(hlog.MessagesPosted, "bench-project", queue, benchNow, postedPayload(n))
	if err != nil {
		tb.Fatal(err)
	}
	setCaller(ev)
	return ev
}

func setCaller(ev *hlog.Event) {
	ev.ClientID = "0123456789abcdef0123456789abcdef"
	ev.RequestID = "req-0123456789abcdef"
	ev.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
}

// BenchmarkEventEncode measures what the API does per write before the
// append: encode the payload and the envelope into a record.
func BenchmarkEventEncode(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("event=messages.posted/messages=%d", n), func(b *testing.B) {
			pl := postedPayload(n)
			b.ReportAllocs()
			var size int
			for b.Loop() {
				ev, err := hlog.NewEvent(hlog.MessagesPosted, "bench-project", "q", benchNow, pl)
				if err != nil {
					b.Fatal(err)
				}
				setCaller(ev)
				rec, err := ev.Record()
				if err != nil {
					b.Fatal(err)
				}
				size = len(rec.Value)
			}
			b.SetBytes(int64(size))
		})
	}
}

// BenchmarkEventDecode measures what the projector does per record before
// apply: decode the envelope, then the payload.
func BenchmarkEventDecode(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("event=messages.posted/messages=%d", n), func(b *testing.B) {
			rec, err := postedEvent(b, "q", n).Record()
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(rec.Value)))
			b.ReportAllocs()
			for b.Loop() {
				ev, err := hlog.DecodeEvent(rec.Value)
				if err != nil {
					b.Fatal(err)
				}
				var pl hlog.MessagesPostedV1
				if err := ev.DecodePayload(&pl); err != nil {
					b.Fatal(err)
				}
				if len(pl.Messages) != n {
					b.Fatalf("decoded %d messages, want %d", len(pl.Messages), n)
				}
			}
		})
	}
}

func openBenchLog(b *testing.B, partitions int32) hlog.Log {
	b.Helper()
	l, err := hlog.OpenPebble(hlog.PebbleOptions{Dir: b.TempDir(), Partitions: partitions,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// appendConcurrently appends n copies of the records made by mk with the
// given number of writer goroutines, and returns the first error.
func appendConcurrently(l hlog.Log, writers, n int, mk func(w int) hlog.Record) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Pointer[error]
	)
	ctx := context.Background()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tmpl := mk(w)
			for next.Add(1) <= int64(n) && first.Load() == nil {
				rec := tmpl // Append sets Partition and Offset on its record
				if err := l.Append(ctx, &rec); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if errp := first.Load(); errp != nil {
		return *errp
	}
	return nil
}

// BenchmarkPebbleAppend measures durable appends (one fsync per group
// commit) of a one-message messages.posted record (~350 bytes) from
// concurrent writers, each on its own queue, over 16 partitions. One op is
// one append; appends/s is the aggregate throughput.
func BenchmarkPebbleAppend(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			l := openBenchLog(b, 16)
			defer l.Close()
			recs := make([]hlog.Record, writers)
			for w := range recs {
				rec, err := postedEvent(b, fmt.Sprintf("q%d", w), 1).Record()
				if err != nil {
					b.Fatal(err)
				}
				recs[w] = *rec
			}
			b.ReportAllocs()
			b.ResetTimer()
			if err := appendConcurrently(l, writers, b.N, func(w int) hlog.Record { return recs[w] }); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

// BenchmarkPebbleCursorRead measures reading one partition in order with
// Cursor.Next(max) over a pre-filled partition of 8192 one-message
// messages.posted records. One op is one record read; when the cursor
// reaches the end it starts again from offset 0.
//
// after=append reads with the log that appended the records (a tailing
// projector: the log may serve them from memory); after=reopen reads
// after closing and reopening the log (catch-up after a restart or a
// projection rebuild: the records come from Pebble).
func BenchmarkPebbleCursorRead(b *testing.B) {
	const fill = 8192
	dir := b.TempDir()
	open := func() hlog.Log {
		l, err := hlog.OpenPebble(hlog.PebbleOptions{Dir: dir, Partitions: 1,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	l := open()
	defer func() { l.Close() }()
	rec, err := postedEvent(b, "q", 1).Record()
	if err != nil {
		b.Fatal(err)
	}
	if err := appendConcurrently(l, 64, fill, func(int) hlog.Record { return *rec }); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, after := range []string{"append", "reopen"} {
		if after == "reopen" {
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			l = open()
		}
		for _, max := range []int{1, 64, 512} {
			b.Run(fmt.Sprintf("after=%s/max=%d", after, max), func(b *testing.B) {
				b.ReportAllocs()
				c, err := l.OpenCursor(0, 0)
				if err != nil {
					b.Fatal(err)
				}
				var pos int64
				for read := 0; read < b.N; {
					if pos == fill {
						c.Close()
						if c, err = l.OpenCursor(0, 0); err != nil {
							b.Fatal(err)
						}
						pos = 0
					}
					recs, err := c.Next(ctx, min(max, b.N-read))
					if err != nil {
						b.Fatal(err)
					}
					read += len(recs)
					pos += int64(len(recs))
				}
				b.StopTimer()
				c.Close()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

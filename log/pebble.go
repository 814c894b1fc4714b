package log

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// Pebble log key layout (one Pebble database, dedicated to the log):
//
//	'r' | partition uint32 BE | offset uint64 BE  →  stored record
//
// A stored record is
//
//	crc32c(rest) uint32 BE | rest
//	rest = uvarint(#headers) { uvarint(len) key uvarint(len) value }
//	       uvarint(len) key | value
//
// There is no separate end-of-partition key: on open the end of each
// partition is found by seeking to its last record, so the log can never
// disagree with itself about where it ends.
const pebbleRecordTag = 'r'

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PebbleOptions configures the embedded log.
type PebbleOptions struct {
	Dir        string
	Partitions int32
	// MaxBatch bounds how many appends share one synced batch.
	MaxBatch int
	// Logger receives Pebble's own messages (slog.Default when nil).
	Logger *slog.Logger
}

// PebbleLogger adapts slog to Pebble's logger: Pebble's routine info lines
// go to debug level, its errors to error level.
func PebbleLogger(l *slog.Logger) pebble.Logger {
	if l == nil {
		l = slog.Default()
	}
	return pebbleLogger{l.With("component", "pebble")}
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}

// pebbleLog is the embedded log, a two-stage pipeline:
//
//   - the committer goroutine takes every append waiting at that moment,
//     assigns offsets and writes them as one Pebble batch to the WAL
//     without waiting for the fsync, then goes on with the next group;
//   - the syncer goroutine waits for each batch's fsync, in commit order,
//     then advances the durable ends, keeps the records in the partition's
//     tail cache, wakes readers and acknowledges the appends.
//
// Pebble groups the fsyncs of batches written meanwhile, so one fsync
// covers every group that arrived while the previous one was syncing.
// Readers only read below the durable ends, so nothing is visible before
// it is durable.
type pebbleLog struct {
	db    *pebble.DB
	parts int32
	max   int

	reqs     chan *appendReq
	syncs    chan *group
	sendMu   sync.RWMutex // held for reading while an append is queued
	stopping bool         // set by Close under sendMu
	closing  chan struct{}
	done     chan struct{}
	once     sync.Once
	closeErr error

	ends    []atomic.Int64  // durable end per partition
	mu      sync.Mutex      // guards waiters and tails
	waiters []chan struct{} // per partition, closed when its end advances
	tails   []tail
	broken  atomic.Pointer[error]
}

// group is one batch of appends on its way through the pipeline.
type group struct {
	b    *pebble.Batch
	reqs []*appendReq
	err  error // set when the batch could not be written
}

// tail holds the most recent durable records of a partition so that
// cursors following the end of the log read them from memory.
type tail struct {
	recs  []Record // recs[i] is at offset start+i
	start int64
	bytes int
}

// Bounds of each partition's tail cache.
const (
	tailMaxRecords = 8192
	tailMaxBytes   = 8 << 20
)

func (t *tail) add(r *Record) {
	if len(t.recs) == 0 {
		t.start = r.Offset
	}
	t.recs = append(t.recs, *r)
	t.bytes += len(r.Key) + len(r.Value)
	for len(t.recs) > tailMaxRecords || t.bytes > tailMaxBytes {
		t.bytes -= len(t.recs[0].Key) + len(t.recs[0].Value)
		t.recs[0] = Record{}
		t.recs = t.recs[1:]
		t.start++
	}
}

// get returns the records [from, upto) if the tail holds all of them.
func (t *tail) get(from, upto int64) ([]Record, bool) {
	if from < t.start || upto > t.start+int64(len(t.recs)) {
		return nil, false
	}
	return append([]Record(nil), t.recs[from-t.start:upto-t.start]...), true
}

type appendReq struct {
	rec  *Record
	done func(error)
}

// OpenPebble opens (or creates) the embedded log in opts.Dir.
func OpenPebble(opts PebbleOptions) (Log, error) {
	if opts.Partitions <= 0 {
		return nil, fmt.Errorf("log: partitions must be positive, got %d", opts.Partitions)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	db, err := pebble.Open(opts.Dir, &pebble.Options{
		Logger: PebbleLogger(opts.Logger),
		// Larger memtables mean fewer, larger flushes of the append-only
		// records and less compaction work per record.
		MemTableSize: 64 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", opts.Dir, err)
	}
	l := &pebbleLog{
		db:      db,
		parts:   opts.Partitions,
		max:     opts.MaxBatch,
		reqs:    make(chan *appendReq, opts.MaxBatch),
		syncs:   make(chan *group, 64),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		ends:    make([]atomic.Int64, opts.Partitions),
		waiters: make([]chan struct{}, opts.Partitions),
		tails:   make([]tail, opts.Partitions),
	}
	for p := range opts.Partitions {
		end, err := l.scanEnd(p)
		if err != nil {
			db.Close()
			return nil, err
		}
		l.ends[p].Store(end)
		l.waiters[p] = make(chan struct{})
	}
	synced := make(chan struct{})
	go l.syncLoop(synced)
	go l.commitLoop(synced)
	return l, nil
}

func recordKey(p int32, off int64) []byte {
	k := make([]byte, 13)
	k[0] = pebbleRecordTag
	binary.BigEndian.PutUint32(k[1:], uint32(p))
	binary.BigEndian.PutUint64(k[5:], uint64(off))
	return k
}

func (l *pebbleLog) scanEnd(p int32) (int64, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: recordKey(p, 0), UpperBound: recordKey(p+1, 0)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	return int64(binary.BigEndian.Uint64(it.Key()[5:])) + 1, nil
}

func (l *pebbleLog) Partitions() int32 { return l.parts }

func (l *pebbleLog) Append(ctx context.Context, rec *Record) error {
	ch := make(chan error, 1)
	l.AppendAsync(ctx, rec, func(err error) { ch <- err })
	// Once queued the append completes or fails with its group (or with
	// Close); waiting on ctx here would report failure for a record that
	// may become durable.
	return <-ch
}

func (l *pebbleLog) AppendAsync(ctx context.Context, rec *Record, done func(error)) {
	if errp := l.broken.Load(); errp != nil {
		done(*errp)
		return
	}
	// Close takes the write lock, so once it has, nothing more is queued
	// and everything queued is answered by the committer or by Close.
	l.sendMu.RLock()
	defer l.sendMu.RUnlock()
	if l.stopping {
		done(ErrClosed)
		return
	}
	req := &appendReq{rec: rec, done: done}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		done(ctx.Err())
	}
}

func (l *pebbleLog) commitLoop(synced <-chan struct{}) {
	defer func() {
		close(l.syncs)
		<-synced
		close(l.done)
	}()
	next := make([]int64, l.parts)
	for p := range l.parts {
		next[p] = l.ends[p].Load()
	}
	for {
		var reqs []*appendReq
		select {
		case r := <-l.reqs:
			reqs = append(make([]*appendReq, 0, 16), r)
		case <-l.closing:
			l.failPending()
			return
		}
	drain:
		for len(reqs) < l.max {
			select {
			case r := <-l.reqs:
				reqs = append(reqs, r)
			default:
				break drain
			}
		}
		l.syncs <- l.write(reqs, next)
	}
}

// write assigns offsets to reqs and writes them to the WAL as one batch,
// without waiting for the fsync.
func (l *pebbleLog) write(reqs []*appendReq, next []int64) *group {
	g := &group{reqs: reqs}
	if errp := l.broken.Load(); errp != nil {
		g.err = *errp
		return g
	}
	g.b = l.db.NewBatch()
	for _, r := range reqs {
		p := PartitionFor(r.rec.Key, l.parts)
		r.rec.Partition = p
		r.rec.Offset = next[p]
		next[p]++
		if err := g.b.Set(recordKey(p, r.rec.Offset), encodeStored(r.rec), nil); err != nil {
			g.err = err
			break
		}
	}
	if g.err == nil {
		g.err = l.db.ApplyNoSyncWait(g.b, pebble.Sync)
		if g.err == nil {
			return g
		}
	}
	g.b.Close()
	g.b = nil
	l.markBroken(g.err)
	return g
}

// syncLoop completes groups in commit order.
func (l *pebbleLog) syncLoop(synced chan<- struct{}) {
	defer close(synced)
	for g := range l.syncs {
		err := g.err
		if g.b != nil {
			err = g.b.SyncWait()
			g.b.Close()
		}
		if err == nil {
			err = l.brokenErr()
		}
		if err != nil {
			// A failed write or fsync leaves the WAL in an unknown state;
			// refuse all further appends rather than risk acknowledging
			// records that are not durable.
			l.markBroken(err)
			err = l.brokenErr()
			for _, r := range g.reqs {
				r.done(err)
			}
			continue
		}
		l.mu.Lock()
		for _, r := range g.reqs {
			p := r.rec.Partition
			l.tails[p].add(r.rec)
			if l.ends[p].Load() <= r.rec.Offset {
				l.ends[p].Store(r.rec.Offset + 1)
				close(l.waiters[p])
				l.waiters[p] = make(chan struct{})
			}
		}
		l.mu.Unlock()
		for _, r := range g.reqs {
			r.done(nil)
		}
	}
}

func (l *pebbleLog) markBroken(err error) {
	err = fmt.Errorf("log: append failed, log is read-only until restart: %w", err)
	l.broken.CompareAndSwap(nil, &err)
}

func (l *pebbleLog) brokenErr() error {
	if errp := l.broken.Load(); errp != nil {
		return *errp
	}
	return nil
}

func (l *pebbleLog) failPending() {
	for {
		select {
		case r := <-l.reqs:
			r.done(ErrClosed)
		default:
			return
		}
	}
}

func (l *pebbleLog) End(_ context.Context, p int32) (int64, error) {
	if p < 0 || p >= l.parts {
		return 0, fmt.Errorf("log: no partition %d", p)
	}
	return l.ends[p].Load(), nil
}

func (l *pebbleLog) Ends(_ context.Context) ([]int64, error) {
	ends := make([]int64, l.parts)
	for p := range ends {
		ends[p] = l.ends[p].Load()
	}
	return ends, nil
}

func (l *pebbleLog) wait(p int32) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiters[p]
}

func (l *pebbleLog) OpenCursor(p int32, offset int64) (Cursor, error) {
	if p < 0 || p >= l.parts {
		return nil, fmt.Errorf("log: no partition %d", p)
	}
	if offset < 0 {
		return nil, fmt.Errorf("log: negative offset %d", offset)
	}
	return &pebbleCursor{l: l, p: p, pos: offset}, nil
}

// Close stops the committer, fails appends not yet taken, and closes the
// database. Close is idempotent.
func (l *pebbleLog) Close() error {
	l.once.Do(func() {
		l.sendMu.Lock()
		l.stopping = true
		close(l.closing)
		l.sendMu.Unlock()
		<-l.done
		l.failPending()
		l.closeErr = l.db.Close()
	})
	return l.closeErr
}

type pebbleCursor struct {
	l      *pebbleLog
	p      int32
	pos    int64
	closed bool
}

func (c *pebbleCursor) Next(ctx context.Context, max int) ([]Record, error) {
	// Reading a closed Pebble database panics; callers close cursors
	// before the log, and this turns a late call into an error.
	select {
	case <-c.l.closing:
		return nil, ErrClosed
	default:
	}
	if c.closed {
		return nil, ErrClosed
	}
	if max <= 0 {
		max = 1
	}
	for {
		ch := c.l.wait(c.p)
		end := c.l.ends[c.p].Load()
		if c.pos < end {
			return c.read(min(end, c.pos+int64(max)))
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.l.closing:
			return nil, ErrClosed
		}
	}
}

func (c *pebbleCursor) read(upto int64) ([]Record, error) {
	c.l.mu.Lock()
	recs, ok := c.l.tails[c.p].get(c.pos, upto)
	c.l.mu.Unlock()
	if ok {
		c.pos = upto
		return recs, nil
	}
	it, err := c.l.db.NewIter(&pebble.IterOptions{LowerBound: recordKey(c.p, c.pos), UpperBound: recordKey(c.p, upto)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := make([]Record, 0, upto-c.pos)
	for ok := it.First(); ok; ok = it.Next() {
		off := int64(binary.BigEndian.Uint64(it.Key()[5:]))
		if off != c.pos+int64(len(out)) {
			return nil, fmt.Errorf("log: partition %d: offset %d missing (found %d)", c.p, c.pos+int64(len(out)), off)
		}
		rec, err := decodeStored(it.Value())
		if err != nil {
			return nil, fmt.Errorf("log: partition %d offset %d: %w", c.p, off, err)
		}
		rec.Partition, rec.Offset = c.p, off
		out = append(out, rec)
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if int64(len(out)) != upto-c.pos {
		return nil, fmt.Errorf("log: partition %d: expected records up to %d, found %d", c.p, upto, c.pos+int64(len(out)))
	}
	c.pos = upto
	return out, nil
}

func (c *pebbleCursor) Close() error { c.closed = true; return nil }

func encodeStored(r *Record) []byte {
	n := 4 + binary.MaxVarintLen64*(2+2*len(r.Headers)) + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	b := make([]byte, 4, n)
	b = binary.AppendUvarint(b, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		b = binary.AppendUvarint(b, uint64(len(h.Key)))
		b = append(b, h.Key...)
		b = binary.AppendUvarint(b, uint64(len(h.Value)))
		b = append(b, h.Value...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Key)))
	b = append(b, r.Key...)
	b = append(b, r.Value...)
	binary.BigEndian.PutUint32(b, crc32.Checksum(b[4:], castagnoli))
	return b
}

// ErrChecksum marks a stored record whose checksum does not match.
var ErrChecksum = errors.New("log: record checksum mismatch")

func decodeStored(v []byte) (Record, error) {
	var r Record
	if len(v) < 4 {
		return r, ErrChecksum
	}
	if crc32.Checksum(v[4:], castagnoli) != binary.BigEndian.Uint32(v) {
		return r, ErrChecksum
	}
	b := v[4:]
	next := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, false
		}
		out := append([]byte(nil), b[k:k+int(n)]...)
		b = b[k+int(n):]
		return out, true
	}
	nh, k := binary.Uvarint(b)
	if k <= 0 || nh > uint64(len(b)) {
		return r, ErrChecksum
	}
	b = b[k:]
	for range nh {
		key, ok1 := next()
		val, ok2 := next()
		if !ok1 || !ok2 {
			return r, ErrChecksum
		}
		r.Headers = append(r.Headers, Header{Key: string(key), Value: val})
	}
	key, ok := next()
	if !ok {
		return r, ErrChecksum
	}
	r.Key = key
	r.Value = append([]byte(nil), b...)
	return r, nil
}

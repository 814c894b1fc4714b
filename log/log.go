// Package log is Herald's event log: the event envelope and its codec, and
// the append/read contract that every log backend implements.
//
// The log is the only source of truth in Herald. Every mutation is appended
// here before anything else happens; projections are caches rebuilt from it.
// Two backends implement [Log]: the embedded Pebble log ([OpenPebble], the
// single-node default) and the Kafka log ([OpenKafka], any Kafka-compatible
// cluster through franz-go). Both pass the same contract test suite.
package log

import (
	"context"
	"errors"
)

// Header is a record header. Herald puts the event type and the W3C trace
// context there so tools can filter and trace without decoding values.
type Header struct {
	Key   string
	Value []byte
}

// Record is one entry of the log.
//
// On Append the caller fills Key, Value and Headers; the log fills Partition
// and Offset. On read all fields are set.
type Record struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
}

// HeaderValue returns the value of the first header named key, or nil.
func (r *Record) HeaderValue(key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// Log is an append-only, partitioned record log.
//
// Contract (every implementation, checked by the shared contract tests):
//
//   - Placement: a record goes to partition [PartitionFor](Key, Partitions()).
//     Records with the same key are therefore totally ordered.
//   - Order and density: within a partition, offsets start at 0 and are dense
//     (every offset below the end holds exactly one record); records are read
//     back in offset order, byte-for-byte as appended.
//   - Durability at ack: Append returns nil only once the record is durable
//     (fsynced by the embedded log; acknowledged by all in-sync replicas in
//     Kafka). A record whose Append returned an error may or may not be in
//     the log; callers must not assume either.
//   - Visibility: readers never see a record that is not yet durable. End
//     reports the durable end (one past the last readable offset).
//   - Concurrency: Append, End and OpenCursor may be called from many
//     goroutines at once. A Cursor is owned by one goroutine.
//   - Ownership: Append keeps rec's byte slices (the caller must not change
//     them afterwards); records returned by a cursor are read-only and may
//     share memory with other cursors' records.
//
// Close stops the log; callers close their cursors first.
type Log interface {
	// Partitions is the fixed number of partitions.
	Partitions() int32
	// Append writes rec durably and sets rec.Partition and rec.Offset.
	Append(ctx context.Context, rec *Record) error
	// AppendAsync is Append without the wait: it returns once rec is on
	// its way (blocking only while the log's queue is full) and calls
	// done, exactly once, with what Append would have returned, after
	// setting rec.Partition and rec.Offset. Records appended one after
	// the other from one goroutine to one partition take offsets in that
	// order. done runs on one of the log's goroutines and must not block.
	AppendAsync(ctx context.Context, rec *Record, done func(error))
	// End returns the durable end offset of partition p: the offset the
	// next appended record will get.
	End(ctx context.Context, p int32) (int64, error)
	// Ends returns the durable end offsets of all partitions in one call
	// (one request to a Kafka cluster, where End per partition costs one
	// request each); index i is partition i.
	Ends(ctx context.Context) ([]int64, error)
	// OpenCursor returns a reader of partition p positioned at offset.
	OpenCursor(p int32, offset int64) (Cursor, error)
	Close() error
}

// Cursor reads one partition in offset order.
type Cursor interface {
	// Next blocks until at least one durable record at or after the
	// cursor's position exists (or ctx ends) and returns up to max records,
	// advancing the position past them. It returns ctx.Err() when ctx ends.
	Next(ctx context.Context, max int) ([]Record, error)
	Close() error
}

// ErrClosed is returned by operations on a closed log or cursor.
var ErrClosed = errors.New("log: closed")

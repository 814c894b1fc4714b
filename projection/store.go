// Package projection materializes Herald's log into a Pebble database:
// queues, messages and claims, the applied offset of every partition, and
// the outcome of each event for the API node waiting on it.
//
// The projection is a cache of the log. Apply is deterministic (see
// apply.go), each batch commits state changes together with the
// partition's applied offset (exactly-once), and batches are not fsynced:
// after a crash the projection is behind and catches up from the log.
package projection

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	hlog "github.com/heraldmq/herald/log"
)

// Store is the projection database. Reads are safe from any goroutine.
type Store struct {
	db       *pebble.DB
	readOnly bool
	cache    *readCache
}

// Open opens (or creates) the projection in dir. logger receives
// Pebble's messages (slog.Default when nil).
func Open(dir string, logger *slog.Logger) (*Store, error) {
	return open(dir, logger, false)
}

// OpenStoreReadOnly opens the projection in dir for reading only: nothing in
// dir is changed.
func OpenStoreReadOnly(dir string, logger *slog.Logger) (*Store, error) {
	return open(dir, logger, true)
}

func open(dir string, logger *slog.Logger, readOnly bool) (*Store, error) {
	cache := pebble.NewCache(512 << 20)
	defer cache.Unref()
	opts := &pebble.Options{
		Logger: hlog.PebbleLogger(logger),
		Cache:  cache,
		// The log is the truth: a crash loses at most the batches not yet
		// flushed, and the projector applies them again from the log. Each
		// batch carries its partition's applied offset, and memtables are
		// flushed whole, so what survives is always consistent.
		DisableWAL: true,
		// Fewer, larger flushes: consumed messages are often deleted while
		// still in the memtable and never reach disk at all.
		MemTableSize: 64 << 20,
		ReadOnly:     readOnly,
	}
	for i := range opts.Levels {
		// Most reads are point lookups of keys that may not exist.
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open projection %s: %w", dir, err)
	}
	return &Store{db: db, readOnly: readOnly, cache: newReadCache()}, nil
}

// Close flushes what was applied, so a restart need not apply it again,
// and closes the database.
func (s *Store) Close() error {
	if s.readOnly {
		return s.db.Close()
	}
	return errors.Join(s.db.Flush(), s.db.Close())
}

// Applied returns the next offset to apply for partition p (0 when the
// partition has never been applied).
func (s *Store) Applied(p int32) (int64, error) {
	v, closer, err := s.db.Get(appliedKey(p))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	return int64(binary.BigEndian.Uint64(v)), nil
}

// Digest is a SHA-256 over every key and value of the projection, in key
// order, except the outbox of follow-up events not yet appended (which is
// transient) and the ReplayInfo of a rebuild. Two projections built from
// the same log up to the same offsets have the same digest.
func (s *Store) Digest() (string, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return "", err
	}
	defer it.Close()
	d := newKeyDigest()
	for ok := it.First(); ok; ok = it.Next() {
		if digested(it.Key()) {
			d.add(it.Key(), it.Value())
		}
	}
	if err := it.Error(); err != nil {
		return "", err
	}
	return d.sum(), nil
}

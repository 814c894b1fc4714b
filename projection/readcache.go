package projection

import (
	"errors"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// readCache holds what nearly every request reads and few events change:
// whether a queue exists and its metadata (not its message counters, which
// change with every post), and its pool placement.
//
// Readers fill it; appliers never write to it. When a batch that created or
// deleted a queue, changed its metadata or changed a placement commits, the
// projector empties the cache before it advances the watermark, so a
// request that waited for its own write never reads an older value. A
// reader that read the database before such a commit must not store what
// it read after the cache was emptied: every fill carries the generation it
// started at, and fills from an older generation are dropped.
type readCache struct {
	mu     sync.RWMutex
	gen    uint64
	queues map[string]cachedQueue
	places map[string]string
}

type cachedQueue struct {
	exists   bool
	metadata []byte
}

// maxReadCache bounds each map of the cache; past it a map starts over.
const maxReadCache = 1 << 16

func newReadCache() *readCache {
	return &readCache{queues: map[string]cachedQueue{}, places: map[string]string{}}
}

func (c *readCache) queue(k string) (cachedQueue, uint64, bool) { return cacheGet(c, c.queues, k) }

func (c *readCache) putQueue(k string, q cachedQueue, gen uint64) { cachePut(c, c.queues, k, q, gen) }

func (c *readCache) placement(k string) (string, uint64, bool) { return cacheGet(c, c.places, k) }

func (c *readCache) putPlacement(k, pool string, gen uint64) { cachePut(c, c.places, k, pool, gen) }

// cacheGet looks k up in m, one of c's maps, and returns the generation
// a fill after a miss must carry.
func cacheGet[V any](c *readCache, m map[string]V, k string) (V, uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := m[k]
	return v, c.gen, ok
}

// cachePut stores v under k in m, one of c's maps, unless the cache was
// emptied since gen.
func cachePut[V any](c *readCache, m map[string]V, k string, v V, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(m) >= maxReadCache {
		clear(m)
	}
	m[k] = v
}

// invalidate empties the cache and starts a new generation.
func (c *readCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.queues)
	clear(c.places)
}

// commitApplied commits batch b, which a applied up to offset next of
// partition p, together with that applied offset, and then empties the
// read cache when the batch changed what the cache holds.
func (s *Store) commitApplied(b *pebble.Batch, a *applier, p int32, next int64) error {
	if err := b.Set(appliedKey(p), appendU64(nil, uint64(next)), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	if a.catalogChanged {
		a.catalogChanged = false
		s.cache.invalidate()
	}
	return nil
}

// QueueMetadata returns a queue's metadata (compact JSON, as stored) and
// whether the queue exists. Unlike Queue it is served from memory after
// the first read. The slice must not be modified.
func (s *Store) QueueMetadata(project, queue string) (metadata []byte, exists bool, err error) {
	k := string(queueKey(project, queue))
	c, gen, ok := s.cache.queue(k)
	if ok {
		return c.metadata, c.exists, nil
	}
	q, err := getQueue(s.db, project, queue)
	if err != nil {
		return nil, false, err
	}
	if q != nil {
		c = cachedQueue{exists: true, metadata: q.Metadata}
	}
	s.cache.putQueue(k, c, gen)
	return c.metadata, c.exists, nil
}

// Placement returns the pool a queue is placed on, or "" when it lives in
// the node's own log.
func (s *Store) Placement(project, queue string) (string, error) {
	k := placementKey(project, queue)
	pool, gen, ok := s.cache.placement(string(k))
	if ok {
		return pool, nil
	}
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		s.cache.putPlacement(string(k), "", gen)
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer closer.Close()
	pool = string(v)
	s.cache.putPlacement(string(k), pool, gen)
	return pool, nil
}

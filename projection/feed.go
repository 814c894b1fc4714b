package projection

import (
	"sync"

	hlog "github.com/heraldmq/herald/log"
)

// Applied is one event as a projector applied it.
type Applied struct {
	Partition int32
	Offset    int64
	Event     *hlog.Event
	// Delivers is set when applying the event made pending deliveries
	// for the notifier.
	Delivers bool
}

// Feed passes applied events to its subscribers: the change feed that
// notifications and live streams follow. Projectors publish each batch
// after it is committed and their watermark advanced, so a subscriber may
// read the projection up to the event it is handed. Events of one
// partition arrive in log order; partitions interleave.
//
// Subscribers are called on the apply loop and must not block: they
// queue what they need and return. A Feed is safe for concurrent use.
type Feed struct {
	mu   sync.RWMutex
	next int
	subs map[int]func([]Applied)
}

// NewFeed returns a feed without subscribers.
func NewFeed() *Feed { return &Feed{subs: map[int]func([]Applied){}} }

// Subscribe registers fn and returns the function that unregisters it.
func (f *Feed) Subscribe(fn func([]Applied)) (cancel func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.next
	f.next++
	f.subs[id] = fn
	return func() {
		f.mu.Lock()
		delete(f.subs, id)
		f.mu.Unlock()
	}
}

func (f *Feed) publish(batch []Applied) {
	if f == nil || len(batch) == 0 {
		return
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, fn := range f.subs {
		fn(batch)
	}
}

package projection

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// The history index lists, for every queue, the log offsets of its events
// with their time and type, so the history of one queue is read from its
// partition without scanning the other queues' events. It is kept for
// deleted queues too: history outlives what it describes.
//
//	'h' | str(project) | str(queue) | offset u64  →  time u64 | type

func historyPrefix(project, queue string) []byte {
	return appendStr(appendStr([]byte{tagHistory}, project), queue)
}

func (a *applier) recordHistory(b *pebble.Batch, off int64, ev *hlog.Event) error {
	if ev.Queue == "" {
		return nil // the admin catalog's events belong to no queue
	}
	v := append(appendU64(make([]byte, 0, 8+len(ev.Type)), uint64(ev.Time)), ev.Type...)
	return b.Set(appendU64(historyPrefix(ev.Project, ev.Queue), uint64(off)), v, nil)
}

// HistoryFilter selects a queue's events.
type HistoryFilter struct {
	After int64 // only offsets above this; -1 from the start
	Limit int
	// Types, when not empty, keeps only these types; Since and Until (ns,
	// 0 for none) bound the event time, Until exclusive.
	Types        map[hlog.Type]bool
	Since, Until int64
	// Scan bounds how many index entries one call reads (10000 if 0), so
	// a selective filter over a long history answers in bounded time.
	Scan int
}

// HistoryEntry is one event of a queue's history.
type HistoryEntry struct {
	Offset int64
	Time   int64
	Type   hlog.Type
}

// History returns up to f.Limit events of the queue matching f, in log
// order, and the last offset it looked at (to continue from; -1 when it
// looked at none) and whether the index has more after it.
func (s *Store) History(project, queue string, f HistoryFilter) ([]HistoryEntry, int64, bool, error) {
	prefix := historyPrefix(project, queue)
	lo := prefix
	if f.After >= 0 {
		lo = appendU64(append([]byte(nil), prefix...), uint64(f.After)+1)
	}
	if f.Scan <= 0 {
		f.Scan = 10000
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, -1, false, err
	}
	defer it.Close()
	var out []HistoryEntry
	last, scanned := int64(-1), 0
	ok := it.First()
	for ; ok && len(out) < f.Limit && scanned < f.Scan; ok = it.Next() {
		k, v := it.Key()[len(prefix):], it.Value()
		if len(k) != 8 || len(v) < 8 {
			return nil, -1, false, fmt.Errorf("projection: corrupt history entry %x", it.Key())
		}
		scanned++
		e := HistoryEntry{Offset: int64(binary.BigEndian.Uint64(k)), Time: int64(binary.BigEndian.Uint64(v)), Type: hlog.Type(v[8:])}
		last = e.Offset
		if len(f.Types) > 0 && !f.Types[e.Type] || f.Since != 0 && e.Time < f.Since || f.Until != 0 && e.Time >= f.Until {
			continue
		}
		out = append(out, e)
	}
	return out, last, ok, it.Error()
}

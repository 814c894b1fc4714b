package projection

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// Effects that cross partitions are follow-up events. Apply cannot append
// to the log (it must stay a pure function of state and event), so it
// writes the follow-up into the outbox of its partition, in the same batch
// as the state change that caused it. After the batch commits, the
// projector appends the partition's outbox to the log in offset order and
// then deletes the entries; only then does its watermark advance, so a
// writer that waited for its event to be applied knows the follow-ups are
// in the log. A crash between append and delete appends them again; the
// target recognises a source position it already applied (followKey).
//
// An event applied again after a restart or a rebuild writes its
// follow-up into the outbox again, though the log usually holds it
// already. Appending it again would leave the state alone but grow the
// log and move the target's applied offset, so a rebuilt projection would
// differ from the one it replaces; such entries are appended only if the
// log does not hold them (followScan).

// writeOutbox records follow-up event f of the event at offset off.
func (a *applier) writeOutbox(b *pebble.Batch, off int64, f *hlog.Event) error {
	v, err := hlog.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode follow-up: %w", err)
	}
	a.outboxed = true
	return b.Set(outboxKey(a.p, off), v, nil)
}

// followMark returns the source offset of the last follow-up from
// partition src that partition p applied, or -1.
func followMark(r pebble.Reader, p, src int32) (int64, error) {
	v, closer, err := r.Get(followKey(p, src))
	if errors.Is(err, pebble.ErrNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	return int64(binary.BigEndian.Uint64(v)), nil
}

// followed reports whether this partition already applied the follow-up
// of source position (src, off), and if not records that it has.
func (a *applier) followed(b *pebble.Batch, src int32, off int64) (bool, error) {
	last, err := followMark(b, a.p, src)
	if err != nil || off <= last {
		return err == nil, err
	}
	return false, b.Set(followKey(a.p, src), appendU64(nil, uint64(off)), nil)
}

// followSource is what follow-up payloads share: the position of the
// event that caused them.
type followSource struct {
	Partition int32 `msgpack:"src_p"`
	Offset    int64 `msgpack:"src_o"`
}

// followScan tells whether the log already holds a follow-up that
// partition src's outbox is about to append. Each source partition's
// follow-ups reach a target partition in source order and without gaps
// (every node flushes its outbox in order and stops at the first failed
// append), so the follow-up of source offset off is in the log exactly
// when the target partition holds one from src with a source offset of
// off or more: in what the target applied (its follow mark) or in the
// part of its log it has not applied yet. Only src's apply loop uses it.
type followScan struct {
	p   *Projector
	src int32
	// replayEnd is src's log end when the loop started: only events
	// before it can have had their follow-ups appended already.
	replayEnd int64
	targets   map[int32]*targetScan
}

// targetScan is what followScan read of one target partition's log.
type targetScan struct {
	to  int64 // read up to here
	max int64 // highest source offset of src in what was read, or -1
}

// inLog reports whether the log holds the follow-up f of the event at
// source offset off.
func (s *followScan) inLog(ctx context.Context, off int64, f *hlog.Event) (bool, error) {
	if off >= s.replayEnd {
		return false, nil
	}
	target := hlog.PartitionFor(f.Key(), s.p.log.Partitions())
	// The follow mark, read second, covers at least the offsets below
	// applied; the scan covers the rest of the target's log.
	applied, err := s.p.store.Applied(target)
	if err != nil {
		return false, err
	}
	mark, err := followMark(s.p.store.db, target, s.src)
	if err != nil || mark >= off {
		return err == nil, err
	}
	t := s.targets[target]
	if t == nil {
		t = &targetScan{to: applied, max: -1}
		s.targets[target] = t
	}
	if t.max >= off {
		return true, nil
	}
	end, err := s.p.log.End(ctx, target)
	if err != nil {
		return false, err
	}
	if from := max(t.to, applied); from < end {
		if err := s.read(ctx, target, from, end, t); err != nil {
			return false, err
		}
	}
	t.to = max(t.to, end)
	return t.max >= off, nil
}

// read scans the target's log from from to end for follow-ups of src.
func (s *followScan) read(ctx context.Context, target int32, from, end int64, t *targetScan) error {
	cur, err := s.p.log.OpenCursor(target, from)
	if err != nil {
		return err
	}
	defer cur.Close()
	for pos := from; pos < end; {
		recs, err := cur.Next(ctx, int(min(end-pos, 512)))
		if err != nil {
			return fmt.Errorf("projection: read partition %d for follow-ups: %w", target, err)
		}
		for i := range recs {
			pos = recs[i].Offset + 1
			if !isFollowUp(hlog.Type(recs[i].HeaderValue(hlog.HeaderType))) {
				continue
			}
			ev, err := hlog.DecodeEvent(recs[i].Value)
			if err != nil {
				continue // apply skips it too
			}
			var src followSource
			if ev.DecodePayload(&src) == nil && src.Partition == s.src {
				t.max = max(t.max, src.Offset)
			}
		}
	}
	return nil
}

// isFollowUp reports whether events of type t are follow-ups, whose
// payloads start with a followSource.
func isFollowUp(t hlog.Type) bool { return t == hlog.MessagesDeadLettered }

// flushOutbox appends the follow-up events waiting in partition part's
// outbox, in order, and deletes each once the log holds it.
func (p *Projector) flushOutbox(ctx context.Context, part int32, scan *followScan) error {
	lo := outboxPartition(part)
	it, err := p.store.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return err
	}
	type entry struct {
		key []byte
		off int64
		ev  *hlog.Event
	}
	var pending []entry
	for ok := it.First(); ok; ok = it.Next() {
		ev, err := hlog.DecodeEvent(it.Value())
		if err != nil {
			key := append([]byte(nil), it.Key()...)
			it.Close()
			return fmt.Errorf("projection: outbox entry %x: %w", key, err)
		}
		key := append([]byte(nil), it.Key()...)
		pending = append(pending, entry{key, int64(binary.BigEndian.Uint64(key[len(lo):])), ev})
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, e := range pending {
		present, err := scan.inLog(ctx, e.off, e.ev)
		if err != nil {
			return fmt.Errorf("look for follow-up %s in the log: %w", e.ev.Type, err)
		}
		if !present {
			rec, err := e.ev.Record()
			if err != nil {
				return err
			}
			if err := p.log.Append(ctx, rec); err != nil {
				return fmt.Errorf("append follow-up %s: %w", e.ev.Type, err)
			}
		}
		if err := p.store.db.Delete(e.key, pebble.NoSync); err != nil {
			return err
		}
	}
	return nil
}

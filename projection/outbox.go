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

// writeOutbox records follow-up event f of the event at offset off.
func (a *applier) writeOutbox(b *pebble.Batch, off int64, f *hlog.Event) error {
	v, err := hlog.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode follow-up: %w", err)
	}
	a.outboxed = true
	return b.Set(outboxKey(a.p, off), v, nil)
}

// followed reports whether this partition already applied the follow-up
// of source position (src, off), and if not records that it has.
func (a *applier) followed(b *pebble.Batch, src int32, off int64) (bool, error) {
	k := followKey(a.p, src)
	v, closer, err := b.Get(k)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return false, err
	default:
		last := int64(binary.BigEndian.Uint64(v))
		closer.Close()
		if off <= last {
			return true, nil
		}
	}
	return false, b.Set(k, appendU64(nil, uint64(off)), nil)
}

// flushOutbox appends the follow-up events waiting in partition part's
// outbox, in order, and deletes each once the log acknowledged it.
func (p *Projector) flushOutbox(ctx context.Context, part int32) error {
	lo := outboxPartition(part)
	it, err := p.store.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return err
	}
	type entry struct {
		key []byte
		ev  *hlog.Event
	}
	var pending []entry
	for ok := it.First(); ok; ok = it.Next() {
		ev, err := hlog.DecodeEvent(it.Value())
		if err != nil {
			it.Close()
			return fmt.Errorf("projection: outbox entry %x: %w", it.Key(), err)
		}
		pending = append(pending, entry{append([]byte(nil), it.Key()...), ev})
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, e := range pending {
		rec, err := e.ev.Record()
		if err != nil {
			return err
		}
		if err := p.log.Append(ctx, rec); err != nil {
			return fmt.Errorf("append follow-up %s: %w", e.ev.Type, err)
		}
		if err := p.store.db.Delete(e.key, pebble.NoSync); err != nil {
			return err
		}
	}
	return nil
}

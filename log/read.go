package log

import (
	"context"
	"fmt"
)

// ReadRange calls fn with each record of partition p from offset from up
// to, not including, offset to, in offset order. It stops at fn's first
// error and returns it.
func ReadRange(ctx context.Context, l Log, p int32, from, to int64, fn func(*Record) error) error {
	if from >= to {
		return nil
	}
	cur, err := l.OpenCursor(p, from)
	if err != nil {
		return err
	}
	defer cur.Close()
	for pos := from; pos < to; {
		recs, err := cur.Next(ctx, int(min(to-pos, 512)))
		if err != nil {
			return err
		}
		for i := range recs {
			if recs[i].Offset >= to {
				return nil
			}
			if err := fn(&recs[i]); err != nil {
				return err
			}
			pos = recs[i].Offset + 1
		}
	}
	return nil
}

// EventAt reads and decodes the event at (p, off).
func EventAt(ctx context.Context, l Log, p int32, off int64) (*Event, error) {
	var ev *Event
	err := ReadRange(ctx, l, p, off, off+1, func(r *Record) error {
		if r.Offset != off {
			return fmt.Errorf("log: no record at %d:%d", p, off)
		}
		var err error
		ev, err = DecodeEvent(r.Value)
		return err
	})
	if err == nil && ev == nil {
		err = fmt.Errorf("log: no record at %d:%d", p, off)
	}
	return ev, err
}

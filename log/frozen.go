package log

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrReadOnly is returned by Append on a read-only log.
var ErrReadOnly = errors.New("log: read-only")

// Frozen returns the log a read-only node serves a rebuilt projection
// with: it has partitions partitions ending at ends, refuses appends with
// ErrReadOnly and holds no records of its own (cursors at or past the end
// wait for ever; reading below the end is an error, the records being in
// the log the projection was rebuilt from).
func Frozen(partitions int32, ends []int64) (Log, error) {
	if partitions <= 0 || len(ends) != int(partitions) {
		return nil, fmt.Errorf("log: frozen log of %d partitions with %d ends", partitions, len(ends))
	}
	return &frozenLog{ends: append([]int64(nil), ends...), closed: make(chan struct{})}, nil
}

type frozenLog struct {
	ends   []int64
	once   sync.Once
	closed chan struct{}
}

func (l *frozenLog) Partitions() int32 { return int32(len(l.ends)) }

func (l *frozenLog) Append(context.Context, *Record) error { return ErrReadOnly }

func (l *frozenLog) AppendAsync(_ context.Context, _ *Record, done func(error)) { done(ErrReadOnly) }

func (l *frozenLog) End(_ context.Context, p int32) (int64, error) {
	if p < 0 || int(p) >= len(l.ends) {
		return 0, fmt.Errorf("log: no partition %d", p)
	}
	return l.ends[p], nil
}

func (l *frozenLog) Ends(context.Context) ([]int64, error) {
	return append([]int64(nil), l.ends...), nil
}

func (l *frozenLog) OpenCursor(p int32, offset int64) (Cursor, error) {
	if _, err := l.End(context.Background(), p); err != nil {
		return nil, err
	}
	if offset < l.ends[p] {
		return nil, fmt.Errorf("%w: partition %d offset %d is not held by a read-only node", ErrReadOnly, p, offset)
	}
	return frozenCursor{l}, nil
}

func (l *frozenLog) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

type frozenCursor struct{ l *frozenLog }

func (c frozenCursor) Next(ctx context.Context, _ int) ([]Record, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.l.closed:
		return nil, ErrClosed
	}
}

func (c frozenCursor) Close() error { return nil }

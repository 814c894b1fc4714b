package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	hlog "github.com/heraldmq/herald/log"
)

// Replica is one log projected into one store: the unit a node runs for
// its own log and for every pool. Its fields are read-only.
type Replica struct {
	Log       hlog.Log
	Store     *Store
	Projector *Projector
}

// StartReplica opens the projection in dir, starts projecting l into it
// (publishing to feed, which may be nil) and waits until it caught up with
// the log. The replica owns l from then
// on (also when StartReplica fails).
func StartReplica(ctx context.Context, l hlog.Log, dir string, logger *slog.Logger, feed *Feed) (_ *Replica, err error) {
	r := &Replica{Log: l}
	defer func() {
		if err != nil {
			r.Close(context.Background())
		}
	}()
	if r.Store, err = Open(dir, logger); err != nil {
		return nil, err
	}
	r.Projector = NewProjector(r.Store, l, ProjectorOptions{Logger: logger, Feed: feed})
	if err := r.Projector.Start(); err != nil {
		return nil, err
	}
	if err := r.Projector.CatchUp(ctx); err != nil {
		return nil, fmt.Errorf("catch up with the log: %w", err)
	}
	return r, nil
}

// Close stops the projector and closes the store and the log.
func (r *Replica) Close(ctx context.Context) error {
	var errs []error
	if r.Projector != nil {
		errs = append(errs, r.Projector.Shutdown(ctx))
	}
	if r.Store != nil {
		errs = append(errs, r.Store.Close())
	}
	if r.Log != nil {
		errs = append(errs, r.Log.Close())
	}
	return errors.Join(errs...)
}

// OpenReadOnly opens the projection a Rebuild wrote in dir for a
// read-only node: a replica over a frozen log (see hlog.Frozen) that
// appends and applies nothing.
func OpenReadOnly(dir string, logger *slog.Logger) (_ *Replica, _ *ReplayInfo, err error) {
	r := &Replica{}
	defer func() {
		if err != nil {
			r.Close(context.Background())
		}
	}()
	if !HasProjection(dir) {
		return nil, nil, fmt.Errorf("%s holds no projection", dir)
	}
	if r.Store, err = OpenStoreReadOnly(dir, logger); err != nil {
		return nil, nil, err
	}
	info, err := r.Store.ReplayInfo()
	if err != nil {
		return nil, nil, err
	}
	if info == nil {
		return nil, nil, fmt.Errorf("%s was not written by `herald replay`", dir)
	}
	if r.Log, err = hlog.Frozen(info.Partitions, info.Applied); err != nil {
		return nil, nil, err
	}
	r.Projector = NewProjector(r.Store, r.Log, ProjectorOptions{Logger: logger, ReadOnly: true})
	if err := r.Projector.Start(); err != nil {
		return nil, nil, err
	}
	return r, info, nil
}

package api

import (
	"context"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// Streams (Herald's extension of the WebSocket API) read a queue's
// messages by log position.

// MessagesAfter returns the queue's live messages posted after message
// after (by log position), in queue order, whoever posted them and
// whatever their claims and delays.
func (s *Service) MessagesAfter(ctx context.Context, c Caller, queue, after string) ([]projection.Message, error) {
	store, err := s.storeFor(ctx, c, queue)
	if err != nil {
		return nil, err
	}
	_, aOff, aIdx, ok := projection.ParseID(after)
	if !ok {
		return nil, BadRequest("The value of \"after\" must be a message id.")
	}
	var marker uint64
	if ms, err := store.Messages(c.Project, queue, []string{after}, s.Now()); err == nil && len(ms) == 1 {
		marker = ms[0].Seq // start right after it; otherwise scan the queue
	}
	var out []projection.Message
	for {
		page, err := store.ListMessages(c.Project, queue, projection.ListFilter{After: marker, Limit: 100,
			Echo: true, IncludeClaimed: true, IncludeDelayed: true}, s.Now())
		if err != nil {
			return nil, Unavailable("Messages could not be listed.", err)
		}
		for _, m := range page {
			if _, off, idx, _ := projection.ParseID(m.ID); off > aOff || off == aOff && idx > aIdx {
				out = append(out, m)
			}
		}
		if len(page) < 100 {
			return out, nil
		}
		marker = page[len(page)-1].Seq
	}
}

// AppliedEnd is the next offset the queue's partition will apply: every
// message of the queue applied so far is before it.
func (s *Service) AppliedEnd(ctx context.Context, c Caller, queue string) (int64, error) {
	r, err := s.replicaFor(ctx, c.Project, queue)
	if err != nil {
		return 0, err
	}
	return r.Projector.Applied(hlog.PartitionFor(hlog.QueueKey(c.Project, queue), r.Log.Partitions())), nil
}

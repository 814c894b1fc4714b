package api

import (
	"context"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// Streams (Herald's extension of the WebSocket API) read a queue's
// messages by log position.

// MessagesAfter hands fn the queue's live messages posted after message
// after (by log position), a page at a time in queue order, whoever posted
// them and whatever their claims and delays. It stops at fn's first error
// and returns it.
func (s *Service) MessagesAfter(ctx context.Context, c Caller, queue, after string, fn func([]projection.Message) error) error {
	store, err := s.storeFor(ctx, c, queue)
	if err != nil {
		return err
	}
	aPart, aOff, aIdx, ok := projection.ParseID(after)
	if !ok {
		return BadRequest("The value of \"after\" must be a message id.")
	}
	var marker uint64
	if ms, err := store.Messages(c.Project, queue, []string{after}, s.Now()); err == nil && len(ms) == 1 {
		marker = ms[0].Seq // start right after it; otherwise scan the queue
	}
	const page = 100
	for {
		msgs, err := store.ListMessages(c.Project, queue, projection.ListFilter{After: marker, Limit: page,
			Echo: true, IncludeClaimed: true, IncludeDelayed: true}, s.Now())
		if err != nil {
			return Unavailable("Messages could not be listed.", err)
		}
		var out []projection.Message
		for _, m := range msgs {
			// Positions order the messages posted to this queue's
			// partition; others (moved here from a dead-letter source)
			// follow by queue order once the scan passed "after".
			p, off, idx, _ := projection.ParseID(m.ID)
			if p != aPart && marker > 0 || p == aPart && (off > aOff || off == aOff && idx > aIdx) {
				out = append(out, m)
			}
		}
		if len(out) > 0 {
			if err := fn(out); err != nil {
				return err
			}
		}
		if len(msgs) < page {
			return nil
		}
		marker = msgs[len(msgs)-1].Seq
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

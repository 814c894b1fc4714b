package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/heraldmq/herald/projection"
)

// OperationStatus is one step of the health check.
type OperationStatus struct {
	Succeeded bool    `json:"succeeded"`
	Seconds   float64 `json:"seconds"`
	Ref       *string `json:"ref"`
}

// Health runs Zaqar's health check (contract §2.6): it creates a queue in
// a throw-away project, posts 100 messages, claims, lists and deletes
// them and deletes the queue, timing each step; a failed step gets a
// reference that the log repeats. It also counts the messages of every
// log. An error means the storage is unreachable (503).
func (s *Service) Health(ctx context.Context) (map[string]any, error) {
	if !s.Ready(ctx) {
		return nil, Unavailable("The storage could not be reached.", nil)
	}
	ops := map[string]OperationStatus{}
	step := func(name string, fn func() error) bool {
		start := time.Now()
		err := fn()
		st := OperationStatus{Succeeded: err == nil, Seconds: time.Since(start).Seconds()}
		if err != nil {
			ref := randomHex(16)
			st.Ref = &ref
			s.cfg.Logger.Error("health check step failed", "step", name, "ref", ref, "err", err)
		}
		ops[name] = st
		return err == nil
	}
	c := Caller{Project: "herald-health-" + randomHex(8), ClientID: randomHex(16)}
	queue := "health-" + randomHex(8)
	if step("create_queue", func() error { _, err := s.CreateQueue(ctx, c, queue, nil); return err }) {
		msgs := make([]NewMessage, 100)
		ttl := int64(600)
		for i := range msgs {
			msgs[i] = NewMessage{TTL: &ttl, Body: []byte(fmt.Sprintf(`{"event":"p_%d"}`, i))}
		}
		var ids []string
		step("post_messages", func() (err error) {
			ids, err = s.PostMessages(ctx, c, queue, map[string]any{}, msgs, PostOptions{})
			return err
		})
		if len(ids) > 0 {
			claimTTL, grace := int64(60), int64(300)
			var claimID string
			var claimed []projection.Message
			step("claim_messages", func() (err error) {
				claimID, claimed, err = s.CreateClaim(ctx, c, queue, 10, ClaimTimes{TTL: &claimTTL, Grace: &grace})
				return err
			})
			if len(claimed) > 0 {
				step("delete_messages", func() error { return s.DeleteMessage(ctx, c, queue, claimed[0].ID, claimID) })
			}
			step("list_messages", func() error {
				_, _, err := s.ListMessages(ctx, c, queue, MessageListing{Echo: true, IncludeClaimed: true})
				return err
			})
			if claimID != "" {
				step("delete_claim", func() error { return s.ReleaseClaim(ctx, c, queue, claimID) })
			}
			step("bulk_delete_messages", func() error { return s.DeleteMessages(ctx, c, queue, ids[:min(len(ids), s.cfg.MaxMessagesPerPage)]) })
		}
		step("delete_queue", func() error { return s.DeleteQueue(ctx, c, queue) })
	}
	vol := map[string]int{"free": 0, "claimed": 0, "total": 0}
	replicas, err := s.pools.replicas(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range replicas {
		v, err := r.Store.MessageVolume(s.Now())
		if err != nil {
			return nil, Unavailable("The storage could not be read.", err)
		}
		vol["free"] += v.Free
		vol["claimed"] += v.Claimed
		vol["total"] += v.Total
	}
	return map[string]any{"storage_reachable": true, "operation_status": ops, "message_volume": vol}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

package api

import (
	"context"
	"strconv"
	"strings"
	"time"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// NewMessage is one message of a post as parsed by a transport: TTL and
// Delay are nil when absent; Body is compact JSON.
type NewMessage struct {
	TTL   *int64
	Delay *int64
	Body  []byte
}

// FormatCreated renders a creation time as stats do (contract §2.2.6).
func FormatCreated(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05Z") }

// PrepareQueue returns the queue's metadata for a post, first creating the
// queue if it does not exist (queues are lazy; Zaqar creates the queue
// before it validates the post, contract Q1).
func (s *Service) PrepareQueue(ctx context.Context, c Caller, queue string) (map[string]any, error) {
	meta, exists, err := s.QueueMetadata(ctx, c, queue)
	if err != nil || exists {
		return meta, err
	}
	if _, err := s.CreateQueue(ctx, c, queue, nil); err != nil {
		return nil, err
	}
	return meta, nil
}

// PostSizeLimit is the largest message post body the queue accepts.
func (s *Service) PostSizeLimit(meta map[string]any) int64 {
	if v, ok := projection.QueueInt(meta, "_max_messages_post_size"); ok && v < s.cfg.MaxMessagesPostSize {
		return v
	}
	return s.cfg.MaxMessagesPostSize
}

// CheckPostSize rejects a post body of size bytes over the queue's limit.
func (s *Service) CheckPostSize(meta map[string]any, size int64) error {
	if limit := s.PostSizeLimit(meta); size > limit {
		return BadRequest("Message collection size is too large. Max size %d", limit)
	}
	return nil
}

// PostOptions changes how PostMessages treats messages.
type PostOptions struct {
	// IgnoreDelay drops per-message and queue delays (the WebSocket
	// message_post never applies delays, contract §4.5).
	IgnoreDelay bool
}

// PostMessages appends msgs to queue atomically and returns their ids in
// order. meta is the queue metadata from PrepareQueue.
func (s *Service) PostMessages(ctx context.Context, c Caller, queue string, meta map[string]any, msgs []NewMessage, opts PostOptions) ([]string, error) {
	return s.StartPost(ctx, c, queue, meta, msgs, opts).Wait(ctx)
}

// Post is a message post on its way to the log (see StartPost).
type Post struct {
	w   *pendingWrite
	n   int
	err error
}

// StartPost is PostMessages without the waiting: it validates the post and
// hands its event to the log, and Wait returns what PostMessages would
// have. Posts started one after the other by one goroutine reach the log
// of their queue in that order, so a client's pipelined posts keep their
// order without waiting for each other. ctx must stay live until Wait
// returns.
func (s *Service) StartPost(ctx context.Context, c Caller, queue string, meta map[string]any, msgs []NewMessage, opts PostOptions) *Post {
	ev, err := s.postEvent(c, queue, meta, msgs, opts)
	if err != nil {
		return &Post{err: err}
	}
	return &Post{w: s.startWrite(ctx, c, ev), n: len(msgs)}
}

// Wait waits until the post is applied and returns the messages' ids.
func (p *Post) Wait(ctx context.Context) ([]string, error) {
	if p.err != nil {
		return nil, p.err
	}
	part, off, out, err := p.w.wait(ctx)
	if err != nil {
		return nil, err
	}
	if out != nil && out.Repeat {
		off = out.Offset // a retry: the ids of the first post
	}
	ids := make([]string, p.n)
	for i := range ids {
		ids[i] = projection.PositionID(part, off, i)
	}
	return ids, nil
}

// postEvent validates a post and returns its event.
func (s *Service) postEvent(c Caller, queue string, meta map[string]any, msgs []NewMessage, opts PostOptions) (*hlog.Event, error) {
	if len(msgs) == 0 {
		return nil, BadRequest("No messages to enqueu.")
	}
	defTTL := s.cfg.DefaultMessageTTL
	if v, ok := projection.QueueInt(meta, "_default_message_ttl"); ok {
		defTTL = v
	}
	queueDelay, delayed := projection.QueueInt(meta, "_default_message_delay")
	delayed = delayed && queueDelay != 0 && !opts.IgnoreDelay
	pl := &hlog.MessagesPostedV1{Messages: make([]hlog.PostedMessage, len(msgs))}
	for i, m := range msgs {
		ttl := defTTL
		if m.TTL != nil {
			ttl = *m.TTL
		}
		if ttl < 60 || ttl > s.cfg.MaxMessageTTL {
			return nil, BadRequest("The TTL for a message may not exceed %d seconds, and must be at least 60 seconds long.", s.cfg.MaxMessageTTL)
		}
		pm := hlog.PostedMessage{TTL: ttl, Body: m.Body}
		if delayed {
			pm.Delay, pm.Delayed = queueDelay, true
			if m.Delay != nil {
				pm.Delay = *m.Delay
			}
			if pm.Delay < 0 || pm.Delay > s.cfg.MaxMessageDelay {
				return nil, BadRequest("The Delay for a message may not exceed %d seconds, and must be at least 0 seconds long.", s.cfg.MaxMessageDelay)
			}
		}
		pl.Messages[i] = pm
	}
	return s.event(hlog.MessagesPosted, c, queue, pl)
}

// MessageListing selects messages for ListMessages. IncludeDelayed is
// forced on for queues without a default delay.
type MessageListing struct {
	Marker         string
	Limit          int // 0: default 10
	Echo           bool
	IncludeClaimed bool
	IncludeDelayed bool
}

// ListMessages lists visible messages in queue order. It returns the
// effective IncludeDelayed (forced on for queues without delay).
func (s *Service) ListMessages(ctx context.Context, c Caller, queue string, l MessageListing) ([]projection.Message, bool, error) {
	if l.Limit == 0 {
		l.Limit = 10
	}
	if l.Limit < 1 || l.Limit > s.cfg.MaxMessagesPerPage {
		return nil, false, BadRequest("Limit must be at least 1 and may not be greater than %d.", s.cfg.MaxMessagesPerPage)
	}
	meta, _, err := s.QueueMetadata(ctx, c, queue)
	if err != nil {
		return nil, false, err
	}
	if d, ok := projection.QueueInt(meta, "_default_message_delay"); !ok || d == 0 {
		l.IncludeDelayed = true
	}
	var after uint64
	if l.Marker != "" {
		m, err := strconv.ParseUint(l.Marker, 10, 64)
		if err != nil {
			return nil, l.IncludeDelayed, nil // an unparseable marker is an empty page
		}
		after = m
	}
	store, err := s.storeFor(ctx, c, queue)
	if err != nil {
		return nil, l.IncludeDelayed, err
	}
	msgs, err := store.ListMessages(c.Project, queue, projection.ListFilter{
		After: after, Limit: l.Limit, Echo: l.Echo, ClientID: c.ClientID,
		IncludeClaimed: l.IncludeClaimed, IncludeDelayed: l.IncludeDelayed,
	}, s.Now())
	if err != nil {
		return nil, false, Unavailable("Messages could not be listed.", err)
	}
	return msgs, l.IncludeDelayed, nil
}

// GetMessages returns the live messages among ids (any state).
func (s *Service) GetMessages(ctx context.Context, c Caller, queue string, ids []string) ([]projection.Message, error) {
	if len(ids) < 1 || len(ids) > s.cfg.MaxMessagesPerPage {
		return nil, BadRequest("Limit must be at least 1 and may not be greater than %d.", s.cfg.MaxMessagesPerPage)
	}
	store, err := s.storeFor(ctx, c, queue)
	if err != nil {
		return nil, err
	}
	msgs, err := store.Messages(c.Project, queue, ids, s.Now())
	if err != nil {
		return nil, Unavailable("Messages could not be read.", err)
	}
	return msgs, nil
}

// NoMessagesError is REST's 404 for a get-by-ids without any hit.
func NoMessagesError(c Caller, queue string, ids []string) *Error {
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = "'" + id + "'"
	}
	return NotFound("No messages with IDs: [%s] found in the queue %s for project %s.", strings.Join(quoted, ", "), QueueName(queue), c.Project)
}

// GetMessage returns one live message.
func (s *Service) GetMessage(ctx context.Context, c Caller, queue, id string) (*projection.Message, error) {
	store, err := s.storeFor(ctx, c, queue)
	if err != nil {
		return nil, err
	}
	msgs, err := store.Messages(c.Project, queue, []string{id}, s.Now())
	if err != nil {
		return nil, Unavailable("Message could not be read.", err)
	}
	if len(msgs) == 0 {
		return nil, NotFound("Message %s does not exist in queue %s for project %s", id, QueueName(queue), c.Project)
	}
	return &msgs[0], nil
}

// DeleteMessage deletes one message, honouring its claim (contract §2.3.7).
func (s *Service) DeleteMessage(ctx context.Context, c Caller, queue, id, claimID string) error {
	if claimID != "" && !projection.ValidID(claimID) {
		return &Error{Status: 400, Title: "Unable to delete", Description: "The specified claim does not exist or has expired."}
	}
	if !projection.ValidID(id) {
		return nil
	}
	ev, err := s.event(hlog.MessageDeleted, c, queue, &hlog.MessageDeletedV1{ID: id, ClaimID: claimID})
	if err != nil {
		return err
	}
	_, _, _, err = s.write(ctx, c, ev)
	return err
}

// DeleteMessages deletes messages by id regardless of claims.
func (s *Service) DeleteMessages(ctx context.Context, c Caller, queue string, ids []string) error {
	if len(ids) < 1 || len(ids) > s.cfg.MaxMessagesPerPage {
		return BadRequest("ids parameter should have at least 1 and not greater than %d values.", s.cfg.MaxMessagesPerPage)
	}
	valid := ids[:0:0]
	for _, id := range ids {
		if projection.ValidID(id) {
			valid = append(valid, id)
		}
	}
	if len(valid) == 0 {
		return nil
	}
	ev, err := s.event(hlog.MessagesDeleted, c, queue, &hlog.MessagesDeletedV1{IDs: valid})
	if err != nil {
		return err
	}
	_, _, _, err = s.write(ctx, c, ev)
	return err
}

// PopMessages removes and returns up to n unclaimed messages.
func (s *Service) PopMessages(ctx context.Context, c Caller, queue string, n int64) ([]projection.Message, error) {
	if n < 1 || n > int64(s.cfg.MaxMessagesPerClaim) {
		return nil, BadRequest("Pop value must be at least 1 and may not be greater than %d.", s.cfg.MaxMessagesPerClaim)
	}
	ev, err := s.event(hlog.MessagesPopped, c, queue, &hlog.MessagesPoppedV1{Limit: int(n)})
	if err != nil {
		return nil, err
	}
	_, _, out, err := s.write(ctx, c, ev)
	if err != nil {
		return nil, err
	}
	return out.Messages, nil
}

// Age is the whole seconds from created to now, never negative.
func Age(created, now int64) int64 {
	return max(0, (now-created)/1e9)
}

// ClaimTimes are the optional ttl and grace of a claim request.
type ClaimTimes struct {
	TTL, Grace *int64
}

func (s *Service) claimTimes(t ClaimTimes, checkGrace bool) (int64, int64, error) {
	ttl, grace := s.cfg.DefaultClaimTTL, s.cfg.DefaultClaimGrace
	if t.TTL != nil {
		ttl = *t.TTL
	}
	if t.Grace != nil {
		grace = *t.Grace
	}
	if ttl < 60 || ttl > s.cfg.MaxClaimTTL {
		return 0, 0, BadRequest("The TTL for a claim may not exceed %d seconds, and must be at least 60 seconds long.", s.cfg.MaxClaimTTL)
	}
	if checkGrace && (grace < 60 || grace > s.cfg.MaxClaimGrace) {
		return 0, 0, BadRequest("The grace for a claim may not exceed %d seconds, and must be at least 60 seconds long.", s.cfg.MaxClaimGrace)
	}
	return ttl, grace, nil
}

// CreateClaim claims up to limit messages (0: default 10). An empty
// result (nothing claimable) has an empty claim id.
func (s *Service) CreateClaim(ctx context.Context, c Caller, queue string, limit int64, t ClaimTimes) (string, []projection.Message, error) {
	if limit == 0 {
		limit = 10
	}
	if limit < 1 || limit > int64(s.cfg.MaxMessagesPerClaim) {
		return "", nil, BadRequest("Limit must be at least 1 and may not be greater than %d.", s.cfg.MaxMessagesPerClaim)
	}
	ttl, grace, err := s.claimTimes(t, true)
	if err != nil {
		return "", nil, err
	}
	r, err := s.replicaFor(ctx, c.Project, queue)
	if err != nil {
		return "", nil, err
	}
	pl := &hlog.ClaimCreatedV1{TTL: ttl, Grace: grace, Limit: int(limit)}
	if err := deadLetterSettings(r.Store, c, queue, pl); err != nil {
		return "", nil, err
	}
	if pl.DeadLetterQueue != "" {
		ok, err := s.colocateDeadLetters(ctx, c, queue, pl.DeadLetterQueue)
		if err != nil {
			return "", nil, err
		}
		if !ok {
			s.cfg.Logger.Warn("dead-letter queue lives on another log; messages stay", "project", c.Project, "queue", queue, "dead_letter_queue", pl.DeadLetterQueue)
			pl.MaxClaimCount, pl.DeadLetterQueue, pl.DeadLetterTTL = 0, "", 0
		}
	}
	ev, err := s.event(hlog.ClaimCreated, c, queue, pl)
	if err != nil {
		return "", nil, err
	}
	_, _, out, err := s.writeTo(ctx, c, r, ev)
	if err != nil {
		return "", nil, err
	}
	if out.DeadLettered > 0 {
		// The move is in the log; wait until the dead-letter queue shows
		// it, so the caller reads its own write there too.
		if err := s.waitQueueApplied(ctx, r, c.Project, pl.DeadLetterQueue); err != nil {
			return "", nil, err
		}
	}
	if out.Status == 204 {
		return "", nil, nil
	}
	// Read back what the claim holds now; a message deleted in between by
	// a bulk delete is simply no longer part of it.
	_, msgs, err := r.Store.Claim(c.Project, queue, out.ClaimID, s.Now())
	if err != nil {
		return "", nil, Unavailable("Claim could not be read.", err)
	}
	return out.ClaimID, msgs, nil
}

// deadLetterSettings copies the queue's dead-letter metadata into a claim
// event: _max_claim_count and _dead_letter_queue must both be set (a null
// count means no limit), _dead_letter_queue_messages_ttl is optional.
func deadLetterSettings(store *projection.Store, c Caller, queue string, pl *hlog.ClaimCreatedV1) error {
	raw, exists, err := store.QueueMetadata(c.Project, queue)
	if err != nil {
		return Unavailable("Messages could not be claimed.", err)
	}
	if !exists || !strings.Contains(string(raw), "_dead_letter_queue") {
		return nil
	}
	meta, err := projection.DecodeObject(raw)
	if err != nil {
		return Unavailable("Messages could not be claimed.", err)
	}
	dlq, _ := meta["_dead_letter_queue"].(string)
	max, ok := projection.QueueInt(meta, "_max_claim_count")
	if !ok || max <= 0 || !ValidQueueName(dlq) {
		return nil
	}
	pl.MaxClaimCount, pl.DeadLetterQueue = max, dlq
	pl.DeadLetterTTL, _ = projection.QueueInt(meta, "_dead_letter_queue_messages_ttl")
	return nil
}

// waitQueueApplied waits until replica r applied everything its log holds
// now for queue's partition.
func (s *Service) waitQueueApplied(ctx context.Context, r *projection.Replica, project, queue string) error {
	p := hlog.PartitionFor(hlog.QueueKey(project, queue), r.Log.Partitions())
	end, err := r.Log.End(ctx, p)
	if err != nil || end == 0 {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	if err := r.Projector.WaitApplied(wctx, p, end-1); err != nil {
		return Unavailable("The request was recorded but is not applied yet.", err)
	}
	return nil
}

func claimNotFound(c Caller, queue, id string) *Error {
	return NotFound("Claim %s does not exist in queue %s for project %s", id, QueueName(queue), c.Project)
}

// GetClaim returns a live claim and its messages.
func (s *Service) GetClaim(ctx context.Context, c Caller, queue, id string) (*projection.Claim, []projection.Message, error) {
	store, err := s.storeFor(ctx, c, queue)
	if err != nil {
		return nil, nil, err
	}
	cl, msgs, err := store.Claim(c.Project, queue, id, s.Now())
	if err != nil {
		return nil, nil, Unavailable("Claim could not be read.", err)
	}
	if cl == nil {
		return nil, nil, claimNotFound(c, queue, id)
	}
	return cl, msgs, nil
}

// RenewClaim resets a live claim's expiry to now + ttl.
func (s *Service) RenewClaim(ctx context.Context, c Caller, queue, id string, t ClaimTimes) error {
	ttl, grace, err := s.claimTimes(t, false)
	if err != nil {
		return err
	}
	if !projection.ValidID(id) {
		return claimNotFound(c, queue, id)
	}
	ev, err := s.event(hlog.ClaimRenewed, c, queue, &hlog.ClaimRenewedV1{ClaimID: id, TTL: ttl, Grace: grace})
	if err != nil {
		return err
	}
	_, _, _, err = s.write(ctx, c, ev)
	return err
}

// ReleaseClaim releases a claim's messages; unknown claims are fine.
func (s *Service) ReleaseClaim(ctx context.Context, c Caller, queue, id string) error {
	if !projection.ValidID(id) {
		return nil
	}
	ev, err := s.event(hlog.ClaimReleased, c, queue, &hlog.ClaimReleasedV1{ClaimID: id})
	if err != nil {
		return err
	}
	_, _, _, err = s.write(ctx, c, ev)
	return err
}

// ParseNewMessages reads the "messages" array of a post body (contract
// §2.3.1 step 5): an array of objects, each with a "body" and optional
// integer "ttl" and "delay"; other keys are dropped.
func ParseNewMessages(raw any) ([]NewMessage, *Error) {
	arr, ok := raw.([]any)
	if !ok {
		return nil, ErrBodyDocType
	}
	out := make([]NewMessage, len(arr))
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, ErrBodyDocType
		}
		body, ok := m["body"]
		if !ok {
			return nil, BadBody("Missing \"body\" field.")
		}
		out[i].Body = projection.EncodeJSON(body)
		for _, f := range []struct {
			key string
			dst **int64
		}{{"ttl", &out[i].TTL}, {"delay", &out[i].Delay}} {
			v, ok, err := IntField(m, f.key)
			if err != nil {
				return nil, err
			}
			if ok {
				*f.dst = &v
			}
		}
	}
	return out, nil
}

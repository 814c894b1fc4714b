package ws

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/heraldmq/herald/api"
	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// The hub pushes messages to sockets as the projector applies them: to
// WebSocket subscriptions (Zaqar's notifications, contract §4.7) and to
// streams (Herald's extension: from a position, then live). It follows
// the projection's change feed, so every node pushes what any node
// wrote, in log order per queue.

type hub struct {
	s       *Server
	mu      sync.Mutex
	subs    map[subKey]map[*conn]*wsSub
	streams map[subKey]map[*conn]*stream
}

type wsSub struct {
	id      string
	expires int64 // ns
}

// stream is one socket's stream of a queue. Until its backlog is sent
// it buffers live messages; afterwards it sends those after the last
// position it sent.
type stream struct {
	enc     encoding
	last    position
	backlog bool
	pending []streamMsg
}

// position orders the messages of one queue (one partition): the offset
// of their post and their index in it.
type position struct {
	off int64
	idx int
}

func (p position) after(q position) bool {
	return p.off > q.off || p.off == q.off && p.idx > q.idx
}

type streamMsg struct {
	pos  position
	id   string
	ttl  int64
	at   int64 // post time, ns
	body json.RawMessage
}

// maxStreamBacklog bounds what a stream buffers while it sends its
// backlog; past it the socket is closed as a slow consumer.
const maxStreamBacklog = 10000

func newHub(s *Server) *hub {
	return &hub{s: s, subs: map[subKey]map[*conn]*wsSub{}, streams: map[subKey]map[*conn]*stream{}}
}

// listen starts notifying c of queue k's messages ahead of its
// subscription; false when c already has one there.
func (h *hub) listen(c *conn, k subKey) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[k][c]; ok {
		return false
	}
	if h.subs[k] == nil {
		h.subs[k] = map[*conn]*wsSub{}
	}
	h.subs[k][c] = &wsSub{expires: math.MaxInt64}
	return true
}

func (h *hub) unlisten(c *conn, k subKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	forget(h.subs, k, c)
}

// forget removes c from m[k], and m[k] once empty.
func forget[V any](m map[subKey]map[*conn]V, k subKey, c *conn) {
	delete(m[k], c)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}

// subscribe names the subscription c listens to queue for.
func (h *hub) subscribe(c *conn, project, queue, id string, expires int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := subKey{project, queue}
	if h.subs[k] == nil {
		h.subs[k] = map[*conn]*wsSub{}
	}
	h.subs[k][c] = &wsSub{id: id, expires: expires}
}

// unsubscribe forgets subscription id wherever it is.
func (h *hub) unsubscribe(project, queue, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := subKey{project, queue}
	for c, s := range h.subs[k] {
		if s.id == id {
			forget(h.subs, k, c)
		}
	}
}

func (h *hub) dropConn(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.subs {
		forget(h.subs, k, c)
	}
	for k := range h.streams {
		forget(h.streams, k, c)
	}
}

func (h *hub) unstream(c *conn, k subKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	forget(h.streams, k, c)
}

// applied follows the change feed. It runs on a projector's apply loop
// and never blocks: frames go to bounded queues.
func (h *hub) applied(batch []projection.Applied) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) == 0 && len(h.streams) == 0 {
		return
	}
	for _, a := range batch {
		ev := a.Event
		k := subKey{ev.Project, ev.Queue}
		switch ev.Type {
		case hlog.MessagesPosted:
			subs, streams := h.subs[k], h.streams[k]
			if len(subs) == 0 && len(streams) == 0 {
				continue
			}
			var pl hlog.MessagesPostedV1
			if ev.DecodePayload(&pl) != nil {
				continue
			}
			h.notify(subs, ev, &pl)
			for i, m := range pl.Messages {
				sm := streamMsg{pos: position{a.Offset, i}, id: projection.PositionID(a.Partition, a.Offset, i),
					ttl: m.TTL, at: ev.Time, body: m.Body}
				for c, st := range streams {
					h.sendStream(c, st, ev.Queue, sm)
				}
			}
		case hlog.SubscriptionDeleted:
			var pl hlog.SubscriptionDeletedV1
			if ev.DecodePayload(&pl) == nil {
				for c, s := range h.subs[k] {
					if s.id == pl.ID {
						forget(h.subs, k, c)
					}
				}
			}
		case hlog.QueuePurged:
			var pl hlog.QueuePurgedV1
			if ev.DecodePayload(&pl) == nil && pl.Subscriptions {
				delete(h.subs, k)
			}
		}
	}
}

// notify sends the notification payload of each posted message to the
// WebSocket subscribers of the queue (contract §3.10.2, §4.7).
func (h *hub) notify(subs map[*conn]*wsSub, ev *hlog.Event, pl *hlog.MessagesPostedV1) {
	if len(subs) == 0 {
		return
	}
	frames := [2][][]byte{}
	for i, m := range pl.Messages {
		payload := api.NotificationPayload(ev.Queue, m.TTL, m.Delay, m.Delayed, m.Body)
		for enc := range frames {
			if frames[enc] == nil {
				frames[enc] = make([][]byte, len(pl.Messages))
			}
			b, err := encodeFrame(encoding(enc), payload)
			if err != nil {
				h.s.cfg.Logger.Error("encode notification", "err", err)
				continue // that encoding's subscribers miss this one
			}
			frames[enc][i] = b
		}
	}
	for c, s := range subs {
		if ev.Time >= s.expires {
			continue
		}
		enc := encoding(c.notifyEnc.Load())
		for _, b := range frames[enc] {
			if b == nil {
				continue
			}
			if !c.push(frame{enc: enc, data: b}) {
				break
			}
		}
	}
}

// sendStream sends m to a stream, or buffers it while the backlog goes.
// The hub's lock is held.
func (h *hub) sendStream(c *conn, st *stream, queue string, m streamMsg) {
	if st.backlog {
		if len(st.pending) >= maxStreamBacklog {
			c.close(websocket.ClosePolicyViolation, "Slow consumer: too many frames waiting.")
			return
		}
		st.pending = append(st.pending, m)
		return
	}
	if !m.pos.after(st.last) {
		return
	}
	st.last = m.pos
	b, err := encodeFrame(st.enc, streamFrame(queue, m, h.s.svc.Now()))
	if err != nil {
		h.s.cfg.Logger.Error("encode stream frame", "err", err)
		return
	}
	c.push(frame{enc: st.enc, data: b})
}

func streamFrame(queue string, m streamMsg, now int64) map[string]any {
	return map[string]any{"Message_Type": "Notification", "queue_name": api.QueueName(queue), "message_id": m.id,
		"ttl": m.ttl, "age": api.Age(m.at, now), "body": m.body}
}

// streamSubscribe starts a stream of the queue's messages after the
// message "after" (or from now on), in the encoding of this request. The
// stream registers before it reads its backlog and buffers what arrives
// meanwhile; the answer, the backlog and the buffer then go out in that
// order, each message only if it follows the last one sent: no gap, no
// duplicate. The backlog waits for room in the socket's queue instead of
// overflowing it.
func (c *conn) streamSubscribe(ctx context.Context, r *request, q string) map[string]any {
	h := c.s.hub
	k := subKey{r.caller.Project, q}
	after := r.str("after")
	var last position
	if after != "" {
		_, off, idx, ok := projection.ParseID(after)
		if !ok {
			return apiError(r, api.BadRequest("The value of \"after\" must be a message id."))
		}
		last = position{off, idx}
	}
	st := &stream{enc: r.enc, backlog: true}
	h.mu.Lock()
	if h.streams[k] == nil {
		h.streams[k] = map[*conn]*stream{}
	}
	h.streams[k][c] = st
	h.mu.Unlock()

	if after == "" {
		// From now on: after everything the queue's partition applied.
		end, err := c.s.svc.AppliedEnd(ctx, r.caller, q)
		if err != nil {
			h.unstream(c, k)
			return apiError(r, err)
		}
		last = position{end - 1, 1 << 30}
	}
	send := func(msgs []streamMsg) bool {
		for _, m := range msgs {
			if !m.pos.after(last) {
				continue
			}
			b, err := encodeFrame(st.enc, streamFrame(q, m, c.s.svc.Now()))
			if err != nil {
				c.s.cfg.Logger.Error("encode stream frame", "err", err)
				continue
			}
			select {
			case c.send <- frame{enc: st.enc, data: b}:
				last = m.pos
			case <-c.done:
				return false
			}
		}
		return true
	}
	answer, err := encodeFrame(r.enc, response(r, 200, map[string]any{"stream_id": c.id + "/" + q, "queue_name": q}))
	if err != nil {
		h.unstream(c, k)
		return apiError(r, err)
	}
	select {
	case c.send <- frame{enc: r.enc, data: answer}:
	case <-c.done:
		return nil
	}
	if after != "" {
		// The backlog goes page by page, each waiting for room in the
		// socket's queue: memory holds a page, not the queue.
		errClosed := errors.New("connection closed")
		err := c.s.svc.MessagesAfter(ctx, r.caller, q, after, func(page []projection.Message) error {
			msgs := make([]streamMsg, len(page))
			for i, m := range page {
				_, off, idx, _ := projection.ParseID(m.ID)
				msgs[i] = streamMsg{pos: position{off, idx}, id: m.ID, ttl: m.TTL, at: m.Created, body: m.Body}
			}
			if !send(msgs) {
				return errClosed
			}
			return nil
		})
		if err != nil {
			h.unstream(c, k)
			if !errors.Is(err, errClosed) {
				c.s.cfg.Logger.Warn("stream backlog failed", "queue", q, "err", err)
				c.close(websocket.CloseInternalServerErr, "Stream backlog could not be read.")
			}
			return nil
		}
	}
	for {
		h.mu.Lock()
		pending := st.pending
		st.pending = nil
		if len(pending) == 0 {
			st.backlog, st.last = false, last
			h.mu.Unlock()
			return nil
		}
		h.mu.Unlock()
		if !send(pending) {
			return nil
		}
	}
}

package ws

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldmq/herald/api"
)

// Close codes Herald uses besides the standard ones.
const (
	// closeAuthExpired: the authenticated token expired (Zaqar's 4003).
	closeAuthExpired = 4003
)

// frame is one frame queued for the writer; a close frame ends the
// connection after it is sent.
type frame struct {
	enc   encoding
	data  []byte
	close *websocket.CloseError
}

// conn is one WebSocket connection.
type conn struct {
	s    *Server
	ws   *websocket.Conn
	id   string
	host string // this node in subscriber URLs: host:port

	send      chan frame
	done      chan struct{}
	closeOnce sync.Once
	closeErr  *websocket.CloseError // why done was closed; set before it

	// While requests run, pushed frames wait in held and follow the next
	// answer: a client reading "the next frame" after a request (as
	// python-zaqarclient does) gets the answer, not a notification its
	// own post caused.
	hmu      sync.Mutex
	inflight int // requests read and not yet answered
	held     []frame

	// answers carries each request's answer, in request order, from the
	// read loop to the answer loop; pending counts those not yet sent.
	answers chan reply
	pending sync.WaitGroup

	// notifyEnc is the encoding of notifications: that of the last
	// successful subscription_create over this connection (contract §4.7).
	notifyEnc atomic.Int32

	mu      sync.Mutex
	subs    map[subKey]string // WebSocket subscriptions made here: queue → id
	authed  *api.Identity     // keystone mode: the authenticated token's identity
	expires *time.Timer       // closes the connection when the token expires
}

// expireAt (re)arms the connection's one expiry timer: at the token's
// expiry it is closed with 4003 (contract §4.4). A zero time never
// expires.
func (c *conn) expireAt(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expires != nil {
		c.expires.Stop()
		c.expires = nil
	}
	if t.IsZero() {
		return
	}
	c.expires = time.AfterFunc(time.Until(t), func() {
		c.close(closeAuthExpired, "Authentication expired.")
	})
}

type subKey struct{ project, queue string }

func newConn(s *Server, wsc *websocket.Conn, r *http.Request) *conn {
	host := s.cfg.NotifyHost
	if addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(addr.String()); err == nil {
			host = net.JoinHostPort(host, port)
		}
	}
	return &conn{s: s, ws: wsc, id: newConnID(), host: host,
		send: make(chan frame, s.cfg.SendQueue), answers: make(chan reply, s.cfg.Pipeline),
		done: make(chan struct{}), subs: map[subKey]string{}}
}

// serve runs the connection: a writer goroutine, an answer goroutine, and
// the read loop here.
func (c *conn) serve() {
	var wg sync.WaitGroup
	wg.Go(c.writeLoop)
	wg.Go(c.answerLoop)
	c.readLoop()
	close(c.answers)
	c.close(websocket.CloseNormalClosure, "")
	wg.Wait()
	c.ws.Close()
	c.cleanup()
}

// reply is the answer to one request: known at once, or that of a post
// whose write is on its way (a pipelined message_post).
type reply struct {
	enc  encoding
	resp map[string]any // nil: nothing to send (stream_subscribe answered)
	post *pendingPost
}

func (c *conn) readLoop() {
	c.ws.SetReadLimit(c.s.cfg.MaxFrame)
	pongWait := 2 * c.s.cfg.PingInterval
	c.ws.SetReadDeadline(time.Now().Add(pongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(pongWait))
	})
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.close(websocket.CloseMessageTooBig, "Frame too large.")
			}
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(pongWait))
		enc := encJSON
		if mt == websocket.BinaryMessage {
			enc = encMsgpack
		}
		c.begin()
		rep := c.safeRequest(enc, data)
		c.pending.Add(1)
		// Answers wait for room in the queue: a client that sends but does
		// not read simply stops being read.
		select {
		case c.answers <- rep:
		case <-c.done:
			if rep.post != nil {
				rep.post.cancel()
				c.finishPost(rep.post)
			}
			c.pending.Done()
			return
		}
	}
}

// safeRequest runs one request frame (see request) and answers 500
// instead of taking the process (and the connection's teardown) down with
// a panic.
func (c *conn) safeRequest(enc encoding, data []byte) (rep reply) {
	defer func() {
		if v := recover(); v != nil {
			c.s.cfg.Logger.Error("panic in WebSocket action", "panic", v)
			rep = reply{enc: enc, resp: errorResponse(nil, 500, "Unexpected error.")}
		}
	}()
	return c.request(enc, data)
}

// drain waits until every request read so far is answered: an action
// other than message_post runs only then, so it sees the connection's
// earlier posts (read-your-writes) and its answer follows theirs.
func (c *conn) drain() { c.pending.Wait() }

// answerLoop sends the answers in request order, waiting for those of
// pipelined posts.
func (c *conn) answerLoop() {
	for rep := range c.answers {
		resp := rep.resp
		if rep.post != nil {
			select {
			case <-c.done:
				// Nobody will read the answer: stop waiting for the apply
				// (the log's own answer is still awaited).
				rep.post.cancel()
			default:
			}
			resp = c.finishPost(rep.post)
		}
		if resp != nil {
			out, err := encodeFrame(rep.enc, resp)
			if err != nil {
				c.s.cfg.Logger.Error("encode answer", "err", err)
				out, _ = encodeFrame(rep.enc, errorResponse(nil, 500, "Unexpected error."))
			}
			select {
			case c.send <- frame{enc: rep.enc, data: out}:
			case <-c.done:
			}
		}
		c.pending.Done()
		c.end()
	}
}

// begin and end bracket a request, from reading it to sending its answer;
// end releases the held frames behind the answer.
func (c *conn) begin() {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	c.inflight++
}

func (c *conn) end() {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	c.inflight--
	for _, f := range c.held {
		if !c.enqueue(f) {
			break
		}
	}
	c.held = nil
}

func (c *conn) writeLoop() {
	ping := time.NewTicker(c.s.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case f := <-c.send:
			c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
			if f.close != nil {
				c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(f.close.Code, f.close.Text))
				c.ws.Close() // ends the read loop
				c.close(f.close.Code, f.close.Text)
				return
			}
			mt := websocket.TextMessage
			if f.enc == encMsgpack {
				mt = websocket.BinaryMessage
			}
			if err := c.ws.WriteMessage(mt, f.data); err != nil {
				c.broken()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.cfg.WriteTimeout)); err != nil {
				c.broken()
				return
			}
		case <-c.done:
			// Say why, then go. A slow consumer gets its close frame once
			// it reads what is already on the wire, or never.
			if cl := c.closeErr; cl != nil {
				c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(cl.Code, cl.Text), time.Now().Add(c.s.cfg.WriteTimeout))
			}
			c.ws.Close()
			return
		}
	}
}

// broken ends a connection whose socket failed: nothing more can be sent,
// so everything waiting to send stops.
func (c *conn) broken() {
	c.ws.Close() // ends the read loop
	c.close(websocket.CloseAbnormalClosure, "")
}

// push queues a server-initiated frame (a notification). It never blocks:
// a socket whose queue is full is closed as a slow consumer. While
// requests run it holds the frame back until the next answer is queued.
func (c *conn) push(f frame) bool {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	if c.inflight > 0 {
		if len(c.held) >= c.s.cfg.SendQueue {
			c.close(websocket.ClosePolicyViolation, "Slow consumer: too many frames waiting.")
			return false
		}
		c.held = append(c.held, f)
		return true
	}
	return c.enqueue(f)
}

// enqueue queues f without blocking, closing a socket whose queue is full.
func (c *conn) enqueue(f frame) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.send <- f:
		return true
	default:
		c.close(websocket.ClosePolicyViolation, "Slow consumer: too many frames waiting.")
		return false
	}
}

// close ends the connection with code and reason, once.
func (c *conn) close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.closeErr = &websocket.CloseError{Code: code, Text: reason}
		close(c.done)
	})
}

// cleanup deletes the subscriptions made through the connection and
// forgets its streams (contract §4.7).
func (c *conn) cleanup() {
	c.expireAt(time.Time{})
	c.s.hub.dropConn(c)
	c.mu.Lock()
	subs := c.subs
	c.subs = map[subKey]string{}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for k, id := range subs {
		caller := api.Caller{Project: k.project, ClientID: c.id}
		if err := c.s.svc.DeleteSubscription(ctx, caller, k.queue, id); err != nil {
			c.s.cfg.Logger.Warn("delete WebSocket subscription", "project", k.project, "queue", k.queue, "id", id, "err", err)
		}
	}
}

// subscriberURL is the subscriber of WebSocket subscriptions made here.
func (c *conn) subscriberURL() string { return "http://" + c.host + "/" + c.id }

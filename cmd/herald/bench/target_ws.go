package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsTarget speaks Zaqar's v2 WebSocket API with JSON text frames
// (contract §4). Zaqar answers each request frame with exactly one
// response frame, in order, and may interleave notification frames,
// which carry no "request" and are skipped.
type wsTarget struct {
	url      string
	project  string
	auth     string // X-Auth-Token of the authenticate frame; empty sends none
	pipeline int
	timeout  time.Duration
}

func newWSTarget(c *Config) (*wsTarget, error) {
	u, err := url.Parse(c.WSURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, usageErr("--ws-url must be a ws:// or wss:// URL, not %q", c.WSURL)
	}
	return &wsTarget{url: c.WSURL, project: c.Project, auth: c.WSAuth, pipeline: c.WSPipeline, timeout: c.Timeout}, nil
}

func (t *wsTarget) Dial(ctx context.Context, clientID string) (Conn, error) {
	c := &wsConn{t: t, clientID: clientID}
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (t *wsTarget) Setup(ctx context.Context, queues []string) error {
	return t.eachQueue(ctx, queues, "queue_create", 201, 204)
}

func (t *wsTarget) Clean(ctx context.Context, queues []string) error {
	return t.eachQueue(ctx, queues, "queue_delete", 204)
}

func (t *wsTarget) eachQueue(ctx context.Context, queues []string, action string, want ...int) error {
	conn, err := t.Dial(ctx, randomUUID())
	if err != nil {
		return err
	}
	defer conn.Close()
	c := conn.(*wsConn)
	for _, q := range queues {
		resp, err := c.roundTrip(ctx, action, map[string]any{"queue_name": q})
		if err == nil {
			err = resp.expect(want...)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", action, q, err)
		}
	}
	return nil
}

type wsRequest struct {
	Action  string            `json:"action"`
	Headers map[string]string `json:"headers"`
	Body    any               `json:"body,omitempty"`
}

type wsResponse struct {
	Request json.RawMessage `json:"request"` // absent in notification frames
	Body    json.RawMessage `json:"body"`
	Headers struct {
		Status int `json:"status"`
	} `json:"headers"`
}

func (r *wsResponse) expect(want ...int) error {
	for _, w := range want {
		if r.Headers.Status == w {
			return nil
		}
	}
	return &StatusError{Status: r.Headers.Status, Body: string(r.Body)}
}

// wsCall is a request sent and not yet answered.
type wsCall struct {
	sent time.Time
	done func(sent time.Time, resp *wsResponse, err error)
}

// wsLink is one WebSocket connection. The worker's goroutine writes;
// the link's reader goroutine reads and completes the calls in order.
// A call is completed exactly once, by whoever receives it from calls:
// the reader, or the worker once gone is closed.
type wsLink struct {
	ws    *websocket.Conn
	slots chan struct{} // one token per call in calls; capacity = pipeline depth
	calls chan *wsCall  // sent, unanswered, in order; same capacity
	gone  chan struct{} // closed when the reader has ended

	mu    sync.Mutex
	cause error // why the link was closed, given to the calls it fails
}

// abort closes the link; its reader fails the pending calls with cause.
func (l *wsLink) abort(cause error) {
	l.mu.Lock()
	if l.cause == nil {
		l.cause = cause
	}
	l.mu.Unlock()
	l.ws.Close()
}

func (l *wsLink) read() {
	defer close(l.gone)
	var err error
	for {
		var data []byte
		if _, data, err = l.ws.ReadMessage(); err != nil {
			break
		}
		var resp wsResponse
		if err = json.Unmarshal(data, &resp); err != nil {
			err = fmt.Errorf("%w: undecodable frame %.100q", errBadAnswer, data)
			break
		}
		if resp.Request == nil {
			continue // a notification
		}
		select {
		case call := <-l.calls:
			<-l.slots
			call.done(call.sent, &resp, nil)
		default:
			err = fmt.Errorf("%w: a response to no request: %.100q", errBadAnswer, data)
		}
		if err != nil {
			break
		}
	}
	l.abort(err)
	l.failPending()
}

// failPending completes every call still waiting with the link's cause.
func (l *wsLink) failPending() {
	l.mu.Lock()
	cause := l.cause
	l.mu.Unlock()
	for {
		select {
		case call := <-l.calls:
			<-l.slots
			call.done(call.sent, nil, cause)
		default:
			return
		}
	}
}

// wsConn is one worker's WebSocket client; it reconnects after its link
// broke.
type wsConn struct {
	t        *wsTarget
	clientID string
	link     *wsLink        // nil when disconnected
	inflight sync.WaitGroup // PostAsync calls whose done has not run
}

func (c *wsConn) connect(ctx context.Context) error {
	d := websocket.Dialer{HandshakeTimeout: c.t.timeout} // no Proxy: talk to --ws-url only
	ws, hresp, err := d.DialContext(ctx, c.t.url, nil)
	if errors.Is(err, websocket.ErrBadHandshake) && hresp != nil {
		return &StatusError{Status: hresp.StatusCode, Body: "WebSocket handshake refused"}
	}
	if err != nil {
		return err
	}
	c.link = &wsLink{ws: ws, slots: make(chan struct{}, c.t.pipeline),
		calls: make(chan *wsCall, c.t.pipeline), gone: make(chan struct{})}
	go c.link.read()
	if c.t.auth == "" {
		return nil
	}
	// Zaqar without an auth strategy never answers authenticate, hence
	// only with --ws-auth.
	resp, err := c.roundTripWith(ctx, wsRequest{Action: "authenticate",
		Headers: map[string]string{"X-Auth-Token": c.t.auth, "X-Project-ID": c.t.project}})
	if err == nil {
		err = resp.expect(200)
	}
	if err != nil {
		c.disconnect(err)
		return fmt.Errorf("authenticate: %w", err)
	}
	return nil
}

// ensure reconnects when the link broke.
func (c *wsConn) ensure(ctx context.Context) error {
	if c.link != nil {
		select {
		case <-c.link.gone:
			c.disconnect(nil)
		default:
			return nil
		}
	}
	return c.connect(ctx)
}

// disconnect closes the link (if cause is set), waits for its reader and
// fails what it left pending.
func (c *wsConn) disconnect(cause error) {
	if c.link == nil {
		return
	}
	if cause != nil {
		c.link.abort(cause)
	}
	<-c.link.gone
	c.link.failPending()
	c.link = nil
}

// send queues call and writes the frame. It returns an error, and call
// is never completed, only when the call could not be queued; a failed
// write completes the call with the error.
func (c *wsConn) send(ctx context.Context, call *wsCall, req wsRequest) error {
	frame, err := json.Marshal(req)
	if err != nil {
		return err
	}
	l := c.link
	select {
	case l.slots <- struct{}{}: // waits while the pipeline is full
	case <-ctx.Done():
		// The oldest call got no answer within the timeout.
		c.disconnect(errTimeout)
		return errTimeout
	case <-l.gone:
		l.mu.Lock()
		cause := l.cause
		l.mu.Unlock()
		c.disconnect(nil)
		return cause
	}
	call.sent = time.Now()
	l.calls <- call // never blocks: each call in calls holds a slot
	if dl, ok := ctx.Deadline(); ok {
		l.ws.SetWriteDeadline(dl)
	}
	if err := l.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		c.disconnect(err) // completes call with err
	}
	return nil
}

func (c *wsConn) request(action, queue string, body map[string]any) wsRequest {
	if body == nil {
		body = map[string]any{}
	}
	body["queue_name"] = queue
	return wsRequest{Action: action, Headers: map[string]string{"Client-ID": c.clientID, "X-Project-ID": c.t.project}, Body: body}
}

func (c *wsConn) roundTrip(ctx context.Context, action string, body map[string]any) (*wsResponse, error) {
	q, _ := body["queue_name"].(string)
	return c.roundTripWith(ctx, c.request(action, q, body))
}

// roundTripWith sends one request and waits for its response.
func (c *wsConn) roundTripWith(ctx context.Context, req wsRequest) (*wsResponse, error) {
	if err := c.ensure(ctx); err != nil {
		return nil, err
	}
	type result struct {
		resp *wsResponse
		err  error
	}
	res := make(chan result, 1)
	call := &wsCall{done: func(_ time.Time, resp *wsResponse, err error) { res <- result{resp, err} }}
	l := c.link
	if err := c.send(ctx, call, req); err != nil {
		return nil, err
	}
	select {
	case r := <-res:
		return r.resp, r.err
	case <-ctx.Done():
		c.disconnect(errTimeout)
	case <-l.gone:
		c.disconnect(nil)
	}
	r := <-res
	return r.resp, r.err
}

func (c *wsConn) Close() error {
	if c.link != nil {
		c.link.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.disconnect(errors.New("connection closed"))
	}
	return nil
}

func postBody(bodies [][]byte) map[string]any {
	msgs := make([]map[string]json.RawMessage, len(bodies))
	for i, b := range bodies {
		msgs[i] = map[string]json.RawMessage{"body": b}
	}
	return map[string]any{"messages": msgs}
}

func checkPost(resp *wsResponse, n int) error {
	if err := resp.expect(201); err != nil {
		return err
	}
	var v struct {
		IDs []string `json:"message_ids"`
	}
	if err := json.Unmarshal(resp.Body, &v); err != nil || len(v.IDs) != n {
		return fmt.Errorf("%w: post of %d messages answered %.100q", errBadAnswer, n, resp.Body)
	}
	return nil
}

func (c *wsConn) Post(ctx context.Context, queue string, bodies [][]byte) error {
	resp, err := c.roundTripWith(ctx, c.request("message_post", queue, postBody(bodies)))
	if err != nil {
		return err
	}
	return checkPost(resp, len(bodies))
}

func (c *wsConn) PostAsync(ctx context.Context, queue string, bodies [][]byte, done func(time.Time, error)) error {
	if err := c.ensure(ctx); err != nil {
		return err
	}
	n := len(bodies)
	c.inflight.Add(1)
	call := &wsCall{done: func(sent time.Time, resp *wsResponse, err error) {
		if err == nil {
			err = checkPost(resp, n)
		}
		done(sent, err)
		c.inflight.Done()
	}}
	if err := c.send(ctx, call, c.request("message_post", queue, postBody(bodies))); err != nil {
		c.inflight.Done()
		return err
	}
	return nil
}

func (c *wsConn) Drain(ctx context.Context) {
	drained := make(chan struct{})
	go func() {
		c.inflight.Wait()
		close(drained)
	}()
	select {
	case <-drained:
		return
	case <-ctx.Done():
		c.disconnect(errTimeout)
	}
	<-drained
}

func (c *wsConn) Claim(ctx context.Context, queue string, limit int) ([]Delivery, error) {
	resp, err := c.roundTripWith(ctx, c.request("claim_create", queue,
		map[string]any{"limit": limit, "ttl": claimTTL, "grace": claimGrace}))
	if err != nil {
		return nil, err
	}
	if resp.Headers.Status == 204 {
		return nil, nil
	}
	if err := resp.expect(201); err != nil {
		return nil, err
	}
	var v struct {
		ClaimID  string `json:"claim_id"`
		Messages []struct {
			ID   string          `json:"id"`
			Body json.RawMessage `json:"body"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(resp.Body, &v); err != nil || v.ClaimID == "" {
		return nil, fmt.Errorf("%w: claim answered %.100q", errBadAnswer, resp.Body)
	}
	ds := make([]Delivery, len(v.Messages))
	for i, m := range v.Messages {
		ds[i] = Delivery{ID: m.ID, ClaimID: v.ClaimID, Body: m.Body}
	}
	return ds, nil
}

func (c *wsConn) Delete(ctx context.Context, queue string, d Delivery) error {
	resp, err := c.roundTripWith(ctx, c.request("message_delete", queue,
		map[string]any{"message_id": d.ID, "claim_id": d.ClaimID}))
	if err != nil {
		return err
	}
	return resp.expect(204)
}

func (c *wsConn) DeleteMany(ctx context.Context, queue string, ds []Delivery) error {
	ids := make([]string, len(ds))
	var cids []string
	for i, d := range ds {
		ids[i] = d.ID
		if len(cids) == 0 || cids[len(cids)-1] != d.ClaimID {
			cids = append(cids, d.ClaimID)
		}
	}
	resp, err := c.roundTripWith(ctx, c.request("message_delete_many", queue,
		map[string]any{"message_ids": ids, "claim_ids": cids}))
	if err != nil {
		return err
	}
	return resp.expect(204)
}

// List reads the head of the queue: Zaqar's WebSocket message_list has no
// paging (contract §4.5), so there is never a next cursor.
func (c *wsConn) List(ctx context.Context, queue, _ string) (int, string, error) {
	resp, err := c.roundTripWith(ctx, c.request("message_list", queue,
		map[string]any{"limit": listLimit, "echo": true}))
	if err != nil {
		return 0, "", err
	}
	if err := resp.expect(200); err != nil {
		return 0, "", err
	}
	var v struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(resp.Body, &v); err != nil {
		return 0, "", fmt.Errorf("%w: list answered %.100q", errBadAnswer, resp.Body)
	}
	return len(v.Messages), "", nil
}

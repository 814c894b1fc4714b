package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// restTarget speaks Zaqar v2 REST (contract §2.3, §2.4).
type restTarget struct {
	root      string // server root, no trailing slash, no /v2
	project   string
	keepAlive bool
	timeout   time.Duration
}

func newRESTTarget(c *Config) (*restTarget, error) {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErr("--url must be an http:// or https:// URL, not %q", c.URL)
	}
	root := strings.TrimSuffix(strings.TrimSuffix(c.URL, "/"), "/v2")
	return &restTarget{root: root, project: c.Project, keepAlive: c.KeepAlive, timeout: c.Timeout}, nil
}

func (t *restTarget) Dial(_ context.Context, clientID string) (Conn, error) {
	tr := &http.Transport{
		Proxy:               nil, // talk to --url only, whatever the environment says
		DialContext:         (&net.Dialer{Timeout: t.timeout, KeepAlive: 30 * time.Second}).DialContext,
		DisableKeepAlives:   !t.keepAlive,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
	}
	hc := &http.Client{Transport: tr,
		// A redirect is an answer like any other: follow none, so the
		// bench talks to --url only.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &restConn{t: t, clientID: clientID, hc: hc}, nil
}

func (t *restTarget) Setup(ctx context.Context, queues []string) error {
	return t.eachQueue(ctx, queues, http.MethodPut)
}

func (t *restTarget) Clean(ctx context.Context, queues []string) error {
	return t.eachQueue(ctx, queues, http.MethodDelete)
}

func (t *restTarget) eachQueue(ctx context.Context, queues []string, method string) error {
	conn, _ := t.Dial(ctx, randomUUID())
	defer conn.Close()
	c := conn.(*restConn)
	for _, q := range queues {
		status, _, body, err := c.do(ctx, method, queuePath(q), nil)
		if err != nil {
			return fmt.Errorf("%s queue %s: %w", method, q, err)
		}
		if status != http.StatusCreated && status != http.StatusNoContent {
			return fmt.Errorf("%s queue %s: %w", method, q, &StatusError{Status: status, Body: string(body)})
		}
	}
	return nil
}

func queuePath(q string) string { return "/v2/queues/" + url.PathEscape(q) }

// restConn is one worker's HTTP client: its own transport, so its own
// connection (or a new one per request without keep-alive).
type restConn struct {
	t        *restTarget
	clientID string
	hc       *http.Client
	buf      bytes.Buffer
}

func (c *restConn) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// do sends one request (path from the server root) and reads the whole
// answer, so the connection can be reused.
func (c *restConn) do(ctx context.Context, method, path string, body []byte) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.t.root+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Client-ID", c.clientID)
	req.Header.Set("X-Project-ID", c.t.project)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

// expect turns an answer with another status than want into a
// *StatusError.
func expect(status int, body []byte, want ...int) error {
	for _, w := range want {
		if status == w {
			return nil
		}
	}
	const maxBody = 200
	if len(body) > maxBody {
		body = body[:maxBody]
	}
	return &StatusError{Status: status, Body: strings.TrimSpace(string(body))}
}

func (c *restConn) Post(ctx context.Context, queue string, bodies [][]byte) error {
	c.buf.Reset()
	c.buf.WriteString(`{"messages":[`)
	for i, b := range bodies {
		if i > 0 {
			c.buf.WriteByte(',')
		}
		c.buf.WriteString(`{"body":`)
		c.buf.Write(b)
		c.buf.WriteByte('}')
	}
	c.buf.WriteString(`]}`)
	status, _, body, err := c.do(ctx, http.MethodPost, queuePath(queue)+"/messages", c.buf.Bytes())
	if err != nil {
		return err
	}
	if err := expect(status, body, http.StatusCreated); err != nil {
		return err
	}
	var v struct {
		Resources []string `json:"resources"`
	}
	if err := json.Unmarshal(body, &v); err != nil || len(v.Resources) != len(bodies) {
		return fmt.Errorf("%w: post of %d messages answered %.100q", errBadAnswer, len(bodies), body)
	}
	return nil
}

// restMessage is a message in a claim or list answer.
type restMessage struct {
	ID   string          `json:"id"`
	Href string          `json:"href"`
	Body json.RawMessage `json:"body"`
}

var claimBody = []byte(fmt.Sprintf(`{"ttl":%d,"grace":%d}`, claimTTL, claimGrace))

func (c *restConn) Claim(ctx context.Context, queue string, limit int) ([]Delivery, error) {
	status, h, body, err := c.do(ctx, http.MethodPost, fmt.Sprintf("%s/claims?limit=%d", queuePath(queue), limit), claimBody)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNoContent {
		return nil, nil
	}
	if err := expect(status, body, http.StatusCreated); err != nil {
		return nil, err
	}
	var v struct {
		Messages []restMessage `json:"messages"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("%w: claim answered %.100q", errBadAnswer, body)
	}
	// The claim id is the last segment of Location; clients also take it
	// from the text after the last '=' of a message href (contract §2.4.1).
	loc := h.Get("Location")
	loc = loc[strings.LastIndexByte(loc, '/')+1:]
	ds := make([]Delivery, len(v.Messages))
	for i, m := range v.Messages {
		claim := loc
		if j := strings.LastIndexByte(m.Href, '='); j >= 0 {
			claim = m.Href[j+1:]
		}
		if m.ID == "" || claim == "" {
			return nil, fmt.Errorf("%w: claimed message without id or claim id: %.100q", errBadAnswer, body)
		}
		ds[i] = Delivery{ID: m.ID, ClaimID: claim, Body: m.Body}
	}
	return ds, nil
}

func (c *restConn) Delete(ctx context.Context, queue string, d Delivery) error {
	path := queuePath(queue) + "/messages/" + url.PathEscape(d.ID) + "?claim_id=" + url.QueryEscape(d.ClaimID)
	status, _, body, err := c.do(ctx, http.MethodDelete, path, nil)
	if err != nil {
		return err
	}
	return expect(status, body, http.StatusNoContent)
}

// DeleteMany uses the bulk delete. Zaqar ignores claim_ids there unless
// message_delete_with_claim_id is on (contract §2.3.4); they are sent for
// servers that check them.
func (c *restConn) DeleteMany(ctx context.Context, queue string, ds []Delivery) error {
	ids := make([]string, len(ds))
	var cids []string
	last := ""
	for i, d := range ds {
		ids[i] = url.QueryEscape(d.ID)
		if d.ClaimID != last {
			cids = append(cids, url.QueryEscape(d.ClaimID))
			last = d.ClaimID
		}
	}
	path := queuePath(queue) + "/messages?ids=" + strings.Join(ids, ",") + "&claim_ids=" + strings.Join(cids, ",")
	status, _, body, err := c.do(ctx, http.MethodDelete, path, nil)
	if err != nil {
		return err
	}
	return expect(status, body, http.StatusNoContent)
}

// List follows the next links of Zaqar's message list, relative paths
// starting with /v2/ (contract §1.8).
func (c *restConn) List(ctx context.Context, queue, cursor string) (int, string, error) {
	path := cursor
	if path == "" {
		path = fmt.Sprintf("%s/messages?limit=%d&echo=true", queuePath(queue), listLimit)
	}
	status, _, body, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return 0, "", err
	}
	if err := expect(status, body, http.StatusOK); err != nil {
		return 0, "", err
	}
	var v struct {
		Messages []restMessage `json:"messages"`
		Links    []struct {
			Rel  string `json:"rel"`
			Href string `json:"href"`
		} `json:"links"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return 0, "", fmt.Errorf("%w: list answered %.100q", errBadAnswer, body)
	}
	next := ""
	for _, l := range v.Links {
		if l.Rel == "next" && strings.HasPrefix(l.Href, "/v2/") {
			next = l.Href
		}
	}
	return len(v.Messages), next, nil
}

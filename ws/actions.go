package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/heraldmq/herald/api"
	"github.com/heraldmq/herald/projection"
)

// request is a decoded request frame.
type request struct {
	action     string
	hasAction  bool
	headers    map[string]any
	hasHeaders bool
	body       map[string]any
	rawBody    any
	hasBody    bool
	enc        encoding
	caller     api.Caller
}

// echo is the "request" member of every answer (contract §4.2).
func (r *request) echo() map[string]any {
	out := map[string]any{"action": nil, "body": map[string]any{}, "headers": map[string]any{}, "api": "v2"}
	if r == nil {
		return out
	}
	if r.hasAction {
		out["action"] = r.action
	}
	if r.hasBody && r.rawBody != nil {
		out["body"] = r.rawBody
	}
	if r.hasHeaders && r.headers != nil {
		out["headers"] = r.headers
	}
	return out
}

func response(r *request, status int, body any) map[string]any {
	return map[string]any{"request": r.echo(), "body": body, "headers": map[string]any{"status": status}}
}

func errorResponse(r *request, status int, text string) map[string]any {
	return response(r, status, map[string]any{"error": text})
}

// apiError renders an api.Error the way Zaqar's WebSocket handlers do:
// {"exception": text, "error": summary-or-null}.
func apiError(r *request, err error) map[string]any {
	var e *api.Error
	if !errors.As(err, &e) {
		e = api.AsError(err, "The request could not be completed.")
	}
	var summary any
	switch {
	case e.Status >= 500:
		summary = e.Description
	case e.Status == 404 && strings.HasPrefix(r.action, "claim_"):
		summary = e.Description
	}
	text := e.Description
	if text == "" {
		text = e.Title
	}
	return response(r, e.Status, map[string]any{"exception": text, "error": summary})
}

// request runs one request frame (contract §4.3). A message_post is
// started and answered later, when applied; any other action first waits
// until every earlier request is answered.
func (c *conn) request(enc encoding, data []byte) reply {
	v, err := decodeFrame(enc, data)
	if err != nil {
		return reply{enc: enc, resp: errorResponse(nil, 400, err.Error())}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return reply{enc: enc, resp: errorResponse(nil, 400, "Unexpected body type. Expected dict or dict like.")}
	}
	r := &request{enc: enc}
	r.action, r.hasAction = obj["action"].(string)
	r.headers, r.hasHeaders = obj["headers"].(map[string]any)
	if h, present := obj["headers"]; present && h != nil && !r.hasHeaders {
		r.hasHeaders = true // present but not an object: the schema refuses it
	}
	r.rawBody, r.hasBody = obj["body"]
	r.body, _ = r.rawBody.(map[string]any)
	name := r.action
	if !r.hasAction {
		name = "None"
	}
	answer := func(resp map[string]any) reply { return reply{enc: enc, resp: resp} }
	a, known := actions[name]
	if !known {
		return answer(errorResponse(r, 400, name+" is not a valid action"))
	}
	if !a.valid(r.headers, r.hasHeaders, r.rawBody, r.hasBody && r.rawBody != nil) {
		return answer(errorResponse(r, 400, "Schema validation failed."))
	}
	if unimplemented(name) {
		return answer(errorResponse(r, 400, name+" is not a valid action"))
	}
	if name != "message_post" {
		c.drain()
	}
	if name == "authenticate" {
		return answer(c.authenticate(r))
	}
	if e := c.gate(r); e != nil {
		return answer(e)
	}
	r.caller = api.Caller{Project: header(r, "X-Project-ID"), ClientID: header(r, "Client-ID")}
	if id, ok := api.NormalizeClientID(r.caller.ClientID); ok {
		r.caller.ClientID = id
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	if name == "message_post" {
		p := c.post(ctx, r, r.str("queue_name"))
		if p.resp != nil {
			cancel()
			return answer(p.resp)
		}
		p.cancel = cancel
		return reply{enc: enc, post: p}
	}
	defer cancel()
	return answer(c.dispatch(ctx, r))
}

func header(r *request, name string) string {
	s, _ := r.headers[name].(string)
	return s
}

func (r *request) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

func (r *request) intField(key string) (int64, bool) {
	n, ok := r.body[key].(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

func (r *request) boolField(key string) bool {
	b, _ := r.body[key].(bool)
	return b
}

// authenticate answers the authenticate action (contract §4.4; 200 in
// noauth mode, where Zaqar never answers: B1).
func (c *conn) authenticate(r *request) map[string]any {
	echo := &request{action: "authenticate", hasAction: true}
	if c.s.auth == nil {
		return response(echo, 200, map[string]any{"message": "Authentified."})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := c.s.auth.Validate(ctx, header(r, "X-Auth-Token"))
	if err != nil {
		status := 401
		if !errors.Is(err, api.ErrInvalidToken) {
			status = 503
		}
		return response(echo, status, map[string]any{"error": "Authentication failed."})
	}
	c.mu.Lock()
	c.authed = &id
	c.mu.Unlock()
	c.expireAt(id.Expires)
	return response(echo, 200, map[string]any{"message": "Authentified."})
}

// gate applies keystone mode's rules before an action (contract §4.4,
// §4.8).
func (c *conn) gate(r *request) map[string]any {
	if c.s.auth == nil {
		return nil
	}
	c.mu.Lock()
	id := c.authed
	c.mu.Unlock()
	if id == nil {
		if c.signed(r) {
			return nil
		}
		return errorResponse(r, 403, "Not authentified.")
	}
	if header(r, "X-Project-ID") != id.Project {
		return errorResponse(r, 403, "Not authenticated.")
	}
	return nil
}

// signedMethods maps the actions pre-signed URLs may authorise to HTTP
// methods.
var signedMethods = map[string]string{
	"message_list": "GET", "message_get": "GET", "message_get_many": "GET",
	"message_post": "POST", "message_delete": "DELETE", "message_delete_many": "DELETE",
}

// signed verifies a request's pre-signed URL headers (URL-Methods and
// URL-Paths as JSON arrays). Unlike Zaqar, the body's queue must be one
// the URL was signed for (contract B15).
func (c *conn) signed(r *request) bool {
	method, ok := signedMethods[r.action]
	if !ok {
		return false
	}
	list := func(k string) (string, bool) {
		arr, ok := r.headers[k].([]any)
		if !ok {
			return "", false
		}
		parts := make([]string, 0, len(arr))
		for _, v := range arr {
			s, ok := v.(string)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), true
	}
	methods, ok1 := list("URL-Methods")
	paths, ok2 := list("URL-Paths")
	if !ok1 || !ok2 {
		return false
	}
	// Signed paths match as substrings (contract Q10): a queue name with
	// slashes could hold another queue's path, so it must be valid.
	if !api.ValidQueueName(r.str("queue_name")) {
		return false
	}
	path := "/v2/queues/" + r.str("queue_name") + "/messages"
	return c.s.svc.VerifySigned(method, path, header(r, "URL-Signature"), header(r, "URL-Expires"), methods, paths, header(r, "X-Project-ID"))
}

// dispatch runs a validated action.
func (c *conn) dispatch(ctx context.Context, r *request) map[string]any {
	svc := c.s.svc
	q := r.str("queue_name")
	switch r.action {
	case "queue_list":
		l := api.QueueListing{Marker: r.str("marker")}
		if n, ok := r.intField("limit"); ok {
			if n < 1 {
				n = -1 // out of range, not "default"
			}
			l.Limit = int(n)
		}
		qs, _, err := svc.ListQueues(ctx, r.caller, l)
		if err != nil {
			return apiError(r, err)
		}
		items := make([]any, len(qs))
		for i, qu := range qs {
			item := map[string]any{"name": qu.Name}
			if r.boolField("detailed") {
				item["metadata"] = json.RawMessage(qu.Metadata)
			}
			items[i] = item
		}
		return response(r, 200, map[string]any{"queues": items})
	case "queue_create":
		if !api.ValidQueueName(q) || !api.ValidProject(r.caller.Project) {
			return apiError(r, api.BadRequest("The format of the submitted queue name or project id is not valid."))
		}
		meta, _ := r.body["metadata"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
		}
		if int64(len(projection.EncodeJSON(meta))) > svc.Config().MaxQueueMetadata {
			return apiError(r, api.BadRequest("Queue metadata is too large. Max size: %d", svc.Config().MaxQueueMetadata))
		}
		created, err := svc.CreateQueue(ctx, r.caller, q, meta)
		if err != nil {
			return apiError(r, err)
		}
		status := 204
		if created {
			status = 201
		}
		return response(r, status, fmt.Sprintf("Queue %s created.", q))
	case "queue_get":
		meta, _, err := svc.QueueMetadata(ctx, r.caller, q)
		if err != nil {
			return apiError(r, err)
		}
		return response(r, 200, meta)
	case "queue_delete":
		if err := svc.DeleteQueue(ctx, r.caller, q); err != nil {
			return apiError(r, err)
		}
		return response(r, 204, fmt.Sprintf("Queue %s removed.", q))
	case "queue_get_stats":
		return c.stats(ctx, r, q)
	case "queue_history":
		hq := api.HistoryQuery{}
		hq.Marker, _ = r.body["marker"].(string)
		hq.Since, _ = r.body["since"].(string)
		hq.Until, _ = r.body["until"].(string)
		if n, ok := r.intField("limit"); ok {
			hq.Limit = int(n)
		}
		if types, ok := r.body["types"].([]any); ok {
			for _, t := range types {
				if s, ok := t.(string); ok {
					hq.Types = append(hq.Types, s)
				}
			}
		}
		page, err := svc.History(ctx, r.caller, q, hq)
		if err != nil {
			return apiError(r, err)
		}
		// As plain values, so MessagePack frames carry them as JSON
		// frames do.
		events := make([]any, len(page.Events))
		for i, ev := range page.Events {
			ev.Queue = api.QueueName(ev.Queue)
			b, err := json.Marshal(ev)
			if err == nil {
				err = json.Unmarshal(b, &events[i])
			}
			if err != nil {
				return apiError(r, api.Unavailable("History could not be read.", err))
			}
		}
		return response(r, 200, map[string]any{"events": events, "marker": page.Next, "more": page.More})
	case "queue_purge":
		messages, subscriptions := true, true
		if types, ok := r.body["resource_types"].([]any); ok {
			messages, subscriptions = false, false
			for _, t := range types {
				messages = messages || t == "messages"
				subscriptions = subscriptions || t == "subscriptions"
			}
		}
		if err := svc.PurgeQueue(ctx, r.caller, q, messages, subscriptions); err != nil {
			return apiError(r, err)
		}
		return response(r, 204, map[string]any{})
	}
	if strings.HasPrefix(r.action, "message_") {
		return c.messageAction(ctx, r, q)
	}
	if strings.HasPrefix(r.action, "claim_") {
		return c.claimAction(ctx, r, q)
	}
	if strings.HasPrefix(r.action, "subscription_") {
		return c.subscriptionAction(ctx, r, q)
	}
	switch r.action {
	case "stream_subscribe":
		return c.streamSubscribe(ctx, r, q)
	case "stream_unsubscribe":
		c.s.hub.unstream(c, subKey{r.caller.Project, q})
		return response(r, 204, map[string]any{})
	}
	return errorResponse(r, 400, r.action+" is not a valid action")
}

func (c *conn) stats(ctx context.Context, r *request, q string) map[string]any {
	_, exists, err := c.s.svc.QueueMetadata(ctx, r.caller, q)
	if err != nil {
		return apiError(r, err)
	}
	if !exists {
		return response(r, 404, map[string]any{"messages": map[string]any{"claimed": 0, "free": 0, "total": 0}})
	}
	st, err := c.s.svc.QueueStats(ctx, r.caller, q)
	if err != nil {
		return apiError(r, err)
	}
	msgs := map[string]any{"claimed": st.Claimed, "free": st.Total - st.Claimed, "total": st.Total}
	now := c.s.svc.Now()
	if st.Total > 0 {
		for key, m := range map[string]*projection.Message{"oldest": st.Oldest, "newest": st.Newest} {
			msgs[key] = map[string]any{"id": m.ID, "age": api.Age(m.Created, now),
				"created": api.FormatCreated(m.Created)}
		}
	}
	return response(r, 200, map[string]any{"messages": msgs})
}

// message renders a message as the WebSocket API does: no href.
func message(m *projection.Message, claimID any, now int64) map[string]any {
	return map[string]any{"id": m.ID, "claim_id": claimID, "ttl": m.TTL, "age": api.Age(m.Created, now), "body": json.RawMessage(m.Body)}
}

func messages(msgs []projection.Message, claimID any, now int64) []any {
	out := make([]any, len(msgs))
	for i := range msgs {
		out[i] = message(&msgs[i], claimID, now)
	}
	return out
}

func (c *conn) messageAction(ctx context.Context, r *request, q string) map[string]any {
	svc := c.s.svc
	now := svc.Now()
	switch r.action {
	case "message_list":
		if _, ok := api.NormalizeClientID(header(r, "Client-ID")); !ok {
			return apiError(r, api.BadRequest("Malformed hexadecimal UUID."))
		}
		l := api.MessageListing{Marker: r.str("marker"), Echo: r.boolField("echo"),
			IncludeClaimed: r.boolField("include_claimed"), IncludeDelayed: r.boolField("include_delayed")}
		if n, ok := r.intField("limit"); ok {
			if n < 1 {
				n = -1
			}
			l.Limit = int(n)
		}
		msgs, _, err := svc.ListMessages(ctx, r.caller, q, l)
		if err != nil {
			return apiError(r, err)
		}
		return response(r, 200, map[string]any{"messages": messages(msgs, nil, now)})
	case "message_get":
		m, err := svc.GetMessage(ctx, r.caller, q, r.str("message_id"))
		if err != nil {
			return apiError(r, err)
		}
		return response(r, 200, map[string]any{"messages": message(m, nil, now)})
	case "message_get_many":
		ids := strings_(r.body["message_ids"])
		if len(ids) == 0 {
			return response(r, 200, map[string]any{"messages": []any{}})
		}
		msgs, err := svc.GetMessages(ctx, r.caller, q, ids)
		if err != nil {
			return apiError(r, err)
		}
		return response(r, 200, map[string]any{"messages": messages(msgs, nil, now)})
	case "message_delete":
		if err := svc.DeleteMessage(ctx, r.caller, q, r.str("message_id"), r.str("claim_id")); err != nil {
			return apiError(r, err)
		}
		return response(r, 204, map[string]any{})
	case "message_delete_many":
		ids := strings_(r.body["message_ids"])
		pop, hasPop := r.intField("pop")
		switch {
		case len(ids) > 0 && hasPop:
			return apiError(r, api.BadRequest("pop and id params cannot be present together in the delete request."))
		case len(ids) == 0 && !hasPop:
			return apiError(r, api.BadRequest("The request should have either \"ids\" or \"pop\" parameter in the request, to be able to delete."))
		case hasPop:
			msgs, err := svc.PopMessages(ctx, r.caller, q, pop)
			if err != nil {
				return apiError(r, err)
			}
			items := make([]any, len(msgs))
			for i := range msgs {
				m := &msgs[i]
				var claim any
				if m.ClaimID != "" {
					claim = m.ClaimID
				}
				items[i] = map[string]any{"id": m.ID, "age": api.Age(m.Created, now), "ttl": m.TTL,
					"claim_count": m.ClaimCount, "claim_id": claim, "body": json.RawMessage(m.Body)}
			}
			return response(r, 200, map[string]any{"messages": items})
		}
		if err := svc.DeleteMessages(ctx, r.caller, q, ids); err != nil {
			return apiError(r, err)
		}
		return response(r, 204, map[string]any{})
	}
	return errorResponse(r, 400, r.action+" is not a valid action")
}

// strings_ returns the string elements of a JSON array.
func strings_(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		if s, ok := e.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

// pendingPost is a message_post on its way: its answer is resp when known
// at once (an error), else that of post once applied.
type pendingPost struct {
	r      *request
	resp   map[string]any
	post   *api.Post
	ctx    context.Context
	cancel context.CancelFunc
}

// post is message_post: lazy queue creation, the size limit on the JSON
// length of the messages (contract B19) and no delays (§4.5). It returns
// once the post is on its way; finishPost waits for its answer.
func (c *conn) post(ctx context.Context, r *request, q string) *pendingPost {
	svc := c.s.svc
	failed := func(resp map[string]any) *pendingPost { return &pendingPost{r: r, resp: resp} }
	if !api.ValidQueueName(q) || !api.ValidProject(r.caller.Project) {
		return failed(apiError(r, api.BadRequest("The format of the submitted queue name or project id is not valid.")))
	}
	if _, ok := api.NormalizeClientID(header(r, "Client-ID")); !ok {
		return failed(apiError(r, api.BadRequest("Malformed hexadecimal UUID.")))
	}
	meta, err := svc.PrepareQueue(ctx, r.caller, q)
	if err != nil {
		return failed(apiError(r, err))
	}
	raw := r.body["messages"]
	if err := svc.CheckPostSize(meta, int64(len(projection.EncodeJSON(raw)))); err != nil {
		return failed(apiError(r, err))
	}
	if !api.IntsFit(raw) {
		return failed(apiError(r, api.ErrBodyBigInt))
	}
	msgs, e := api.ParseNewMessages(raw)
	if e != nil {
		if e != api.ErrBodyDocType {
			// Zaqar's sanitizer raises its BadRequest, whose text starts
			// so (contract §4.5).
			e = &api.Error{Status: e.Status, Title: e.Title, Description: "Bad request. " + e.Description}
		}
		return failed(apiError(r, e))
	}
	return &pendingPost{r: r, ctx: ctx, post: svc.StartPost(ctx, r.caller, q, meta, msgs, api.PostOptions{IgnoreDelay: true})}
}

// finishPost waits until a started post is applied and returns its answer.
func (c *conn) finishPost(p *pendingPost) (resp map[string]any) {
	defer p.cancel()
	defer func() {
		if v := recover(); v != nil {
			c.s.cfg.Logger.Error("panic in WebSocket action", "panic", v)
			resp = errorResponse(p.r, 500, "Unexpected error.")
		}
	}()
	ids, err := p.post.Wait(p.ctx)
	if err != nil {
		return apiError(p.r, err)
	}
	return response(p.r, 201, map[string]any{"message_ids": ids})
}

func (c *conn) claimAction(ctx context.Context, r *request, q string) map[string]any {
	svc := c.s.svc
	times := func() api.ClaimTimes {
		var t api.ClaimTimes
		if v, ok := r.intField("ttl"); ok {
			t.TTL = &v
		}
		if v, ok := r.intField("grace"); ok {
			t.Grace = &v
		}
		return t
	}
	id := r.str("claim_id")
	switch r.action {
	case "claim_create":
		limit, ok := r.intField("limit")
		if ok && limit < 1 {
			limit = -1
		}
		cid, msgs, err := svc.CreateClaim(ctx, r.caller, q, limit, times())
		if err != nil {
			return apiError(r, err)
		}
		if cid == "" {
			return response(r, 204, map[string]any{"claim_id": nil})
		}
		return response(r, 201, map[string]any{"claim_id": cid, "messages": messages(msgs, cid, svc.Now())})
	case "claim_get":
		cl, msgs, err := svc.GetClaim(ctx, r.caller, q, id)
		if err != nil {
			return apiError(r, claimMissing(err, id))
		}
		now := svc.Now()
		return response(r, 200, map[string]any{"age": api.Age(cl.Updated, now), "ttl": cl.TTL, "messages": messages(msgs, id, now)})
	case "claim_update":
		if err := svc.RenewClaim(ctx, r.caller, q, id, times()); err != nil {
			return apiError(r, claimMissing(err, id))
		}
		return response(r, 204, fmt.Sprintf("Claim %s updated.", id))
	case "claim_delete":
		if err := svc.ReleaseClaim(ctx, r.caller, q, id); err != nil {
			return apiError(r, err)
		}
		return response(r, 204, fmt.Sprintf("Claim %s deleted.", id))
	}
	return errorResponse(r, 400, r.action+" is not a valid action")
}

// claimMissing words a missing claim as Zaqar's WebSocket API does.
func claimMissing(err error, id string) error {
	var e *api.Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return &api.Error{Status: 404, Title: e.Title, Description: fmt.Sprintf("Claim %s does not exist.", id)}
	}
	return err
}

func (c *conn) subscriptionAction(ctx context.Context, r *request, q string) map[string]any {
	svc := c.s.svc
	now := svc.Now()
	switch r.action {
	case "subscription_create":
		return c.subscribe(ctx, r, q)
	case "subscription_get":
		sub, err := svc.GetSubscription(ctx, r.caller, q, r.str("subscription_id"))
		if err != nil {
			return apiError(r, err)
		}
		return response(r, 200, api.SubscriptionJSON(sub, now))
	case "subscription_list":
		limit, _ := r.intField("limit")
		subs, err := svc.ListSubscriptions(ctx, r.caller, q, r.str("marker"), int(limit))
		if err != nil {
			return apiError(r, err)
		}
		items := make([]any, len(subs))
		for i := range subs {
			items[i] = api.SubscriptionJSON(&subs[i], now)
		}
		return response(r, 200, map[string]any{"subscriptions": items})
	case "subscription_delete":
		id := r.str("subscription_id")
		if err := svc.DeleteSubscription(ctx, r.caller, q, id); err != nil {
			return apiError(r, err)
		}
		c.s.hub.unsubscribe(r.caller.Project, q, id)
		return response(r, 204, fmt.Sprintf("Subscription %s removed.", id))
	}
	return errorResponse(r, 400, r.action+" is not a valid action")
}

// subscribe is subscription_create. Without a subscriber the subscription
// is this connection's: its subscriber is http://host:port/<connection
// id>, it receives notifications in the encoding of this request, and it
// is deleted when the connection closes (contract §4.7). A duplicate is
// always 409 here.
func (c *conn) subscribe(ctx context.Context, r *request, q string) map[string]any {
	svc := c.s.svc
	// It may create the queue, so it validates the name (contract §4.5).
	if !api.ValidQueueName(q) || !api.ValidProject(r.caller.Project) {
		return apiError(r, api.BadRequest("The format of the submitted queue name or project id is not valid."))
	}
	doc := map[string]any{}
	for k, v := range r.body {
		doc[k] = v
	}
	delete(doc, "queue_name")
	own := false
	k := subKey{r.caller.Project, q}
	if _, ok := doc["subscriber"]; !ok {
		doc["subscriber"], own = c.subscriberURL(), true
		// Listen before the subscription exists, so no message posted
		// once it does can slip by; the id follows.
		if !c.s.hub.listen(c, k) {
			return response(r, 409, fmt.Sprintf("Subscription %s not created.", q))
		}
	}
	made, err := svc.CreateSubscription(ctx, r.caller, q, doc, own)
	id, created := made.ID, made.Created
	var e *api.Error
	if !created && (err == nil || errors.As(err, &e) && e.Status == http.StatusConflict) || err != nil {
		if own {
			c.s.hub.unlisten(c, k)
		}
		if err == nil || e != nil && e.Status == http.StatusConflict {
			return response(r, 409, fmt.Sprintf("Subscription %s not created.", q))
		}
		return apiError(r, err)
	}
	if own {
		sub, err := svc.GetSubscription(ctx, r.caller, q, id)
		if err != nil {
			return apiError(r, err)
		}
		c.notifyEnc.Store(int32(r.enc))
		c.mu.Lock()
		c.subs[subKey{r.caller.Project, q}] = id
		c.mu.Unlock()
		c.s.hub.subscribe(c, r.caller.Project, q, id, sub.Expires)
	}
	body := map[string]any{"subscription_id": id, "message": fmt.Sprintf("Subscription %s created.", q)}
	if made.Secret != "" {
		body["signing_secret"] = made.Secret
	}
	return response(r, 201, body)
}

package rest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/heraldmq/herald/api"
	"github.com/heraldmq/herald/projection"
)

// messageHref is the href of message id under base, the queue or topic
// path.
func messageHref(base, id string) string { return base + "/messages/" + id }

func jsonInt(i int64) json.Number { return json.Number(strconv.FormatInt(i, 10)) }

// message is the REST message object: exactly these keys (contract M9).
type message struct {
	ID   string          `json:"id"`
	Href string          `json:"href"`
	TTL  int64           `json:"ttl"`
	Age  int64           `json:"age"`
	Body json.RawMessage `json:"body"`
}

func renderMessage(base string, m *projection.Message, now int64) message {
	href := messageHref(base, m.ID)
	if m.ClaimID != "" {
		href += "?claim_id=" + m.ClaimID
	}
	return message{ID: m.ID, Href: href, TTL: m.TTL, Age: api.Age(m.Created, now), Body: m.Body}
}

func renderMessages(base string, ms []projection.Message, now int64) []message {
	out := make([]message, len(ms))
	for i := range ms {
		out[i] = renderMessage(base, &ms[i], now)
	}
	return out
}

// poppedMessage is the raw storage shape pop answers with (contract M15).
type poppedMessage struct {
	ID         string          `json:"id"`
	Age        int64           `json:"age"`
	TTL        int64           `json:"ttl"`
	ClaimCount int             `json:"claim_count"`
	Body       json.RawMessage `json:"body"`
	ClaimID    *string         `json:"claim_id"`
}

func (h *Handler) postMessages(w http.ResponseWriter, r *request) error {
	ctx := r.Context()
	meta, err := h.svc.PrepareQueue(ctx, r.caller, r.queue)
	if err != nil {
		return err
	}
	limit := h.svc.PostSizeLimit(meta)
	body, present, e := readBody(r.Request, limit, func() *api.Error {
		return api.BadRequest("Message collection size is too large. Max size %d", limit)
	})
	if e != nil {
		return e
	}
	if !present {
		return api.ErrBodyEmpty
	}
	doc, e := api.ParseJSON(body)
	if e != nil {
		return e
	}
	obj, ok := doc.(map[string]any)
	raw, found := obj["messages"]
	if !ok || !found {
		return api.BadRequest("No messages were found in the request body.")
	}
	msgs, e := api.ParseNewMessages(raw)
	if e != nil {
		return e
	}
	ids, err := h.svc.PostMessages(ctx, r.caller, r.queue, meta, msgs, api.PostOptions{})
	if err != nil {
		return err
	}
	hrefs := make([]string, len(ids))
	for i, id := range ids {
		hrefs[i] = messageHref(r.base, id)
	}
	w.Header().Set("Location", r.base+"/messages?ids="+strings.Join(ids, ","))
	writeJSON(w, http.StatusCreated, map[string]any{"resources": hrefs})
	return nil
}

// getMessages serves both the listing and get-by-ids.
func (h *Handler) getMessages(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	now := h.svc.Now()
	if ids, ok := listParam(q, "ids"); ok {
		msgs, err := h.svc.GetMessages(r.Context(), r.caller, r.queue, ids)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return api.NoMessagesError(r.caller, r.queue, ids)
		}
		writeJSON(w, 200, map[string]any{"messages": renderMessages(r.base, msgs, now)})
		return nil
	}
	var l api.MessageListing
	var ln link
	if v, ok := param(q, "marker"); ok {
		l.Marker = v
		ln.addMarker()
	}
	if v, ok, e := intParam(q, "limit"); e != nil {
		return e
	} else if ok {
		if v < 1 || v > int64(h.svc.Config().MaxMessagesPerPage) {
			return api.BadRequest("Limit must be at least 1 and may not be greater than %d.", h.svc.Config().MaxMessagesPerPage)
		}
		l.Limit = int(v)
		ln.add("limit", fmt.Sprint(v))
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"echo", &l.Echo}, {"include_claimed", &l.IncludeClaimed}, {"include_delayed", &l.IncludeDelayed}} {
		v, ok, e := boolParam(q, b.name)
		if e != nil {
			return e
		}
		if ok {
			*b.dst = v
			if b.name != "include_delayed" {
				ln.addBool(b.name, v)
			}
		}
	}
	msgs, includeDelayed, err := h.svc.ListMessages(r.Context(), r.caller, r.queue, l)
	if err != nil {
		return err
	}
	out := map[string]any{"messages": renderMessages(r.base, msgs, now), "links": []any{}}
	if len(msgs) > 0 {
		if _, asked := param(q, "include_delayed"); asked || includeDelayed {
			ln.addBool("include_delayed", includeDelayed)
		}
		out["links"] = ln.next(r.base+"/messages", strconv.FormatUint(msgs[len(msgs)-1].Seq, 10))
	}
	writeJSON(w, 200, out)
	return nil
}

func (h *Handler) getMessage(w http.ResponseWriter, r *request) error {
	m, err := h.svc.GetMessage(r.Context(), r.caller, r.queue, r.params.ByName("message_id"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, renderMessage(r.base, m, h.svc.Now()))
	return nil
}

func (h *Handler) deleteMessage(w http.ResponseWriter, r *request) error {
	claim, _ := param(r.URL.Query(), "claim_id")
	if err := h.svc.DeleteMessage(r.Context(), r.caller, r.queue, r.params.ByName("message_id"), claim); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// deleteMessages serves bulk delete (?ids=) and pop (?pop=).
func (h *Handler) deleteMessages(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	ids, hasIDs := listParam(q, "ids")
	_, hasPop := param(q, "pop")
	switch {
	case hasIDs && hasPop:
		return api.BadRequest("pop and id params cannot be present together in the delete request.")
	case !hasIDs && !hasPop:
		return api.BadRequest("The request should have either \"ids\" or \"pop\" parameter in the request, to be able to delete.")
	case hasPop:
		n, _, e := intParam(q, "pop")
		if e != nil {
			return e
		}
		msgs, err := h.svc.PopMessages(r.Context(), r.caller, r.queue, n)
		if err != nil {
			return err
		}
		now := h.svc.Now()
		out := make([]poppedMessage, len(msgs))
		for i := range msgs {
			m := &msgs[i]
			out[i] = poppedMessage{ID: m.ID, Age: api.Age(m.Created, now), TTL: m.TTL, ClaimCount: m.ClaimCount, Body: m.Body}
			if m.ClaimID != "" {
				out[i].ClaimID = &m.ClaimID
			}
		}
		writeJSON(w, 200, map[string]any{"messages": out})
		return nil
	}
	if err := h.svc.DeleteMessages(r.Context(), r.caller, r.queue, ids); err != nil {
		return err
	}
	noContent(w)
	return nil
}

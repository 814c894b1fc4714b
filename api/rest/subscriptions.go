package rest

import (
	"errors"
	"net/http"

	"github.com/heraldmq/herald/api"
)

// subscriptionBody reads an optional JSON body: nil when absent or empty.
func (h *Handler) subscriptionBody(r *request) (any, *api.Error) {
	body, present, e := readBody(r.Request, h.svc.Config().MaxQueueMetadata, func() *api.Error {
		return api.BadBody("Request body is too large.")
	})
	if e != nil || !present || len(body) == 0 {
		return nil, e
	}
	return api.ParseJSON(body)
}

// subscriptionObject is subscriptionBody for endpoints that need an
// object; an absent body is {}.
func (h *Handler) subscriptionObject(r *request) (map[string]any, *api.Error) {
	doc, e := h.subscriptionBody(r)
	if e != nil {
		return nil, e
	}
	if doc == nil {
		return map[string]any{}, nil
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, api.ErrBodyDocType
	}
	return m, nil
}

func (h *Handler) listSubscriptions(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	var l link
	marker, hasMarker := param(q, "marker")
	if hasMarker {
		l.addMarker()
	}
	limit, hasLimit, e := intParam(q, "limit")
	if e != nil {
		return e
	}
	if hasLimit {
		l.add("limit", q.Get("limit"))
	}
	if hasLimit && limit == 0 {
		limit = -1 // an explicit 0 is out of range, not "default"
	}
	subs, err := h.svc.ListSubscriptions(r.Context(), r.caller, r.queue, marker, int(limit))
	if err != nil {
		return err
	}
	now := h.svc.Now()
	items := make([]map[string]any, len(subs))
	for i := range subs {
		items[i] = api.SubscriptionJSON(&subs[i], now)
	}
	links := []map[string]string{}
	if len(subs) > 0 {
		links = l.next(r.URL.Path, subs[len(subs)-1].ID)
	}
	writeJSON(w, 200, map[string]any{"subscriptions": items, "links": links})
	return nil
}

func (h *Handler) createSubscription(w http.ResponseWriter, r *request) error {
	doc, e := h.subscriptionObject(r)
	if e != nil {
		return e
	}
	sub, err := h.svc.CreateSubscription(r.Context(), r.caller, r.queue, doc, false)
	if err != nil {
		if ae := (*api.Error)(nil); errors.As(err, &ae) && ae.Status == http.StatusConflict {
			w.Header().Set("Location", r.URL.Path)
		}
		return err
	}
	w.Header().Set("Location", r.URL.Path)
	writeJSON(w, http.StatusCreated, map[string]string{"subscription_id": sub.ID, "signing_secret": sub.Secret})
	return nil
}

func (h *Handler) getSubscription(w http.ResponseWriter, r *request) error {
	sub, err := h.svc.GetSubscription(r.Context(), r.caller, r.queue, r.params.ByName("subscription_id"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, api.SubscriptionJSON(sub, h.svc.Now()))
	return nil
}

func (h *Handler) updateSubscription(w http.ResponseWriter, r *request) error {
	doc, e := h.subscriptionBody(r)
	if e != nil {
		return e
	}
	if err := h.svc.UpdateSubscription(r.Context(), r.caller, r.queue, r.params.ByName("subscription_id"), doc); err != nil {
		return err
	}
	w.Header().Set("Location", r.URL.Path)
	noContent(w)
	return nil
}

func (h *Handler) deleteSubscription(w http.ResponseWriter, r *request) error {
	if err := h.svc.DeleteSubscription(r.Context(), r.caller, r.queue, r.params.ByName("subscription_id")); err != nil {
		return err
	}
	noContent(w)
	return nil
}

func (h *Handler) confirmSubscription(w http.ResponseWriter, r *request) error {
	doc, e := h.subscriptionObject(r)
	if e != nil {
		return e
	}
	if err := h.svc.ConfirmSubscription(r.Context(), r.caller, r.queue, r.params.ByName("subscription_id"), doc); err != nil {
		return err
	}
	w.Header().Set("Location", r.URL.Path)
	noContent(w)
	return nil
}

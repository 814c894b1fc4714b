package rest

import (
	"net/http"

	"github.com/heraldmq/herald/api"
)

// claimHref is the href of claim id under base, the queue or topic path.
func claimHref(base, id string) string { return base + "/claims/" + id }

// claimBody parses the optional {"ttl", "grace"} body of claim requests.
// A null value counts as absent, so python-zaqarclient's queue.claim(),
// which always sends both keys, works (contract B21).
func claimBody(r *request, required bool) (api.ClaimTimes, *api.Error) {
	var t api.ClaimTimes
	body, present, e := readBody(r.Request, 65536, func() *api.Error { return api.BadBody("Request body is too large.") })
	if e != nil {
		return t, e
	}
	if !present {
		if required {
			return t, api.ErrBodyEmpty
		}
		return t, nil
	}
	if len(body) == 0 && !required {
		return t, nil
	}
	doc, e := api.ParseObject(body)
	if e != nil {
		return t, e
	}
	for _, f := range []struct {
		key string
		dst **int64
	}{{"ttl", &t.TTL}, {"grace", &t.Grace}} {
		if v, ok := doc[f.key]; ok && v == nil {
			continue
		}
		v, ok, e := api.IntField(doc, f.key)
		if e != nil {
			return t, e
		}
		if ok {
			*f.dst = &v
		}
	}
	return t, nil
}

func (h *Handler) createClaim(w http.ResponseWriter, r *request) error {
	limit, _, e := intParam(r.URL.Query(), "limit")
	if e != nil {
		return e
	}
	if _, given := param(r.URL.Query(), "limit"); given && limit == 0 {
		return api.BadRequest("Limit must be at least 1 and may not be greater than %d.", h.svc.Config().MaxMessagesPerClaim)
	}
	t, e := claimBody(r, false)
	if e != nil {
		return e
	}
	id, msgs, err := h.svc.CreateClaim(r.Context(), r.caller, r.queue, limit, t)
	if err != nil {
		return err
	}
	if id == "" {
		noContent(w)
		return nil
	}
	w.Header().Set("Location", claimHref(r.base, id))
	writeJSON(w, http.StatusCreated, map[string]any{"messages": renderMessages(r.base, msgs, h.svc.Now())})
	return nil
}

func (h *Handler) getClaim(w http.ResponseWriter, r *request) error {
	id := r.params.ByName("claim_id")
	c, msgs, err := h.svc.GetClaim(r.Context(), r.caller, r.queue, id)
	if err != nil {
		return err
	}
	now := h.svc.Now()
	writeJSON(w, 200, map[string]any{
		"age":      api.Age(c.Updated, now),
		"ttl":      c.TTL,
		"href":     claimHref(r.base, id),
		"messages": renderMessages(r.base, msgs, now),
	})
	return nil
}

func (h *Handler) renewClaim(w http.ResponseWriter, r *request) error {
	t, e := claimBody(r, true)
	if e != nil {
		return e
	}
	if err := h.svc.RenewClaim(r.Context(), r.caller, r.queue, r.params.ByName("claim_id"), t); err != nil {
		return err
	}
	noContent(w)
	return nil
}

func (h *Handler) releaseClaim(w http.ResponseWriter, r *request) error {
	if err := h.svc.ReleaseClaim(r.Context(), r.caller, r.queue, r.params.ByName("claim_id")); err != nil {
		return err
	}
	noContent(w)
	return nil
}

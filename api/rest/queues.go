package rest

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/heraldmq/herald/api"
	"github.com/heraldmq/herald/projection"
)

func (h *Handler) createQueue(w http.ResponseWriter, r *request) error {
	limit := h.svc.Config().MaxQueueMetadata
	body, present, e := readBody(r.Request, limit, func() *api.Error {
		return api.BadRequest("Queue metadata is too large. Max size: %d", limit)
	})
	if e != nil {
		return e
	}
	meta := map[string]any{}
	if present && len(body) > 0 {
		if meta, e = api.ParseObject(body); e != nil {
			return e
		}
	}
	created, err := h.svc.CreateQueue(r.Context(), r.caller, r.queue, meta)
	if err != nil {
		return err
	}
	if !created {
		noContent(w)
		return nil
	}
	w.Header().Set("Location", r.base)
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (h *Handler) getQueue(w http.ResponseWriter, r *request) error {
	meta, _, err := h.svc.QueueMetadata(r.Context(), r.caller, r.queue)
	if err != nil {
		return err
	}
	writeJSON(w, 200, h.withDefaults(r, meta))
	return nil
}

// withDefaults fills the reserved metadata keys of a queue or a topic.
func (h *Handler) withDefaults(r *request, meta map[string]any) map[string]any {
	if r.topic {
		return h.svc.WithTopicDefaults(meta)
	}
	return h.svc.WithReservedDefaults(meta)
}

const patchContentType = "application/openstack-messaging-v2.0-json-patch"

func (h *Handler) patchQueue(w http.ResponseWriter, r *request) error {
	limit := h.svc.Config().MaxQueueMetadata
	body, present, e := readBody(r.Request, limit, func() *api.Error {
		return api.BadBody("Queue metadata is too large. Max size: %d", limit)
	})
	if e != nil {
		return e
	}
	if r.Header.Get("Content-Type") != patchContentType {
		return &api.Error{Status: 415, Title: fmt.Sprintf("Accepted media type for PATCH: {'Accept-Patch': '%s'}.", patchContentType)}
	}
	if !present || len(body) == 0 {
		return api.BadBody("PATCH body could not be empty for update.")
	}
	doc, e := api.ParseJSON(body)
	if e != nil {
		return e
	}
	arr, ok := doc.([]any)
	if !ok {
		return api.ErrBodyDocType
	}
	ops, e := api.ParsePatch(arr)
	if e != nil {
		return e
	}
	meta, err := h.svc.PatchQueue(r.Context(), r.caller, r.queue, ops)
	if err != nil {
		return err
	}
	writeJSON(w, 200, h.withDefaults(r, meta))
	return nil
}

func (h *Handler) deleteQueue(w http.ResponseWriter, r *request) error {
	if err := h.svc.DeleteQueue(r.Context(), r.caller, r.queue); err != nil {
		return err
	}
	noContent(w)
	return nil
}

func (h *Handler) listQueues(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	var l api.QueueListing
	var ln link
	var detailed bool
	// Topic listings know no with_count: there it is a metadata filter.
	known := []string{"marker", "limit", "detailed", "name", "with_count"}
	if r.topic {
		known = known[:4]
	}
	l.Topics = r.topic
	for _, known := range known {
		if _, ok := q[known]; !ok {
			continue
		}
		switch known {
		case "marker":
			if v, ok := param(q, "marker"); ok {
				l.Marker = v
				ln.addMarker()
			}
		case "limit":
			v, ok, e := intParam(q, "limit")
			if e != nil {
				return e
			}
			if ok {
				if v < 1 || v > int64(h.svc.Config().MaxQueuesPerPage) {
					return api.BadRequest("Limit must be at least 1 and no greater than %d.", h.svc.Config().MaxQueuesPerPage)
				}
				l.Limit = int(v)
				ln.add("limit", fmt.Sprint(v))
			}
		case "detailed":
			v, ok, e := boolParam(q, "detailed")
			if e != nil {
				return e
			}
			if ok {
				detailed = v
				ln.addBool("detailed", v)
			}
		case "name":
			if v, ok := param(q, "name"); ok {
				l.Name = v
				ln.add("name", v)
			}
		case "with_count":
			v, ok, e := boolParam(q, "with_count")
			if e != nil {
				return e
			}
			if ok {
				l.WithCount = v
				ln.addBool("with_count", v)
			}
		}
	}
	for k := range q {
		if slices.Contains(known, k) {
			continue
		}
		v, ok := param(q, k)
		if !ok {
			continue
		}
		if l.Meta == nil {
			l.Meta = map[string]any{}
		}
		l.Meta[k] = metaFilterValue(v)
	}
	queues, count, err := h.svc.ListQueues(r.Context(), r.caller, l)
	if err != nil {
		return err
	}
	key, collection := "queues", "/v2/queues"
	if r.topic {
		key, collection = "topics", "/v2/topics"
	}
	items := make([]map[string]any, 0, len(queues))
	for _, qu := range queues {
		item := map[string]any{"name": qu.Name, "href": collection + "/" + qu.Name}
		if detailed {
			meta, err := projection.DecodeObject(qu.Metadata)
			if err != nil {
				return api.Unavailable("Queues could not be listed.", err)
			}
			item["metadata"] = h.withDefaults(r, meta)
		}
		items = append(items, item)
	}
	out := map[string]any{key: items, "links": []any{}}
	if len(queues) > 0 {
		out["links"] = ln.next(collection, queues[len(queues)-1].Name)
	}
	if l.WithCount && count > 0 {
		out["count"] = count
	}
	writeJSON(w, 200, out)
	return nil
}

// metaFilterValue converts a metadata filter value to an int when it
// parses as one, as Zaqar does.
func metaFilterValue(v string) any {
	if i, err := api.ParseInt("", v); err == nil {
		return jsonInt(i)
	}
	return v
}

func (h *Handler) queueStats(w http.ResponseWriter, r *request) error {
	st, err := h.svc.QueueStats(r.Context(), r.caller, r.queue)
	if err != nil {
		return err
	}
	msgs := map[string]any{"claimed": st.Claimed, "free": st.Total - st.Claimed, "total": st.Total}
	if r.topic && st.Total > 0 {
		// Topics have no claims: their stats count messages only.
		msgs = map[string]any{"total": st.Total}
	}
	if st.Total > 0 {
		now := h.svc.Now()
		for key, m := range map[string]*projection.Message{"oldest": st.Oldest, "newest": st.Newest} {
			msgs[key] = map[string]any{
				"href":    messageHref(r.base, m.ID),
				"age":     api.Age(m.Created, now),
				"created": api.FormatCreated(m.Created),
			}
		}
	}
	writeJSON(w, 200, map[string]any{"messages": msgs})
	return nil
}

func (h *Handler) purgeQueue(w http.ResponseWriter, r *request) error {
	body, present, e := readBody(r.Request, h.svc.Config().MaxQueueMetadata, func() *api.Error {
		return api.BadBody("Request body is too large.")
	})
	if e != nil {
		return e
	}
	// Content-Length: 0 counts as no body, as in Zaqar.
	messages, subscriptions := true, true
	if present && len(body) > 0 {
		doc, e := api.ParseObject(body)
		if e != nil {
			return e
		}
		raw, ok := doc["resource_types"]
		if !ok {
			return api.BadRequest("Post body must contain key \"resource_types\".")
		}
		types, ok := raw.([]any)
		messages, subscriptions = false, false
		for _, t := range types {
			switch t {
			case "messages":
				messages = true
			case "subscriptions":
				subscriptions = true
			default:
				ok = false
			}
		}
		if !ok {
			return api.BadRequest("Resource types must be a sub set of ['messages', 'subscriptions'].")
		}
	}
	if err := h.svc.PurgeQueue(r.Context(), r.caller, r.queue, messages, subscriptions); err != nil {
		return err
	}
	noContent(w)
	return nil
}

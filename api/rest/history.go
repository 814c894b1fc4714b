package rest

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/heraldmq/herald/api"
)

// getHistory is GET {base}/history (an extension beyond Zaqar): the
// queue's events in log order, a page at a time, filtered by type
// (?type=a,b), time (?since=, ?until=, RFC 3339) and continued with
// ?marker=<offset of the last event seen>.
func (h *Handler) getHistory(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	hq := api.HistoryQuery{Marker: q.Get("marker"), Since: q.Get("since"), Until: q.Get("until")}
	limit, present, e := intParam(q, "limit")
	if e != nil {
		return e
	}
	if present && limit < 1 {
		return api.BadRequest("Limit must be at least 1 and may not be greater than %d.", api.MaxHistoryPerPage)
	}
	hq.Limit = int(min(limit, api.MaxHistoryPerPage+1))
	for _, v := range q["type"] {
		hq.Types = append(hq.Types, strings.Split(v, ",")...)
	}
	page, err := h.svc.History(r.Context(), r.caller, r.queue, hq)
	if err != nil {
		return err
	}
	links := []map[string]string{}
	if page.More {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("marker", page.Next)
		links = append(links, map[string]string{"rel": "next", "href": r.base + "/history?" + next.Encode()})
	}
	for _, ev := range page.Events {
		ev.Queue = api.QueueName(ev.Queue)
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": page.Events, "links": links})
	return nil
}

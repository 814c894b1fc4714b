package rest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/heraldmq/herald/api"
)

var versionsDoc = map[string]any{"versions": []any{
	version("1", "DEPRECATED", "2014-9-11T17:47:05Z", "application/vnd.openstack.messaging-v1+json", "/v1/"),
	version("1.1", "DEPRECATED", "2016-7-29T02:22:47Z", "application/vnd.openstack.messaging-v1_1+json", "/v1.1/"),
	version("2", "CURRENT", "2014-9-24T04:06:47Z", "application/vnd.openstack.messaging-v2+json", "/v2/"),
}}

func version(id, status, updated, media, href string) map[string]any {
	return map[string]any{
		"id": id, "status": status, "updated": updated,
		"media-types": []any{map[string]string{"base": "application/json", "type": media}},
		"links":       []any{map[string]string{"href": href, "rel": "self"}},
	}
}

// versions answers GET / with 300 Multiple Choices (contract §1.1).
func (h *Handler) versions(w http.ResponseWriter, _ *http.Request) *api.Error {
	writeJSON(w, http.StatusMultipleChoices, versionsDoc)
	return nil
}

func resource(tmpl string, vars map[string]string, allow ...string) map[string]any {
	return map[string]any{
		"href-template": tmpl,
		"href-vars":     vars,
		"hints":         map[string]any{"allow": allow, "formats": map[string]any{"application/json": map[string]any{}}},
	}
}

const qv = "param/queue_name"

// homeDoc builds the JSON-Home document; admin mode adds the admin
// resources.
func homeDoc(admin bool) []byte {
	q := map[string]string{"queue_name": qv}
	res := map[string]any{
		"rel/queues":             resource("/v2/queues{?marker,limit,detailed}", map[string]string{"marker": "param/marker", "limit": "param/queue_limit", "detailed": "param/detailed"}, "GET"),
		"rel/queue":              resource("/v2/queues/{queue_name}", q, "GET", "PUT", "DELETE", "PATCH"),
		"rel/queue_stats":        resource("/v2/queues/{queue_name}/stats", q, "GET"),
		"rel/queue_share":        resource("/v2/queues/{queue_name}/share", q, "POST"),
		"rel/queue_purge":        resource("/v2/queues/{queue_name}/purge", q, "POST"),
		"rel/messages":           resource("/v2/queues/{queue_name}/messages{?marker,limit,echo,include_claimed}", map[string]string{"queue_name": qv, "marker": "param/marker", "limit": "param/messages_limit", "echo": "param/echo", "include_claimed": "param/include_claimed"}, "GET"),
		"rel/post_messages":      resource("/v2/queues/{queue_name}/messages", q, "POST"),
		"rel/messages_delete":    resource("/v2/queues/{queue_name}/messages{?ids,pop}", map[string]string{"queue_name": qv, "ids": "param/ids", "pop": "param/pop"}, "DELETE"),
		"rel/message_delete":     resource("/v2/queues/{queue_name}/messages/{message_id}{?claim}", map[string]string{"queue_name": qv, "message_id": "param/message_id", "claim": "param/claim_id"}, "DELETE"),
		"rel/message_get":        resource("/v2/queues/{queue_name}/messages/{message_id}", map[string]string{"queue_name": qv, "message_id": "param/message_id"}, "GET"),
		"rel/claim":              resource("/v2/queues/{queue_name}/claims/{claim_id}", map[string]string{"queue_name": qv, "claim_id": "param/claim_id"}, "GET"),
		"rel/post_claim":         resource("/v2/queues/{queue_name}/claims{?limit}", map[string]string{"queue_name": qv, "limit": "param/claim_limit"}, "POST"),
		"rel/patch_claim":        resource("/v2/queues/{queue_name}/claims/{claim_id}", map[string]string{"queue_name": qv, "claim_id": "param/claim_id"}, "PATCH"),
		"rel/delete_claim":       resource("/v2/queues/{queue_name}/claims/{claim_id}", map[string]string{"queue_name": qv, "claim_id": "param/claim_id"}, "DELETE"),
		"rel/subscriptions_get":  resource("/v2/queues/{queue_name}/subscriptions{?marker,limit}", map[string]string{"queue_name": qv, "marker": "param/marker", "limit": "param/subscription_limit"}, "GET"),
		"rel/subscriptions_post": resource("/v2/queues/{queue_name}/subscriptions", q, "POST"),
		"rel/subscription":       resource("/v2/queues/{queue_name}/subscriptions/{subscriptions_id}", map[string]string{"queue_name": qv, "subscriptions_id": "param/subscriptions_id"}, "GET", "DELETE"),
		"rel/subscription_patch": resource("/v2/queues/{queue_name}/subscriptions/{subscriptions_id}", map[string]string{"queue_name": qv, "subscriptions_id": "param/subscriptions_id"}, "PATCH"),
		"rel/ping":               map[string]any{"href-template": "/v2/ping", "hints": map[string]any{"allow": []string{"GET"}, "formats": map[string]any{"application/json": map[string]any{}}}},
	}
	if admin {
		pool := map[string]string{"pool_name": "param/pool_name"}
		flavor := map[string]string{"flavor_name": "param/flavor_name"}
		list := map[string]string{"detailed": "param/detailed", "limit": "param/pool_limit", "marker": "param/marker"}
		res["rel/pools"] = resource("/v2/pools{?detailed,limit,marker}", list, "GET")
		res["rel/pool"] = resource("/v2/pools/{pool_name}", pool, "GET", "PUT", "PATCH", "DELETE")
		res["rel/flavors"] = resource("/v2/flavors{?detailed,limit,marker}", list, "GET")
		res["rel/flavor"] = resource("/v2/flavors/{flavor_name}", flavor, "GET", "PUT", "PATCH", "DELETE")
		res["rel/health"] = map[string]any{"href": "/v2/health", "hints": map[string]any{"allow": []string{"GET"}, "formats": map[string]any{"application/json": map[string]any{}}}}
	}
	b, err := json.MarshalIndent(map[string]any{"resources": res}, "", "    ")
	if err != nil {
		panic(err)
	}
	return b
}

// homeDoc answers GET /v2/ with the JSON-Home document.
func (h *Handler) homeDoc(w http.ResponseWriter, _ *request) error {
	w.Header().Set("Content-Type", "application/json-home")
	w.Header().Set("Cache-Control", "max-age=86400")
	w.Header().Set("Content-Length", strconv.Itoa(len(h.home)))
	w.WriteHeader(200)
	_, err := bytes.NewReader(h.home).WriteTo(w)
	_ = err // the client went away; nothing to answer
	return nil
}

func (h *Handler) ping(w http.ResponseWriter, r *request) error {
	if !h.svc.Ready(r.Context()) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return nil
	}
	noContent(w)
	return nil
}

func (h *Handler) pingHead(w http.ResponseWriter, _ *request) error {
	noContent(w)
	return nil
}

package rest

import (
	"net/http"
	"strings"

	"github.com/heraldmq/herald/api"
	"github.com/heraldmq/herald/projection"
)

// Admin routes (contract §2.6, §2.7): health, pools and flavors, served
// only in admin mode. Policy (§3.13): health, every pool route and flavor
// writes need the admin role; reading flavors is open.

var errNotAuthorized = &api.Error{Status: 403, Title: "Not authorized", Description: "You are not authorized to complete this action."}

func (h *Handler) adminRoutes() {
	h.handle("GET", "/v2/health", h.admin(h.health))
	h.handle("GET", "/v2/pools", h.admin(h.listPools))
	h.handle("GET", "/v2/pools/:pool_name", h.admin(h.getPool))
	h.handle("PUT", "/v2/pools/:pool_name", h.admin(h.putPool))
	h.handle("PATCH", "/v2/pools/:pool_name", h.admin(h.patchPool))
	h.handle("DELETE", "/v2/pools/:pool_name", h.admin(h.deletePool))
	h.handle("GET", "/v2/flavors", h.listFlavors)
	h.handle("GET", "/v2/flavors/:flavor_name", h.getFlavor)
	h.handle("PUT", "/v2/flavors/:flavor_name", h.admin(h.putFlavor))
	h.handle("PATCH", "/v2/flavors/:flavor_name", h.admin(h.patchFlavor))
	h.handle("DELETE", "/v2/flavors/:flavor_name", h.admin(h.deleteFlavor))
	if h.snaps != nil {
		h.handle("GET", "/v2/snapshots", h.admin(h.listSnapshots))
		h.handle("POST", "/v2/snapshots", h.admin(h.takeSnapshot))
	}
}

// Snapshots of the node's projection (a Herald extension): POST takes one
// now, GET lists them, newest first.
func (h *Handler) takeSnapshot(w http.ResponseWriter, r *request) error {
	info, err := h.snaps.Snapshot()
	if err != nil {
		return api.Unavailable("The snapshot could not be taken.", err)
	}
	writeJSON(w, 201, info)
	return nil
}

func (h *Handler) listSnapshots(w http.ResponseWriter, r *request) error {
	snaps, err := h.snaps.Snapshots()
	if err != nil {
		return api.Unavailable("Snapshots could not be listed.", err)
	}
	if snaps == nil {
		snaps = []projection.SnapshotInfo{}
	}
	writeJSON(w, 200, map[string]any{"snapshots": snaps})
	return nil
}

// admin wraps a handler with the role:admin policy.
func (h *Handler) admin(fn handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *request) error {
		if !hasRole(r.Header.Values("X-Roles"), "admin") {
			return errNotAuthorized
		}
		return fn(w, r)
	}
}

func hasRole(values []string, role string) bool {
	for _, v := range values {
		for _, r := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(r), role) {
				return true
			}
		}
	}
	return false
}

func (h *Handler) health(w http.ResponseWriter, r *request) error {
	doc, err := h.svc.Health(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, 200, doc)
	return nil
}

// adminBody reads the JSON object body of a pool or flavor write.
func (h *Handler) adminBody(r *request) (map[string]any, *api.Error) {
	body, present, e := readBody(r.Request, h.svc.Config().MaxQueueMetadata, func() *api.Error {
		return api.BadBody("Request body is too large.")
	})
	if e != nil {
		return nil, e
	}
	if !present {
		return nil, api.ErrBodyEmpty
	}
	return api.ParseObject(body)
}

// listing reads marker, limit and detailed of a pool or flavor listing.
func listing(r *request) (l link, marker string, limit int64, detailed bool, e *api.Error) {
	q := r.URL.Query()
	marker, hasMarker := param(q, "marker")
	if hasMarker {
		l.addMarker()
	}
	limit, hasLimit, e := intParam(q, "limit")
	if e != nil {
		return
	}
	if hasLimit {
		l.add("limit", q.Get("limit"))
		if limit == 0 {
			limit = -1
		}
	}
	detailed, hasDetailed, e := boolParam(q, "detailed")
	if hasDetailed {
		l.addBool("detailed", detailed)
	}
	return
}

func (h *Handler) listPools(w http.ResponseWriter, r *request) error {
	l, marker, limit, detailed, e := listing(r)
	if e != nil {
		return e
	}
	pools, err := h.svc.ListPools(r.Context(), marker, int(limit))
	if err != nil {
		return err
	}
	items := make([]map[string]any, len(pools))
	for i := range pools {
		items[i] = api.PoolJSON(&pools[i], detailed)
	}
	links := []map[string]string{}
	if len(pools) > 0 {
		links = l.next(r.URL.Path, pools[len(pools)-1].Name)
	}
	w.Header().Set("Content-Location", r.URL.RequestURI())
	writeJSON(w, 200, map[string]any{"pools": items, "links": links})
	return nil
}

func (h *Handler) getPool(w http.ResponseWriter, r *request) error {
	detailed, _, e := boolParam(r.URL.Query(), "detailed")
	if e != nil {
		return e
	}
	p, err := h.svc.GetPool(r.Context(), r.params.ByName("pool_name"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, api.PoolJSON(p, detailed))
	return nil
}

func (h *Handler) putPool(w http.ResponseWriter, r *request) error {
	doc, e := h.adminBody(r)
	if e != nil {
		return e
	}
	name := r.params.ByName("pool_name")
	if err := h.svc.PutPool(r.Context(), r.caller, name, doc); err != nil {
		return err
	}
	w.Header().Set("Location", "/v2/pools/"+name)
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (h *Handler) patchPool(w http.ResponseWriter, r *request) error {
	doc, e := h.adminBody(r)
	if e != nil {
		return e
	}
	p, err := h.svc.PatchPool(r.Context(), r.caller, r.params.ByName("pool_name"), doc)
	if err != nil {
		return err
	}
	writeJSON(w, 200, api.PoolJSON(p, false))
	return nil
}

func (h *Handler) deletePool(w http.ResponseWriter, r *request) error {
	if err := h.svc.DeletePool(r.Context(), r.caller, r.params.ByName("pool_name")); err != nil {
		return err
	}
	noContent(w)
	return nil
}

func (h *Handler) listFlavors(w http.ResponseWriter, r *request) error {
	l, marker, limit, detailed, e := listing(r)
	if e != nil {
		return e
	}
	flavors, err := h.svc.ListFlavors(r.Context(), marker, int(limit))
	if err != nil {
		return err
	}
	items := make([]map[string]any, len(flavors))
	for i := range flavors {
		if items[i], err = h.svc.FlavorJSON(&flavors[i], false, detailed); err != nil {
			return err
		}
	}
	links := []map[string]string{}
	if len(flavors) > 0 {
		links = l.next(r.URL.Path, flavors[len(flavors)-1].Name)
	}
	writeJSON(w, 200, map[string]any{"flavors": items, "links": links})
	return nil
}

func (h *Handler) getFlavor(w http.ResponseWriter, r *request) error {
	f, err := h.svc.GetFlavor(r.Context(), r.params.ByName("flavor_name"))
	if err != nil {
		return err
	}
	doc, err := h.svc.FlavorJSON(f, true, true)
	if err != nil {
		return err
	}
	writeJSON(w, 200, doc)
	return nil
}

func (h *Handler) putFlavor(w http.ResponseWriter, r *request) error {
	doc, e := h.adminBody(r)
	if e != nil {
		return e
	}
	name := r.params.ByName("flavor_name")
	if err := h.svc.PutFlavor(r.Context(), r.caller, name, doc); err != nil {
		return err
	}
	w.Header().Set("Location", "/v2/flavors/"+name)
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (h *Handler) patchFlavor(w http.ResponseWriter, r *request) error {
	doc, e := h.adminBody(r)
	if e != nil {
		return e
	}
	f, err := h.svc.PatchFlavor(r.Context(), r.caller, r.params.ByName("flavor_name"), doc)
	if err != nil {
		return err
	}
	out, err := h.svc.FlavorJSON(f, true, true)
	if err != nil {
		return err
	}
	writeJSON(w, 200, out)
	return nil
}

func (h *Handler) deleteFlavor(w http.ResponseWriter, r *request) error {
	if err := h.svc.DeleteFlavor(r.Context(), r.caller, r.params.ByName("flavor_name")); err != nil {
		return err
	}
	noContent(w)
	return nil
}

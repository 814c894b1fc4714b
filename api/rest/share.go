package rest

import (
	"net/http"

	"github.com/heraldmq/herald/api"
)

// shareQueue answers POST /v2/queues/{q}/share with a pre-signed URL
// (contract §2.2.8).
func (h *Handler) shareQueue(w http.ResponseWriter, r *request) error {
	body, present, e := readBody(r.Request, h.svc.Config().MaxQueueMetadata, func() *api.Error {
		return api.BadBody("Request body is too large.")
	})
	if e != nil {
		return e
	}
	share, err := h.svc.Share(r.Context(), r.caller, r.queue, body, present)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, share)
	return nil
}

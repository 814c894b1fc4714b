package rest

import (
	"bytes"
	"crypto/sha256"
	"io"

	"github.com/heraldmq/herald/api"
)

// Idempotency-Key (beyond Zaqar): a POST that carries one is remembered
// for the idempotency window; a retry with the same key and the same
// request (method, path, query and body) answers what the first did and
// appends nothing that changes state. The same key with another request
// is refused with 422.

const maxIdempotencyKey = 255

// idempotency fills the caller's key and the request's fingerprint. The
// body is read for the digest and put back for the handler.
func (h *Handler) idempotency(req *request) *api.Error {
	key := req.Header.Get("Idempotency-Key")
	if key == "" || req.Method != "POST" {
		return nil
	}
	if len(key) > maxIdempotencyKey {
		return api.BadRequest("The Idempotency-Key header may not be longer than %d characters.", maxIdempotencyKey)
	}
	d := sha256.New()
	io.WriteString(d, req.Method+" "+req.URL.Path+"?"+req.URL.RawQuery+"\n")
	if hasBody(req.Request) {
		// Bodies past the largest limit are refused by the handler anyway.
		limit := h.svc.Config().MaxMessagesPostSize + 1
		b, err := io.ReadAll(io.LimitReader(req.Body, limit))
		if err != nil {
			return api.BadBody("Request body could not be read.")
		}
		d.Write(b)
		req.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), req.Body), req.Body}
	}
	req.caller.IdempotencyKey, req.caller.Fingerprint = key, d.Sum(nil)
	return nil
}

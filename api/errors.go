package api

import (
	"errors"
	"fmt"
)

// Error is the one API error type. REST renders it as Zaqar's
// {"title", "description"} body with Status; the WebSocket transport
// renders it in its own frame shape from the same fields.
type Error struct {
	Status      int
	Title       string
	Description string // empty: the body has only a title
	RetryAfter  int    // seconds, for 503
	cause       error
}

func (e *Error) Error() string {
	if e.Description == "" {
		return fmt.Sprintf("%d %s", e.Status, e.Title)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Title, e.Description)
}

func (e *Error) Unwrap() error { return e.cause }

// Titles used across the API (contract §1.6).
const (
	TitleBadAPIRequest = "Invalid API request"
	TitleBadBody       = "Invalid request body"
	TitleBadParam      = "Invalid parameter"
	TitleNotFound      = "Not found"
	TitleConflict      = "Resource conflict"
	TitleUnavailable   = "Service temporarily unavailable"
	TitleInternal      = "Internal server error"
)

// BadRequest is a 400 "Invalid API request" (validation of values).
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: 400, Title: TitleBadAPIRequest, Description: fmt.Sprintf(format, args...)}
}

// BadBody is a 400 "Invalid request body" (parse, shape and type errors).
func BadBody(format string, args ...any) *Error {
	return &Error{Status: 400, Title: TitleBadBody, Description: fmt.Sprintf(format, args...)}
}

// NotFound is a 404 with Zaqar's storage message.
func NotFound(format string, args ...any) *Error {
	return &Error{Status: 404, Title: TitleNotFound, Description: fmt.Sprintf(format, args...)}
}

// Unavailable is a 503 telling the client to retry.
func Unavailable(what string, cause error) *Error {
	return &Error{Status: 503, Title: TitleUnavailable, RetryAfter: 1, cause: cause,
		Description: what + " Please try again in a few seconds."}
}

// ReadOnly is the 403 of a node serving a rebuilt projection
// (`herald serve --read-only`): it answers reads only, and has no log to
// read history from.
func ReadOnly(what string) *Error {
	return &Error{Status: 403, Title: "Read-only node",
		Description: what + " This node serves a rebuilt projection read-only."}
}

// Body-level errors shared by the transports.
var (
	ErrBodyUnparseable = BadBody("Request body could not be parsed.")
	ErrBodyEmpty       = BadBody("Request body can not be empty")
	ErrBodyDocType     = BadBody("Document type not supported.")
	ErrBodyBigInt      = BadBody("JSON contains integer that is too large.")
)

// AsError maps any error to an *Error: API errors pass through, everything
// else is a 503 (the store or the log failed; the client may retry).
func AsError(err error, what string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Unavailable(what, err)
}

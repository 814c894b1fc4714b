package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Target is one kind of endpoint the bench drives: Zaqar v2 over REST
// (target_rest.go) or WebSocket (target_ws.go), or NATS JetStream
// (target_nats.go).
//
// Setup and Clean are called at most once each, from the bench's own
// goroutine, before the first worker starts and after the last one ended.
// Dial is called by each worker for itself, again after a Dial failed;
// the Conn it returns belongs to that worker alone.
type Target interface {
	// Setup creates the queues (and whatever the target needs to serve
	// them). Creating an existing queue is not an error.
	Setup(ctx context.Context, queues []string) error
	// Clean deletes the queues and what they hold.
	Clean(ctx context.Context, queues []string) error
	// Dial opens a connection that identifies itself with clientID.
	Dial(ctx context.Context, clientID string) (Conn, error)
}

// Conn is one worker's connection. Only the owning worker's goroutine
// calls its methods. Each call is one request (one round trip) whose
// latency the bench records; ctx carries the per-request timeout.
//
// A failed request returns an error: a *StatusError when the endpoint
// answered with a failure status, anything else counts as a transport
// error (see errorKind). A Conn whose transport broke reconnects by
// itself on the next call.
type Conn interface {
	// Post stores bodies (JSON values) in queue in one request. It
	// returns nil only when the endpoint acknowledged every one of them.
	// Posts are all or nothing unless the error wraps errPartial.
	Post(ctx context.Context, queue string, bodies [][]byte) error
	// Claim takes up to limit messages of queue for claimTTL seconds
	// (grace claimGrace). No messages and a nil error mean there was
	// nothing to claim.
	Claim(ctx context.Context, queue string, limit int) ([]Delivery, error)
	// Delete removes one claimed message, naming its claim.
	Delete(ctx context.Context, queue string, d Delivery) error
	// DeleteMany removes the messages of one claim in a single request.
	DeleteMany(ctx context.Context, queue string, ds []Delivery) error
	// List reads the page of queue at cursor ("" is the head) and returns
	// how many messages it held and the cursor of the next page ("" when
	// the target has no paging).
	List(ctx context.Context, queue, cursor string) (n int, next string, err error)
	// Close ends the connection and waits for its goroutines.
	Close() error
}

// AsyncPoster is a Conn that can keep several posts in flight on one
// connection (WebSocket with --ws-pipeline > 1).
type AsyncPoster interface {
	// PostAsync sends a post and returns once it is on the wire, waiting
	// while the pipeline is full. When it returns nil, done is called
	// exactly once, with the time the frame was sent (so the latency
	// excludes the wait for a pipeline slot) and what Post would have
	// returned, from the Conn's reader goroutine, in the order the posts
	// were sent. When it returns an error, done is never called.
	PostAsync(ctx context.Context, queue string, bodies [][]byte, done func(sent time.Time, err error)) error
	// Drain waits until every pending done has been called; when ctx
	// ends first it fails the pending posts (with a timeout) and waits.
	Drain(ctx context.Context)
}

// Delivery is one message handed to a consumer by Claim.
type Delivery struct {
	// ID identifies the message: Zaqar's message id, or
	// "<stream>:<sequence>" for NATS.
	ID string
	// ClaimID is the Zaqar claim holding the message (empty for NATS).
	ClaimID string
	// Body is the message body as JSON.
	Body []byte
	// ack is what the target needs to acknowledge the message (NATS).
	ack any
}

// StatusError is an answer that carries a failure status: an HTTP status,
// the status of a Zaqar WebSocket response, or a JetStream API error code.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("status %d", e.Status)
	}
	return fmt.Sprintf("status %d: %s", e.Status, e.Body)
}

// errBadAnswer marks an answer with a success status that the bench could
// not understand (wrong shape, wrong count).
var errBadAnswer = errors.New("unexpected answer")

// errPartial marks a failed post of which some messages may have been
// stored (NATS batches are not atomic).
var errPartial = errors.New("batch partly failed")

// Zaqar's claim parameters, as zaqar-bench uses them.
const (
	claimTTL   = 60
	claimGrace = 60
	// listLimit is the page size of observers.
	listLimit = 10
)

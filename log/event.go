package log

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Type names an event type. Types are stable strings: they are written into
// the log and old logs must replay forever.
type Type string

// Event types. Each payload struct below documents its event. Schema changes
// are additive: a new field gets a zero value that means "what older
// versions did", and a change that cannot be expressed that way is a new
// Version of the type, which apply must keep handling for old records.
const (
	QueueCreated    Type = "queue.created"    // QueueCreatedV1
	QueuePatched    Type = "queue.patched"    // QueuePatchedV1
	QueueDeleted    Type = "queue.deleted"    // no payload
	QueuePurged     Type = "queue.purged"     // QueuePurgedV1
	MessagesPosted  Type = "messages.posted"  // MessagesPostedV1
	MessageDeleted  Type = "message.deleted"  // MessageDeletedV1
	MessagesDeleted Type = "messages.deleted" // MessagesDeletedV1
	MessagesPopped  Type = "messages.popped"  // MessagesPoppedV1
	ClaimCreated    Type = "claim.created"    // ClaimCreatedV1
	ClaimRenewed    Type = "claim.renewed"    // ClaimRenewedV1
	ClaimReleased   Type = "claim.released"   // ClaimReleasedV1
)

// CurrentVersion is the envelope version this build writes.
const CurrentVersion = 1

// Record header keys written with every event.
const (
	HeaderType        = "herald-type"
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Event is the envelope of every record value, encoded with MessagePack.
//
// Time is the event time in Unix nanoseconds, set once by the API node that
// appends the event; apply uses it as "now" and never reads a clock. The
// trace context is duplicated in the record headers so tools and the
// projector can link spans without decoding.
type Event struct {
	Type        Type               `msgpack:"t"`
	Version     int                `msgpack:"v"`
	Project     string             `msgpack:"p"`
	Queue       string             `msgpack:"q"`
	Time        int64              `msgpack:"ts"`
	ClientID    string             `msgpack:"c,omitempty"`
	RequestID   string             `msgpack:"r,omitempty"`
	Traceparent string             `msgpack:"tp,omitempty"`
	Tracestate  string             `msgpack:"tst,omitempty"`
	Payload     msgpack.RawMessage `msgpack:"d,omitempty"`
}

// QueueCreatedV1 is PUT /v2/queues/{q}. Metadata is the validated, compact
// JSON object of the request body. Apply creates the queue if it does not
// exist (outcome 201) and otherwise ignores the event (outcome 204).
type QueueCreatedV1 struct {
	Metadata []byte `msgpack:"metadata"`
}

// PatchOp is one JSON-patch operation on queue metadata, already validated
// for shape: Op is add, replace or remove; Key is the metadata key; Value is
// compact JSON (nil for remove).
type PatchOp struct {
	Op    string `msgpack:"op"`
	Key   string `msgpack:"key"`
	Value []byte `msgpack:"value,omitempty"`
}

// QueuePatchedV1 is PATCH /v2/queues/{q}. Apply decides 404 (no queue), 409
// (replace/remove of an absent key) or 400 (resulting metadata invalid), and
// otherwise stores the new metadata. The limits are those the API validated
// with, so a replay validates the same way under any configuration.
type QueuePatchedV1 struct {
	Ops           []PatchOp `msgpack:"ops"`
	MaxMessageTTL int64     `msgpack:"max_ttl"`
	MaxPostSize   int64     `msgpack:"max_post"`
	MaxDelay      int64     `msgpack:"max_delay"`
}

// QueuePurgedV1 is POST /v2/queues/{q}/purge.
type QueuePurgedV1 struct {
	Messages      bool `msgpack:"messages"`
	Subscriptions bool `msgpack:"subscriptions"`
}

// PostedMessage is one message of a post, with TTL and delay resolved by
// the API (seconds) and the body as compact JSON.
type PostedMessage struct {
	TTL   int64  `msgpack:"ttl"`
	Delay int64  `msgpack:"delay,omitempty"`
	Body  []byte `msgpack:"body"`
}

// MessagesPostedV1 is POST /v2/queues/{q}/messages. Apply creates the queue
// if needed and appends the messages in order, atomically.
type MessagesPostedV1 struct {
	Messages []PostedMessage `msgpack:"messages"`
}

// MessageDeletedV1 is DELETE /v2/queues/{q}/messages/{id}[?claim_id=].
// Apply decides by the claim table of the contract (204, 403 or 400).
type MessageDeletedV1 struct {
	ID      string `msgpack:"id"`
	ClaimID string `msgpack:"claim,omitempty"`
}

// MessagesDeletedV1 is DELETE /v2/queues/{q}/messages?ids=...; claims are
// ignored.
type MessagesDeletedV1 struct {
	IDs []string `msgpack:"ids"`
}

// MessagesPoppedV1 is DELETE /v2/queues/{q}/messages?pop=n. Apply removes
// up to Limit unclaimed messages in queue order; the outcome carries them.
type MessagesPoppedV1 struct {
	Limit int `msgpack:"limit"`
}

// ClaimCreatedV1 is POST /v2/queues/{q}/claims. Apply picks the messages;
// the claim id derives from the event's log position.
type ClaimCreatedV1 struct {
	TTL   int64 `msgpack:"ttl"`
	Grace int64 `msgpack:"grace"`
	Limit int   `msgpack:"limit"`
}

// ClaimRenewedV1 is PATCH /v2/queues/{q}/claims/{id}.
type ClaimRenewedV1 struct {
	ClaimID string `msgpack:"claim"`
	TTL     int64  `msgpack:"ttl"`
	Grace   int64  `msgpack:"grace"`
}

// ClaimReleasedV1 is DELETE /v2/queues/{q}/claims/{id}.
type ClaimReleasedV1 struct {
	ClaimID string `msgpack:"claim"`
}

// NewEvent builds an envelope of the current version with payload encoded.
func NewEvent(t Type, project, queue string, now int64, payload any) (*Event, error) {
	ev := &Event{Type: t, Version: CurrentVersion, Project: project, Queue: queue, Time: now}
	if payload != nil {
		b, err := Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("encode %s payload: %w", t, err)
		}
		ev.Payload = b
	}
	return ev, nil
}

// Key is the record key of the event: all events of one queue share it and
// therefore one partition.
func (e *Event) Key() []byte {
	return []byte(e.Project + "/" + e.Queue)
}

// Record builds the log record of the event, with type and trace headers.
func (e *Event) Record() (*Record, error) {
	v, err := Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	rec := &Record{Key: e.Key(), Value: v, Headers: []Header{{Key: HeaderType, Value: []byte(e.Type)}}}
	if e.Traceparent != "" {
		rec.Headers = append(rec.Headers, Header{Key: HeaderTraceparent, Value: []byte(e.Traceparent)})
		if e.Tracestate != "" {
			rec.Headers = append(rec.Headers, Header{Key: HeaderTracestate, Value: []byte(e.Tracestate)})
		}
	}
	return rec, nil
}

// ErrBadEvent marks a record value that is not a decodable event.
var ErrBadEvent = errors.New("log: undecodable event")

// DecodeEvent decodes a record value. It never panics on bad input.
func DecodeEvent(b []byte) (*Event, error) {
	var ev Event
	if err := Unmarshal(b, &ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	if ev.Type == "" || ev.Version < 1 {
		return nil, fmt.Errorf("%w: missing type or version", ErrBadEvent)
	}
	return &ev, nil
}

// DecodePayload decodes the event's payload into v.
func (e *Event) DecodePayload(v any) error {
	if len(e.Payload) == 0 {
		return nil
	}
	if err := Unmarshal(e.Payload, v); err != nil {
		return fmt.Errorf("%w: %s payload: %v", ErrBadEvent, e.Type, err)
	}
	return nil
}

// Marshal encodes v as MessagePack with sorted map keys, so equal values
// always encode to equal bytes (projection digests depend on it).
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Unmarshal decodes MessagePack into v.
func Unmarshal(b []byte, v any) error {
	return msgpack.Unmarshal(b, v)
}

package log

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sync"

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

	SubscriptionCreated   Type = "subscription.created"   // SubscriptionCreatedV1
	SubscriptionUpdated   Type = "subscription.updated"   // SubscriptionUpdatedV1
	SubscriptionDeleted   Type = "subscription.deleted"   // SubscriptionDeletedV1
	SubscriptionConfirmed Type = "subscription.confirmed" // SubscriptionConfirmedV1

	// SubscriptionDelivered is written by the notifier: how far it has
	// delivered a subscription's notifications, and how the last attempts
	// went.
	SubscriptionDelivered Type = "subscription.delivered" // SubscriptionDeliveredV1

	// MessagesDeadLettered is a follow-up event: the projector appends it
	// when a claim moves messages to a dead-letter queue.
	MessagesDeadLettered Type = "messages.dead_lettered" // MessagesDeadLetteredV1

	// Pool and flavor events are the admin catalog. They live in the
	// node's own log under the empty project and queue (AdminKey); queue
	// placements live under the queue's key.
	PoolPut       Type = "pool.put"       // PoolPutV1
	PoolPatched   Type = "pool.patched"   // PoolPatchedV1
	PoolDeleted   Type = "pool.deleted"   // PoolDeletedV1
	FlavorPut     Type = "flavor.put"     // FlavorPutV1
	FlavorPatched Type = "flavor.patched" // FlavorPatchedV1
	FlavorDeleted Type = "flavor.deleted" // FlavorDeletedV1
	QueuePlaced   Type = "queue.placed"   // QueuePlacedV1
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
	Type      Type   `msgpack:"t"`
	Version   int    `msgpack:"v"`
	Project   string `msgpack:"p"`
	Queue     string `msgpack:"q"`
	Time      int64  `msgpack:"ts"`
	ClientID  string `msgpack:"c,omitempty"`
	RequestID string `msgpack:"r,omitempty"`
	// Idempotency, when set, makes apply treat a repeat of the request
	// within its window as the first one (see Idempotency).
	Idempotency *Idempotency       `msgpack:"idem,omitempty"`
	Traceparent string             `msgpack:"tp,omitempty"`
	Tracestate  string             `msgpack:"tst,omitempty"`
	Payload     msgpack.RawMessage `msgpack:"d,omitempty"`
}

// Idempotency is the Idempotency-Key of a request. An event with the same
// Key in the same queue within Window seconds (event time) of the first
// is a retry: apply changes nothing and answers with the first event's
// outcome and position, or 422 when the retry's Fingerprint (a digest of
// the request) differs.
type Idempotency struct {
	Key         string `msgpack:"key"`
	Fingerprint []byte `msgpack:"fp"`
	Window      int64  `msgpack:"window"`
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
//
// Delayed marks a message posted to a delay-enabled queue: it has a delay,
// possibly 0, which its notifications show.
type PostedMessage struct {
	TTL     int64  `msgpack:"ttl"`
	Delay   int64  `msgpack:"delay,omitempty"`
	Delayed bool   `msgpack:"delayed,omitempty"`
	Body    []byte `msgpack:"body"`
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
// the claim id derives from the event's log position. A selected message
// already claimed MaxClaimCount times or more is not claimed but moved to
// DeadLetterQueue (when both are set): apply removes it here and records a
// MessagesDeadLetteredV1 follow-up event that the projector appends to the
// dead-letter queue's partition. The dead-letter settings are the queue's
// as the API read them, so a replay decides the same under any later
// metadata.
type ClaimCreatedV1 struct {
	TTL   int64 `msgpack:"ttl"`
	Grace int64 `msgpack:"grace"`
	Limit int   `msgpack:"limit"`

	MaxClaimCount   int64  `msgpack:"max_claims,omitempty"`
	DeadLetterQueue string `msgpack:"dlq,omitempty"`
	DeadLetterTTL   int64  `msgpack:"dlq_ttl,omitempty"` // seconds; 0 keeps the message's expiry
}

// DeadLetter is one message moved to a dead-letter queue.
type DeadLetter struct {
	ID      string `msgpack:"id"`
	Created int64  `msgpack:"created"` // when it was first posted (ns)
	TTL     int64  `msgpack:"ttl"`     // reported ttl (s)
	Expires int64  `msgpack:"expires"` // ns
	Client  string `msgpack:"client,omitempty"`
	Body    []byte `msgpack:"body"`
}

// MessagesDeadLetteredV1 puts messages moved by a claim into the event's
// queue (the dead-letter queue, same project). Source is the position of
// the claim event that moved them; the target applies a given source
// position once, whoever appended it and however often (the projector
// appends follow-ups again after a crash, and every node of a cluster
// appends them), because each source partition's follow-ups reach a target
// partition in source order.
type MessagesDeadLetteredV1 struct {
	SourcePartition int32        `msgpack:"src_p"`
	SourceOffset    int64        `msgpack:"src_o"`
	Messages        []DeadLetter `msgpack:"messages"`
}

// PoolPutV1 creates or replaces a pool: a log (URI, see OpenURI) that
// queues of its flavor live on. Apply answers 409 when another pool has
// the URI. Options is a compact JSON object.
type PoolPutV1 struct {
	Name    string `msgpack:"name"`
	URI     string `msgpack:"uri"`
	Weight  int64  `msgpack:"weight"`
	Flavor  string `msgpack:"flavor,omitempty"`
	Options []byte `msgpack:"options,omitempty"`
}

// PoolPatchedV1 changes the given fields of a pool (404 when missing,
// 409 on a URI of another pool). An empty Flavor detaches the pool.
type PoolPatchedV1 struct {
	Name    string  `msgpack:"name"`
	URI     *string `msgpack:"uri,omitempty"`
	Weight  *int64  `msgpack:"weight,omitempty"`
	Flavor  *string `msgpack:"flavor,omitempty"`
	Options []byte  `msgpack:"options,omitempty"`
}

// PoolDeletedV1 deletes a pool, unless it is the last pool of its flavor
// (403).
type PoolDeletedV1 struct {
	Name string `msgpack:"name"`
}

// FlavorPutV1 creates or replaces a flavor and assigns Pools to it (400
// when one does not exist). Capabilities is a compact JSON object.
type FlavorPutV1 struct {
	Name         string   `msgpack:"name"`
	Pools        []string `msgpack:"pools"`
	Capabilities []byte   `msgpack:"capabilities,omitempty"`
}

// FlavorPatchedV1 makes Pools the pools of an existing flavor (404 when
// missing, 400 for an unknown pool).
type FlavorPatchedV1 struct {
	Name  string   `msgpack:"name"`
	Pools []string `msgpack:"pools"`
}

// FlavorDeletedV1 deletes a flavor and detaches its pools.
type FlavorDeletedV1 struct {
	Name string `msgpack:"name"`
}

// QueuePlacedV1 records that the event's queue lives on Pool. It is
// written before the queue is created on the pool's log; an empty Pool
// (written after the queue was deleted there) removes the placement.
type QueuePlacedV1 struct {
	Pool string `msgpack:"pool"`
}

// SubscriptionCreatedV1 is POST /v2/queues/{q}/subscriptions, validated.
// Apply returns the existing subscription's id when the same subscriber is
// subscribed but unconfirmed (outcome 200, nothing changes), 409 when it
// is confirmed, and otherwise creates one whose id derives from the
// event's position (outcome 201). Options is a compact JSON object.
//
// The notifier's fields are decided by the API node: Socket marks the
// subscription of a WebSocket connection (its notifications go to the
// socket, not through the notifier); Secret is the key the notifier signs
// webhook requests with; Confirm means only a confirmed subscription gets
// notifications, and ConfirmUntil (Unix seconds, 0 for none) asks for a
// SubscriptionConfirmation message whose signed URL expires then — also
// sent again when an unconfirmed subscriber subscribes again.
type SubscriptionCreatedV1 struct {
	Subscriber   string `msgpack:"subscriber"`
	TTL          int64  `msgpack:"ttl"`
	Options      []byte `msgpack:"options"`
	Socket       bool   `msgpack:"socket,omitempty"`
	Secret       string `msgpack:"secret,omitempty"`
	Confirm      bool   `msgpack:"confirm,omitempty"`
	ConfirmUntil int64  `msgpack:"confirm_until,omitempty"`
}

// SubscriptionUpdatedV1 is PATCH /v2/queues/{q}/subscriptions/{id}; nil
// fields are unchanged. A new TTL restarts the expiry at event time.
// Apply decides 404 (unknown or expired) and 409 (subscriber taken).
type SubscriptionUpdatedV1 struct {
	ID         string  `msgpack:"id"`
	Subscriber *string `msgpack:"subscriber,omitempty"`
	TTL        *int64  `msgpack:"ttl,omitempty"`
	Options    []byte  `msgpack:"options,omitempty"`
}

// SubscriptionDeletedV1 is DELETE /v2/queues/{q}/subscriptions/{id}.
type SubscriptionDeletedV1 struct {
	ID string `msgpack:"id"`
}

// SubscriptionConfirmedV1 is PUT /v2/queues/{q}/subscriptions/{id}/confirm.
// An unconfirmation with ConfirmUntil set (Unix seconds) asks for an
// UnsubscribeConfirmation message whose signed URL expires then.
type SubscriptionConfirmedV1 struct {
	ID           string `msgpack:"id"`
	Confirmed    bool   `msgpack:"confirmed"`
	ConfirmUntil int64  `msgpack:"confirm_until,omitempty"`
}

// SubscriptionDeliveredV1 reports the notifier's progress on subscription
// ID: every pending delivery at or before position (Partition is the
// event's own; Offset, Index) is done — delivered, or refused for good by
// the subscriber — and the status fields describe the attempts since the
// last report. Apply removes the done deliveries and updates the
// subscription's delivery status; Through = -1 reports status only.
type SubscriptionDeliveredV1 struct {
	ID        string `msgpack:"id"`
	Through   int64  `msgpack:"through"`
	Index     int32  `msgpack:"index"`
	Delivered int64  `msgpack:"delivered,omitempty"` // deliveries that succeeded
	Dropped   int64  `msgpack:"dropped,omitempty"`   // refused by the subscriber (4xx), not retried
	// Failures is the count of consecutive failed attempts now; 0 after a
	// success.
	Failures  int    `msgpack:"failures,omitempty"`
	LastError string `msgpack:"error,omitempty"`
	ErrorAt   int64  `msgpack:"error_at,omitempty"` // ns
	// Suspended is set when a delivery exhausted its retry policy: the
	// subscription keeps its pending deliveries and is only probed until
	// one succeeds (Suspended false again) or it is updated.
	Suspended bool `msgpack:"suspended,omitempty"`
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
func (e *Event) Key() []byte { return QueueKey(e.Project, e.Queue) }

// AdminKey is the record key of pool and flavor events.
var AdminKey = QueueKey("", "")

// QueueKey is the record key of every event of queue in project.
func QueueKey(project, queue string) []byte { return []byte(project + "/" + queue) }

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
//
// msgpack's SetSortMapKeys sorts only map[string]string, map[string]bool
// and map[string]any; any other map (map[string]int64, map[int]string, a
// map of structs) comes out in Go's random order. A value that holds such
// a map is therefore re-encoded by canonicalMsgpack. Values of types with
// their own encoder (RawMessage, time.Time, Marshaler implementations) are
// taken as they encode themselves.
func Marshal(v any) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, 256))
	enc := msgpack.GetEncoder()
	enc.Reset(buf)
	enc.SetSortMapKeys(true)
	enc.UseCompactInts(true)
	err := enc.Encode(v)
	msgpack.PutEncoder(enc)
	if err != nil {
		return nil, err
	}
	if holdsUnsortedMap(reflect.ValueOf(v)) {
		return canonicalMsgpack(buf.Bytes())
	}
	return buf.Bytes(), nil
}

// mapsIn says what a type can hold that msgpack will not sort.
type mapsIn uint8

const (
	mapsNone     mapsIn = iota // no map msgpack leaves unsorted
	mapsDynamic                // interfaces: depends on the value
	mapsUnsorted               // a map type msgpack leaves unsorted
)

var (
	mapsInTypes       sync.Map // reflect.Type → mapsIn
	interfaceType     = reflect.TypeFor[any]()
	stringType        = reflect.TypeFor[string]()
	boolType          = reflect.TypeFor[bool]()
	selfEncodingTypes = []reflect.Type{reflect.TypeFor[msgpack.CustomEncoder](), reflect.TypeFor[msgpack.Marshaler](), reflect.TypeFor[encoding.BinaryMarshaler](), reflect.TypeFor[encoding.TextMarshaler]()}
)

func holdsUnsortedMap(v reflect.Value) bool {
	if !v.IsValid() {
		return false
	}
	switch typeMaps(v.Type()) {
	case mapsNone:
		return false
	case mapsUnsorted:
		return true
	}
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		return !v.IsNil() && holdsUnsortedMap(v.Elem())
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if holdsUnsortedMap(it.Value()) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if holdsUnsortedMap(v.Index(i)) {
				return true
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && holdsUnsortedMap(v.Field(i)) {
				return true
			}
		}
	}
	return false
}

func typeMaps(t reflect.Type) mapsIn {
	if m, ok := mapsInTypes.Load(t); ok {
		return m.(mapsIn)
	}
	m := typeMapsIn(t, make(map[reflect.Type]bool))
	mapsInTypes.Store(t, m)
	return m
}

// typeMapsIn mirrors how msgpack picks an encoder for t.
func typeMapsIn(t reflect.Type, seen map[reflect.Type]bool) mapsIn {
	if seen[t] {
		return mapsNone // a recursive type: decided where it was first seen
	}
	seen[t] = true
	for _, se := range selfEncodingTypes {
		if t.Implements(se) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(se)) {
			return mapsNone
		}
	}
	switch t.Kind() {
	case reflect.Interface:
		return mapsDynamic
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return typeMapsIn(t.Elem(), seen)
	case reflect.Map:
		if t.Key() == stringType && (t.Elem() == stringType || t.Elem() == boolType) {
			return mapsNone
		}
		if t.Key() == stringType && t.Elem() == interfaceType {
			return mapsDynamic
		}
		return mapsUnsorted
	case reflect.Struct:
		m := mapsNone
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() {
				m = max(m, typeMapsIn(f.Type, seen))
			}
		}
		return m
	}
	return mapsNone
}

// canonicalMsgpack rewrites an encoded value with the entries of every map
// (structs included: they encode as maps) in increasing key order: string
// keys by their bytes, as SetSortMapKeys orders them, other keys by their
// encoding. Everything else is copied unchanged.
func canonicalMsgpack(b []byte) ([]byte, error) {
	out, rest, err := canonicalValue(make([]byte, 0, len(b)), b)
	if err == nil && len(rest) > 0 {
		err = errors.New("msgpack: trailing bytes")
	}
	if err != nil {
		return nil, fmt.Errorf("canonical encoding: %w", err)
	}
	return out, nil
}

func canonicalValue(out, b []byte) ([]byte, []byte, error) {
	head, body, n, isMap, err := msgpackItem(b)
	if err != nil {
		return nil, nil, err
	}
	if n == 0 {
		return append(out, b[:head+body]...), b[head+body:], nil
	}
	out = append(out, b[:head]...)
	b = b[head:]
	if !isMap {
		for range n {
			if out, b, err = canonicalValue(out, b); err != nil {
				return nil, nil, err
			}
		}
		return out, b, nil
	}
	type entry struct {
		kv     []byte // key then value
		keyLen int
	}
	entries := make([]entry, n/2)
	for i := range entries {
		var kv []byte
		if kv, b, err = canonicalValue(nil, b); err != nil {
			return nil, nil, err
		}
		keyLen := len(kv)
		if kv, b, err = canonicalValue(kv, b); err != nil {
			return nil, nil, err
		}
		entries[i] = entry{kv, keyLen}
	}
	slices.SortFunc(entries, func(x, y entry) int {
		xk, yk := x.kv[:x.keyLen], y.kv[:y.keyLen]
		if xs, ok := msgpackStr(xk); ok {
			if ys, ok := msgpackStr(yk); ok {
				return bytes.Compare(xs, ys)
			}
		}
		return bytes.Compare(xk, yk)
	})
	for _, e := range entries {
		out = append(out, e.kv...)
	}
	return out, b, nil
}

// msgpackItem measures the item at the start of b: its header, the bytes
// that follow the header inline, and for arrays and maps the number of
// nested items (two per map entry).
func msgpackItem(b []byte) (head, body, n int, isMap bool, err error) {
	if len(b) == 0 {
		return 0, 0, 0, false, io.ErrUnexpectedEOF
	}
	c := b[0]
	size := func(w int) int { // big-endian unsigned of w bytes after c
		if len(b) < 1+w {
			return -1
		}
		v := 0
		for _, x := range b[1 : 1+w] {
			v = v<<8 | int(x)
		}
		return v
	}
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		head = 1
	case c&0xf0 == 0x80:
		head, n, isMap = 1, 2*int(c&0x0f), true
	case c&0xf0 == 0x90:
		head, n = 1, int(c&0x0f)
	case c&0xe0 == 0xa0:
		head, body = 1, int(c&0x1f)
	case c == 0xc4 || c == 0xd9:
		head, body = 2, size(1)
	case c == 0xc5 || c == 0xda:
		head, body = 3, size(2)
	case c == 0xc6 || c == 0xdb:
		head, body = 5, size(4)
	case c == 0xc7:
		head, body = 3, size(1)
	case c == 0xc8:
		head, body = 4, size(2)
	case c == 0xc9:
		head, body = 6, size(4)
	case c == 0xca || c == 0xce || c == 0xd2:
		head, body = 1, 4
	case c == 0xcb || c == 0xcf || c == 0xd3:
		head, body = 1, 8
	case c == 0xcc || c == 0xd0:
		head, body = 1, 1
	case c == 0xcd || c == 0xd1:
		head, body = 1, 2
	case c >= 0xd4 && c <= 0xd8: // fixext: type byte, 1<<(c-0xd4) data
		head, body = 2, 1<<(c-0xd4)
	case c == 0xdc:
		head, n = 3, size(2)
	case c == 0xdd:
		head, n = 5, size(4)
	case c == 0xde:
		head, n, isMap = 3, 2*size(2), true
	case c == 0xdf:
		head, n, isMap = 5, 2*size(4), true
	default:
		return 0, 0, 0, false, fmt.Errorf("msgpack: bad code %#x", c)
	}
	// Every nested item takes at least a byte.
	if body < 0 || n < 0 || len(b) < head+body || n > len(b)-head {
		return 0, 0, 0, false, io.ErrUnexpectedEOF
	}
	return head, body, n, isMap, nil
}

// msgpackStr returns the bytes of an encoded string.
func msgpackStr(b []byte) ([]byte, bool) {
	if len(b) == 0 || !(b[0]&0xe0 == 0xa0 || b[0] == 0xd9 || b[0] == 0xda || b[0] == 0xdb) {
		return nil, false
	}
	head, body, _, _, err := msgpackItem(b)
	if err != nil {
		return nil, false
	}
	return b[head : head+body], true
}

// Unmarshal decodes MessagePack into v.
func Unmarshal(b []byte, v any) error {
	return msgpack.Unmarshal(b, v)
}

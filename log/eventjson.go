package log

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// EventJSON is an event as the history API and `herald events` show it:
// the envelope's fields by name, its log position, and its payload as a
// JSON object (the JSON documents the payload carries — bodies, metadata,
// options — appear as JSON, not as bytes). Secrets are left out: a
// subscription's signing secret is shown once, when it is created.
type EventJSON struct {
	Partition      int32           `json:"partition"`
	Offset         int64           `json:"offset"`
	Type           Type            `json:"type"`
	Version        int             `json:"version"`
	Project        string          `json:"project"`
	Queue          string          `json:"queue"`
	Time           string          `json:"time"` // RFC 3339, UTC, nanoseconds
	ClientID       string          `json:"client_id,omitempty"`
	RequestID      string          `json:"request_id,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Traceparent    string          `json:"traceparent,omitempty"`
	Payload        json.RawMessage `json:"payload"`
}

// redacted are payload keys never shown.
var redacted = map[string]bool{"secret": true}

// JSON renders e, read at (partition, offset).
func (e *Event) JSON(partition int32, offset int64) (*EventJSON, error) {
	out := &EventJSON{
		Partition: partition, Offset: offset, Type: e.Type, Version: e.Version,
		Project: e.Project, Queue: e.Queue, Time: time.Unix(0, e.Time).UTC().Format(time.RFC3339Nano),
		ClientID: e.ClientID, RequestID: e.RequestID, Traceparent: e.Traceparent, Payload: json.RawMessage("{}"),
	}
	if e.Idempotency != nil {
		out.IdempotencyKey = e.Idempotency.Key
	}
	if len(e.Payload) == 0 {
		return out, nil
	}
	var v any
	if err := msgpack.Unmarshal(e.Payload, &v); err != nil {
		return nil, fmt.Errorf("decode %s payload: %w", e.Type, err)
	}
	b, err := json.Marshal(jsonValue(v, true))
	if err != nil {
		return nil, fmt.Errorf("render %s payload: %w", e.Type, err)
	}
	out.Payload = b
	return out, nil
}

// jsonValue turns a decoded MessagePack value into one encoding/json
// renders faithfully: byte strings holding JSON become that JSON (others
// base64 text), maps get string keys, and top-level secrets go.
func jsonValue(v any, top bool) any {
	switch x := v.(type) {
	case []byte:
		if json.Valid(x) {
			return json.RawMessage(x)
		}
		return base64.StdEncoding.EncodeToString(x)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			if top && redacted[k] {
				continue
			}
			m[k] = jsonValue(e, false)
		}
		return m
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonValue(e, false)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = jsonValue(e, false)
		}
		return l
	}
	return v
}

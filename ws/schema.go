package ws

import (
	"encoding/json"
	"strings"
)

// The request schema of every action (contract §4.3 step 4): which body
// fields it requires and the JSON type of each field it knows. Extra
// fields are allowed.

type fieldType int

const (
	tString fieldType = iota
	tInteger
	tBool
	tObject
	tArray
)

type action struct {
	// noBody: the body may be absent (queue_list, authenticate, ...).
	noBody   bool
	required []string
	fields   map[string]fieldType
	// headers the action requires besides the always-required object.
	headers []string
}

var dataHeaders = []string{"Client-ID", "X-Project-ID"}

func queueAction(required []string, fields map[string]fieldType) action {
	f := map[string]fieldType{"queue_name": tString}
	for k, v := range fields {
		f[k] = v
	}
	return action{required: append([]string{"queue_name"}, required...), fields: f, headers: dataHeaders}
}

var actions = map[string]action{
	"queue_list":      {noBody: true, fields: map[string]fieldType{"marker": tString, "limit": tInteger, "detailed": tBool}, headers: dataHeaders},
	"queue_create":    queueAction(nil, map[string]fieldType{"metadata": tObject}),
	"queue_get":       queueAction(nil, nil),
	"queue_delete":    queueAction(nil, nil),
	"queue_get_stats": queueAction(nil, nil),
	"queue_purge":     queueAction(nil, map[string]fieldType{"resource_types": tArray}),

	"message_list": queueAction(nil, map[string]fieldType{"marker": tString, "limit": tInteger,
		"echo": tBool, "include_claimed": tBool, "include_delayed": tBool}),
	"message_get":         queueAction([]string{"message_id"}, map[string]fieldType{"message_id": tString}),
	"message_get_many":    queueAction([]string{"message_ids"}, map[string]fieldType{"message_ids": tArray}),
	"message_post":        queueAction([]string{"messages"}, map[string]fieldType{"messages": tArray}),
	"message_delete":      queueAction([]string{"message_id"}, map[string]fieldType{"message_id": tString, "claim_id": tString}),
	"message_delete_many": queueAction(nil, map[string]fieldType{"message_ids": tArray, "claim_ids": tArray, "pop": tInteger}),

	"claim_create": queueAction(nil, map[string]fieldType{"limit": tInteger, "ttl": tInteger, "grace": tInteger}),
	"claim_get":    queueAction([]string{"claim_id"}, map[string]fieldType{"claim_id": tString}),
	"claim_update": queueAction([]string{"claim_id"}, map[string]fieldType{"claim_id": tString, "ttl": tInteger, "grace": tInteger}),
	"claim_delete": queueAction([]string{"claim_id"}, map[string]fieldType{"claim_id": tString}),

	"subscription_create": queueAction(nil, map[string]fieldType{"subscriber": tString, "ttl": tInteger, "options": tObject}),
	"subscription_get":    queueAction([]string{"subscription_id"}, map[string]fieldType{"subscription_id": tString}),
	"subscription_list":   queueAction(nil, map[string]fieldType{"marker": tString, "limit": tInteger}),
	"subscription_delete": queueAction([]string{"subscription_id"}, map[string]fieldType{"subscription_id": tString}),

	"authenticate": {noBody: true, headers: []string{"X-Project-ID", "X-Auth-Token"}},

	// Herald's extension: resumable streams of a queue's messages.
	"stream_subscribe":   queueAction(nil, map[string]fieldType{"after": tString}),
	"stream_unsubscribe": queueAction(nil, nil),
	// And a queue's history, as GET /v2/queues/{q}/history.
	"queue_history": queueAction(nil, map[string]fieldType{"marker": tString, "limit": tInteger,
		"types": tArray, "since": tString, "until": tString}),

	// Known to Zaqar's schema but not implemented there; Herald answers
	// them with an error frame instead of never answering (contract B2).
	"get_home_doc":      {noBody: true},
	"check_node_health": {noBody: true},
	"ping_node":         {noBody: true},
	"pool_list":         {}, "pool_create": {}, "pool_update": {}, "pool_get": {}, "pool_delete": {},
	"flavor_list": {}, "flavor_create": {}, "flavor_update": {}, "flavor_get": {}, "flavor_delete": {},
}

// unimplemented lists the schema-only actions.
func unimplemented(name string) bool {
	return strings.HasPrefix(name, "pool_") || strings.HasPrefix(name, "flavor_") ||
		name == "get_home_doc" || name == "check_node_health" || name == "ping_node"
}

// stringHeaders must be strings when present.
var stringHeaders = []string{"Client-ID", "X-Project-ID", "X-Auth-Token", "User-Agent", "Date", "Accept"}

// valid reports whether a request with headers h and body b (nil when
// absent) passes the action's schema.
func (a action) valid(h map[string]any, hasHeaders bool, b any, hasBody bool) bool {
	if !hasHeaders || h == nil {
		return false
	}
	for _, k := range stringHeaders {
		if v, ok := h[k]; ok {
			if _, isStr := v.(string); !isStr {
				return false
			}
		}
	}
	for _, k := range a.headers {
		if _, ok := h[k]; !ok {
			return false
		}
	}
	if !hasBody {
		return a.noBody
	}
	body, ok := b.(map[string]any)
	if !ok {
		return false
	}
	for _, k := range a.required {
		if _, ok := body[k]; !ok {
			return false
		}
	}
	for k, t := range a.fields {
		v, ok := body[k]
		if ok && !hasType(v, t) {
			return false
		}
	}
	return true
}

func hasType(v any, t fieldType) bool {
	switch t {
	case tString:
		_, ok := v.(string)
		return ok
	case tInteger:
		n, ok := v.(json.Number)
		return ok && !strings.ContainsAny(string(n), ".eE")
	case tBool:
		_, ok := v.(bool)
		return ok
	case tObject:
		_, ok := v.(map[string]any)
		return ok
	case tArray:
		_, ok := v.([]any)
		return ok
	}
	return false
}

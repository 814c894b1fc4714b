package projection

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Reserved queue metadata keys that GET and PATCH always report, in the
// order Zaqar fills them.
var ReservedKeys = []string{
	"_max_messages_post_size",
	"_default_message_ttl",
	"_default_message_delay",
	"_dead_letter_queue",
	"_dead_letter_queue_messages_ttl",
	"_max_claim_count",
	"_enable_encrypt_messages",
}

// IsReserved reports whether key is one of ReservedKeys.
func IsReserved(key string) bool {
	for _, k := range ReservedKeys {
		if k == key {
			return true
		}
	}
	return false
}

// Limits are the bounds metadata validation uses. The API puts the values
// it validated with into events whose apply validates again, so a replay
// decides the same way whatever the configuration is by then.
type Limits struct {
	MaxMessageTTL       int64 `msgpack:"max_ttl"`
	MaxMessagesPostSize int64 `msgpack:"max_post"`
	MaxMessageDelay     int64 `msgpack:"max_delay"`
}

// DefaultLimits are Zaqar's defaults.
var DefaultLimits = Limits{MaxMessageTTL: 1209600, MaxMessagesPostSize: 262144, MaxMessageDelay: 900}

// MetadataError is a validation failure of queue metadata.
type MetadataError struct{ Description string }

func (e *MetadataError) Error() string { return e.Description }

// DecodeObject decodes a JSON object keeping numbers as json.Number.
func DecodeObject(b []byte) (map[string]any, error) {
	m := map[string]any{}
	if len(b) == 0 {
		return m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// EncodeJSON encodes v compactly with sorted map keys and without HTML
// escaping (non-ASCII stays literal, as Zaqar writes it).
func EncodeJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("projection: encode JSON: %v", err)) // values come from decoded JSON
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// IntOf returns v as an integer with Python's semantics for JSON values:
// integers and booleans are ints; floats, strings and null are not.
func IntOf(v any) (int64, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case json.Number:
		i, err := strconv.ParseInt(string(x), 10, 64)
		return i, err == nil
	}
	return 0, false
}

// Truthy is Python's truth value of a decoded JSON value.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case json.Number:
		f, err := x.Float64()
		return err != nil || f != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// ValidateMetadata checks the reserved keys of queue metadata (contract
// §3.7). Wrong types that Zaqar would crash on are reported as 400s too.
func ValidateMetadata(m map[string]any, lim Limits) error {
	ranged := func(key string, lo, hi int64, msg string) error {
		v, ok := m[key]
		if !ok || v == nil {
			return nil
		}
		if i, ok := IntOf(v); !ok || i < lo || i > hi {
			return &MetadataError{msg}
		}
		return nil
	}
	if err := ranged("_default_message_ttl", 60, lim.MaxMessageTTL,
		fmt.Sprintf("The default TTL for messages may not exceed %d seconds, and must be at least 60 seconds long.", lim.MaxMessageTTL)); err != nil {
		return err
	}
	if err := ranged("_max_messages_post_size", 1, lim.MaxMessagesPostSize,
		fmt.Sprintf("The max size of the messages post may not exceed %d bytes, and must be at least 1 byte.", lim.MaxMessagesPostSize)); err != nil {
		return err
	}
	if err := ranged("_default_message_delay", 0, lim.MaxMessageDelay,
		fmt.Sprintf("The value of default message delay may not exceed %d seconds, and must be at least 0 seconds long.", lim.MaxMessageDelay)); err != nil {
		return err
	}
	if err := ranged("_dead_letter_queue_messages_ttl", 60, lim.MaxMessageTTL,
		fmt.Sprintf("The TTL for a message in the dead letter queue may not exceed %d seconds, and must be at least 60 seconds long.", lim.MaxMessageTTL)); err != nil {
		return err
	}
	if v := m["_max_claim_count"]; Truthy(v) {
		if _, ok := IntOf(v); !ok {
			return &MetadataError{"The max claim count must be an integer."}
		}
	}
	if v := m["_enable_encrypt_messages"]; Truthy(v) {
		if _, ok := v.(bool); !ok {
			return &MetadataError{"The _enable_encrypt_messages must be boolean."}
		}
	}
	return ValidateRetryPolicy(m["_retry_policy"])
}

// Webhook retry policy defaults (contract §3.10.5).
const (
	DefaultMinimumDelay = 5
	DefaultMaximumDelay = 30
	// BackoffStep is the spacing of the back-off functions' delays: a
	// policy needs two steps between its delays to have any.
	BackoffStep = 5
)

// ValidateRetryPolicy checks a _retry_policy value of queue metadata or of
// subscription options the way Zaqar does: falsy values pass, typed keys
// are checked when truthy, and the delays must leave room for a back-off.
func ValidateRetryPolicy(v any) error {
	if !Truthy(v) {
		return nil
	}
	p, ok := v.(map[string]any)
	if !ok {
		return &MetadataError{"retry_policy must be a dict."}
	}
	for _, k := range []string{"retries_with_no_delay", "minimum_delay_retries", "minimum_delay", "maximum_delay", "maximum_delay_retries"} {
		if x := p[k]; Truthy(x) {
			if _, ok := IntOf(x); !ok {
				return &MetadataError{fmt.Sprintf("Retry policy: %s must be a integer.", k)}
			}
		}
	}
	if x := p["retry_backoff_function"]; Truthy(x) {
		f, ok := x.(string)
		if !ok {
			return &MetadataError{"retry_backoff_function must be a string."}
		}
		switch f {
		case "linear", "arithmetic", "exponential", "geometric":
		default:
			return &MetadataError{"invalid retry_backoff_function."}
		}
	}
	if x := p["ignore_subscription_override"]; Truthy(x) {
		if _, ok := x.(bool); !ok {
			return &MetadataError{"ignore_subscription_override must be a boolean."}
		}
	}
	delay := func(k string, def int64) int64 {
		if i, ok := IntOf(p[k]); ok {
			return i
		}
		return def
	}
	lo, hi := delay("minimum_delay", DefaultMinimumDelay), delay("maximum_delay", DefaultMaximumDelay)
	if hi < lo {
		return &MetadataError{"minimum_delay must less than maximum_delay."}
	}
	if hi-lo < 2*BackoffStep {
		return &MetadataError{"invalid minimum_delay and maximum_delay."}
	}
	return nil
}

// QueueInt returns an integer metadata value when it is set and truthy.
func QueueInt(m map[string]any, key string) (int64, bool) {
	v, ok := m[key]
	if !ok || !Truthy(v) {
		return 0, false
	}
	return IntOf(v)
}

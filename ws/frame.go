package ws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	fastjson "github.com/goccy/go-json"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Frames (contract §4.2): a text frame is one JSON request, a binary frame
// one MessagePack request; the answer goes back in the same encoding.
// Decoded values take the shapes encoding/json gives with UseNumber
// (map[string]any, []any, json.Number, string, bool, nil) whatever the
// encoding, so the actions and package api see one kind of value.

type encoding int

const (
	encJSON encoding = iota
	encMsgpack
)

// decodeFrame decodes a request frame. The error text follows Zaqar's.
func decodeFrame(enc encoding, data []byte) (any, error) {
	if enc == encJSON {
		if !utf8.Valid(data) {
			return nil, fmt.Errorf("Can't decode text (JSON) request. UnicodeDecodeError: invalid UTF-8")
		}
		d := fastjson.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("Can't decode text (JSON) request. JSONDecodeError: %v", err)
		}
		if d.More() {
			return nil, fmt.Errorf("Can't decode text (JSON) request. JSONDecodeError: Extra data")
		}
		return v, nil
	}
	rd := bytes.NewReader(data)
	d := msgpack.NewDecoder(rd)
	v, err := readMsgpack(d, rd, 0)
	if err != nil {
		return nil, fmt.Errorf("Can't decode binary (MessagePack) request. UnpackValueError: %v", err)
	}
	if rd.Len() > 0 {
		return nil, fmt.Errorf("Can't decode binary (MessagePack) request. ExtraData: unpack(b) received extra data.")
	}
	out, err := fromMsgpack(v)
	if err != nil {
		return nil, fmt.Errorf("Can't decode binary (MessagePack) request. %v", err)
	}
	return out, nil
}

// maxDepth bounds the nesting of arrays and maps in a MessagePack
// request, as encoding/json bounds text frames (10000): the decoders and
// encoders recurse, and a frame of a million nested arrays would overflow
// the stack, which kills the process.
const maxDepth = 10000

// readMsgpack reads one value as msgpack's DecodeInterfaceLoose does, but
// bounds nesting and never allocates for more elements than the bytes
// left can hold (the loose decoder trusts a header: the 5-byte frame
// "dd ff ff ff ff" made it allocate 64 GiB).
func readMsgpack(d *msgpack.Decoder, rd *bytes.Reader, depth int) (any, error) {
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	isArray := msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
	isMap := msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
	if !isArray && !isMap {
		return d.DecodeInterfaceLoose()
	}
	if depth >= maxDepth {
		return nil, fmt.Errorf("nesting deeper than %d", maxDepth)
	}
	if isArray {
		n, err := d.DecodeArrayLen()
		if err != nil {
			return nil, err
		}
		if n > rd.Len() { // every element takes a byte at least
			return nil, fmt.Errorf("array of %d elements in %d bytes", n, rd.Len())
		}
		// Grow as elements arrive: nested headers each claim the whole
		// rest of the frame, so sizing by them would multiply memory.
		out := make([]any, 0, min(n, 64))
		for range n {
			e, err := readMsgpack(d, rd, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	}
	n, err := d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	if n > rd.Len()/2 { // a key and a value: two bytes at least
		return nil, fmt.Errorf("map of %d entries in %d bytes", n, rd.Len())
	}
	out := make(map[string]any, min(n, 64))
	for range n {
		k, err := readMsgpack(d, rd, depth+1)
		if err != nil {
			return nil, err
		}
		ks, ok := k.(string)
		if b, isBytes := k.([]byte); isBytes {
			ks, ok = string(b), true
		}
		if !ok { // a list or map key would not even be hashable
			return nil, fmt.Errorf("TypeError: map keys must be strings, not %T", k)
		}
		if out[ks], err = readMsgpack(d, rd, depth+1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fromMsgpack converts a loosely decoded MessagePack value to the JSON
// value shapes. Raw strings and bin are read as UTF-8 text, as Zaqar does.
func fromMsgpack(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool:
		return x, nil
	case string:
		if !utf8.ValidString(x) {
			return nil, fmt.Errorf("UnicodeDecodeError: invalid UTF-8")
		}
		return x, nil
	case []byte:
		if !utf8.Valid(x) {
			return nil, fmt.Errorf("UnicodeDecodeError: invalid UTF-8")
		}
		return string(x), nil
	case int8:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int16:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int32:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), nil
	case uint8:
		return json.Number(strconv.FormatUint(uint64(x), 10)), nil
	case uint16:
		return json.Number(strconv.FormatUint(uint64(x), 10)), nil
	case uint32:
		return json.Number(strconv.FormatUint(uint64(x), 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(x, 10)), nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("ValueError: %v is not JSON", x)
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !bytes.ContainsAny([]byte(s), ".eE") {
			s += ".0" // stays a float: 60.0 is no int
		}
		return json.Number(s), nil
	case float32:
		return fromMsgpack(float64(x))
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := fromMsgpack(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if !utf8.ValidString(k) {
				return nil, fmt.Errorf("UnicodeDecodeError: invalid UTF-8")
			}
			c, err := fromMsgpack(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if b, isBytes := k.([]byte); isBytes {
				ks, ok = string(b), true
			}
			if !ok {
				return nil, fmt.Errorf("TypeError: map keys must be strings, not %T", k)
			}
			if !utf8.ValidString(ks) {
				return nil, fmt.Errorf("UnicodeDecodeError: invalid UTF-8")
			}
			c, err := fromMsgpack(e)
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	}
	return nil, fmt.Errorf("TypeError: unsupported MessagePack type %T", v)
}

// encodeFrame encodes an answer or a notification.
func encodeFrame(enc encoding, v any) ([]byte, error) {
	if enc == encJSON {
		var buf bytes.Buffer
		e := fastjson.NewEncoder(&buf)
		e.SetEscapeHTML(false)
		if err := e.Encode(v); err != nil {
			return nil, err
		}
		return bytes.TrimRight(buf.Bytes(), "\n"), nil
	}
	mv, err := toMsgpack(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.SetSortMapKeys(true)
	if err := e.Encode(mv); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func toMsgpackList[T any](xs []T) ([]any, error) {
	out := make([]any, len(xs))
	for i, e := range xs {
		c, err := toMsgpack(e)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// toMsgpack turns JSON value shapes (and raw JSON, as message bodies are
// stored) into values MessagePack encodes natively.
func toMsgpack(v any) (any, error) {
	switch x := v.(type) {
	case json.RawMessage:
		d := json.NewDecoder(bytes.NewReader(x))
		d.UseNumber()
		var dec any
		if err := d.Decode(&dec); err != nil {
			return nil, err
		}
		return toMsgpack(dec)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u, nil // past int64: still an integer, not a float
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if errors.Is(err, strconv.ErrRange) {
			// 1e400 is stored as sent; Python reads it as inf and packs
			// that, rather than failing the whole answer.
			return f, nil
		}
		return f, err
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := toMsgpack(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case []any:
		return toMsgpackList(x)
	case []map[string]any:
		return toMsgpackList(x)
	case []string:
		return toMsgpackList(x)
	}
	return v, nil
}

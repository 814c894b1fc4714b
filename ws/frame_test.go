package ws

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzDecodeFrame feeds request frames of both encodings (contract §4.1,
// §4.3 step 1) to the decoder: it never panics, never allocates past what
// the frame can hold, and what it decodes has only the value shapes the
// actions expect (objects, arrays, numbers, UTF-8 strings, booleans,
// null). A decoded value encodes again in its own encoding, as the request
// echo of the answer does, and decodes back to itself.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"action":"queue_list","headers":{"Client-ID":"31209ff3-ba03-4cec-b4ca-655f4899f8f4","X-Project-ID":"p"}}`,
		`{"action":"message_post","headers":{},"body":{"queue_name":"q","messages":[{"body":{"a":[1,2.5,-3e7,null,true]},"ttl":60}]}}`,
		"123", "\ufeff", `{"a":1}{"b":2}`, `[[[[[[]]]]]]`, `{"n":1e400}`, `{"s":"\ud800"}`, "\xff",
	} {
		f.Add(false, []byte(s))
	}
	for _, v := range []any{
		map[string]any{"action": "queue_list", "headers": map[string]any{"Client-ID": "c", "X-Project-ID": "p"}},
		map[string]any{"action": "message_post", "body": map[string]any{"queue_name": "q",
			"messages": []any{map[string]any{"body": 1.5, "ttl": uint64(math.MaxUint64)}}}},
		[]any{int8(-1), float32(0.1), "x", nil, true},
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(true, b)
	}
	for _, b := range [][]byte{
		{0xc1},                               // never used
		{0xdd, 0xff, 0xff, 0xff, 0xff},       // array32 of 4 G elements
		{0xdf, 0xff, 0xff, 0xff, 0xff},       // map32 of 4 G entries
		{0xdb, 0xff, 0xff, 0xff, 0xff},       // str32 of 4 GiB
		{0x81, 0x01, 0xc0},                   // int key
		{0x81, 0x91, 0xc0, 0xc0},             // array key
		{0xa2, 0xff, 0xfe},                   // invalid UTF-8
		{0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}, // NaN
		{0xd4, 0x01, 0x00},                   // fixext1
		oldStyleRequest(strings.Repeat("p", 40)),
		append(bytes.Repeat([]byte{0x91}, maxDepth+1), 0xc0),
	} {
		f.Add(true, b)
	}
	f.Fuzz(func(t *testing.T, binary bool, data []byte) {
		enc := encJSON
		if binary {
			enc = encMsgpack
		}
		v, err := decodeFrame(enc, data)
		if !binary {
			// Text frames read exactly as encoding/json reads them.
			want, wantErr := stdDecode(data)
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("%q: decoded with error %v, encoding/json says %v", data, err, wantErr)
			}
			if err == nil && !reflect.DeepEqual(v, want) {
				t.Fatalf("%q: decoded as %#v, encoding/json reads %#v", data, v, want)
			}
		}
		if err != nil {
			prefix := "Can't decode text (JSON) request. "
			if binary {
				prefix = "Can't decode binary (MessagePack) request. "
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("error %q lacks %q", err, prefix)
			}
			return
		}
		if err := jsonShaped(v); err != "" {
			t.Fatalf("decoded %#v: %s", v, err)
		}
		out, err := encodeFrame(enc, v)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", v, err)
		}
		if !binary {
			var std bytes.Buffer
			e := json.NewEncoder(&std)
			e.SetEscapeHTML(false)
			if err := e.Encode(v); err != nil {
				t.Fatal(err)
			}
			if want := bytes.TrimRight(std.Bytes(), "\n"); !bytes.Equal(out, want) {
				t.Fatalf("%#v encodes as %s, encoding/json as %s", v, out, want)
			}
		}
		again, err := decodeFrame(enc, out)
		if err != nil {
			t.Fatalf("re-encoded %x does not decode: %v", out, err)
		}
		if !reflect.DeepEqual(v, again) {
			t.Fatalf("round trip changed %#v into %#v", v, again)
		}
	})
}

// jsonShaped says what, if anything, in v is not a value encoding/json
// with UseNumber would give.
func jsonShaped(v any) string {
	switch x := v.(type) {
	case nil, bool:
		return ""
	case string:
		if !utf8.ValidString(x) {
			return "string is not UTF-8"
		}
		return ""
	case json.Number:
		if !json.Valid([]byte(x)) {
			return "number " + string(x) + " is not JSON"
		}
		return ""
	case []any:
		for _, e := range x {
			if s := jsonShaped(e); s != "" {
				return s
			}
		}
		return ""
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) {
				return "key is not UTF-8"
			}
			if s := jsonShaped(e); s != "" {
				return s
			}
		}
		return ""
	}
	return reflect.TypeOf(v).String() + " is not a JSON shape"
}

// raw encodes s as a MessagePack string before str8 existed (Python's
// msgpack with use_bin_type=False): fixraw up to 31 bytes, raw16 beyond.
func raw(s string) []byte {
	if len(s) < 32 {
		return append([]byte{0xa0 | byte(len(s))}, s...)
	}
	return append([]byte{0xda, byte(len(s) >> 8), byte(len(s))}, s...)
}

// oldStyleRequest is {"action": "queue_list", "headers": {"X-Project-ID":
// project}, "body": {"detailed": true, "limit": 5}} in the old format.
func oldStyleRequest(project string) []byte {
	return bytes.Join([][]byte{{0x83}, raw("action"), raw("queue_list"), raw("headers"), {0x81}, raw("X-Project-ID"), raw(project),
		raw("body"), {0x82}, raw("detailed"), {0xc3}, raw("limit"), {0x05}}, nil)
}

// TestMsgpackRoundTrip: JSON-shaped values survive toMsgpack, the wire and
// fromMsgpack unchanged: integers stay integers (also past int64), floats
// stay floats (60.0 is no int), strings stay UTF-8 text.
func TestMsgpackRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"null", nil},
		{"bools", []any{true, false}},
		{"small ints", []any{json.Number("0"), json.Number("-1"), json.Number("127"), json.Number("-32"), json.Number("128")}},
		{"wide ints", []any{json.Number("2147483648"), json.Number("-9223372036854775808"), json.Number("9223372036854775807")}},
		{"past int64", json.Number("18446744073709551615")},
		{"floats", []any{json.Number("60.0"), json.Number("0.5"), json.Number("-1.5e-07"), json.Number("1e+21"), json.Number("-0.0")}},
		{"strings", []any{"", "ü→漢", strings.Repeat("s", 300), strings.Repeat("k", 70000)}},
		{"nested", map[string]any{"a": []any{map[string]any{"b": map[string]any{}}, []any{}}, "": "empty key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mv, err := toMsgpack(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			b, err := msgpack.Marshal(mv)
			if err != nil {
				t.Fatal(err)
			}
			v, err := decodeFrame(encMsgpack, b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(v, tc.v) {
				t.Fatalf("round trip: %#v, want %#v", v, tc.v)
			}
		})
	}

	// Stored message bodies are raw JSON: they go out as MessagePack values.
	mv, err := toMsgpack(map[string]any{"body": json.RawMessage(`{"k":[1,2.5,"v",null]}`), "ids": []string{"a"},
		"items": []map[string]any{{"n": json.Number("3")}}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"body": map[string]any{"k": []any{int64(1), 2.5, "v", nil}}, "ids": []any{"a"},
		"items": []any{map[string]any{"n": int64(3)}}}
	if !reflect.DeepEqual(mv, want) {
		t.Fatalf("toMsgpack: %#v, want %#v", mv, want)
	}

	// A stored number past float64 goes out as Python would send it: inf.
	for num, sign := range map[string]int{"1e400": 1, "-1e400": -1} {
		f, err := toMsgpack(json.Number(num))
		if err != nil || !math.IsInf(f.(float64), sign) {
			t.Fatalf("toMsgpack(%s) = %v, %v", num, f, err)
		}
	}

	// Answers carry str-typed strings, never bin (contract §4.1).
	out, err := encodeFrame(encMsgpack, map[string]any{"k": strings.Repeat("v", 40)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out[:5], []byte{0x81, 0xa1, 'k', 0xd9, 40}) {
		t.Fatalf("answer encoding % x", out[:5])
	}
}

// TestMsgpackOldStyleAndBin: a request whose strings are old raw strings
// or bin is read as UTF-8 text, as Zaqar's default unpacker does.
func TestMsgpackOldStyleAndBin(t *testing.T) {
	long := strings.Repeat("p", 40) // raw16: old style had no str8
	v, err := decodeFrame(encMsgpack, oldStyleRequest(long))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"action": "queue_list", "headers": map[string]any{"X-Project-ID": long},
		"body": map[string]any{"detailed": true, "limit": json.Number("5")}}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("old style: %#v, want %#v", v, want)
	}
	// {"k": bin8 "ü"}
	v, err = decodeFrame(encMsgpack, []byte{0x81, 0xc4, 0x01, 'k', 0xc4, 0x02, 0xc3, 0xbc})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, map[string]any{"k": "ü"}) {
		t.Fatalf("bin: %#v", v)
	}
}

// TestDecodeFrameRefuses: frames the decoder must refuse with Zaqar's
// error text instead of crashing or allocating what a header claims.
func TestDecodeFrameRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		enc  encoding
		data []byte
		want string
	}{
		{"huge array header", encMsgpack, []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, "array of 4294967295 elements"},
		{"huge map header", encMsgpack, []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, "map of 4294967295 entries"},
		{"huge string header", encMsgpack, []byte{0xdb, 0xff, 0xff, 0xff, 0xff}, "EOF"},
		{"too deep", encMsgpack, append(bytes.Repeat([]byte{0x91}, maxDepth+1), 0xc0), "nesting deeper than"},
		{"million deep", encMsgpack, append(bytes.Repeat([]byte{0x91}, 1<<20), 0xc0), "nesting deeper than"},
		{"int key", encMsgpack, []byte{0x81, 0x01, 0xc0}, "map keys must be strings"},
		{"array key", encMsgpack, []byte{0x81, 0x90, 0xc0}, "map keys must be strings"},
		{"invalid UTF-8", encMsgpack, []byte{0xa2, 0xff, 0xfe}, "UnicodeDecodeError"},
		{"invalid UTF-8 key", encMsgpack, []byte{0x81, 0xa1, 0xff, 0xc0}, "UnicodeDecodeError"},
		{"NaN", encMsgpack, []byte{0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}, "is not JSON"},
		{"extra data", encMsgpack, []byte{0xc0, 0xc0}, "ExtraData"},
		{"empty", encMsgpack, nil, "EOF"},
		{"BOM", encJSON, []byte("\ufeff"), "JSONDecodeError"},
		{"not UTF-8", encJSON, []byte{'"', 0xff, '"'}, "UnicodeDecodeError"},
		{"extra JSON", encJSON, []byte(`{} {}`), "Extra data"},
		{"too deep JSON", encJSON, []byte(strings.Repeat("[", 10001) + strings.Repeat("]", 10001)), "JSONDecodeError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := decodeFrame(tc.enc, tc.data)
			if err == nil {
				t.Fatalf("decoded %#v", v)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "Can't decode ") {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// stdDecode is what decodeFrame accepted from text frames when it used
// encoding/json.
func stdDecode(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("extra data")
	}
	return v, nil
}

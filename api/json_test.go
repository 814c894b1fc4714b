package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"unicode/utf8"
)

func TestParseJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *Error // nil: accepted
	}{
		{`{}`, nil},
		{`[]`, nil},
		{`{"a": [1, 2.5, 1e3, -9223372036854775808]}`, nil},
		{`{"a": 9223372036854775808}`, ErrBodyBigInt},
		{`[{"x": [-9223372036854775809]}]`, ErrBodyBigInt},
		{`"fail"`, ErrBodyUnparseable},
		{`123`, ErrBodyUnparseable},
		{`null`, ErrBodyUnparseable},
		{`{`, ErrBodyUnparseable},
		{`{} {}`, ErrBodyUnparseable},
		{"{\"a\": \"\xff\"}", ErrBodyUnparseable},
		{``, ErrBodyUnparseable},
		{" \n ", ErrBodyUnparseable},
	} {
		_, err := ParseJSON([]byte(tc.in))
		if err != tc.want {
			t.Errorf("ParseJSON(%q) = %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestNormalizeClientID(t *testing.T) {
	const want = "550e8400e29b41d4a716446655440000"
	for _, in := range []string{
		"550e8400e29b41d4a716446655440000",
		"550e8400-e29b-41d4-a716-446655440000",
		"{550E8400-E29B-41D4-A716-446655440000}",
		"urn:uuid:550e8400-e29b-41d4-a716-446655440000",
		"550e-8400e29b41d4a716446655440000",
	} {
		if got, ok := NormalizeClientID(in); !ok || got != want {
			t.Errorf("NormalizeClientID(%q) = %q, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "0xdeadbeef", "550893e0-2b6e-11e3-835a-5cf9dd72369", "550e8400e29b41d4a71644665544000g"} {
		if _, ok := NormalizeClientID(in); ok {
			t.Errorf("NormalizeClientID(%q) accepted", in)
		}
	}
}

func TestQueryScalars(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "True": true, "yes": true, "1": true, "on": true, "false": false, "f": false, "off": false} {
		if got, err := ParseBool("echo", in); err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"None", "maybe", ""} {
		if _, err := ParseBool("echo", in); err == nil || err.Title != TitleBadParam {
			t.Errorf("ParseBool(%q) = %v", in, err)
		}
	}
	for in, want := range map[string]int64{"5": 5, "+5": 5, "-1": -1, "0": 0} {
		if got, err := ParseInt("limit", in); err != nil || got != want {
			t.Errorf("ParseInt(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"5.0", "abc", " ", "", "+", "1e2"} {
		if _, err := ParseInt("limit", in); err == nil {
			t.Errorf("ParseInt(%q) accepted", in)
		}
	}
}

func TestParsePatch(t *testing.T) {
	ok := `[{"op":"add","path":"/metadata/a~1b","value":1},{"op":"remove","path":"/anything/k"},{"op":"replace","path":"/METADATA/ c ","value":null}]`
	var doc []any
	if err := json.Unmarshal([]byte(ok), &doc); err != nil {
		t.Fatal(err)
	}
	ops, err := ParsePatch(doc)
	if err != nil {
		t.Fatal(err)
	}
	if ops[0].Key != "a/b" || string(ops[0].Value) != "1" || ops[1].Key != "k" || ops[2].Key != "c" || string(ops[2].Value) != "null" {
		t.Fatalf("ops %+v", ops)
	}
	for _, bad := range []string{
		`[1]`, `[{"op":"a","path":"/metadata/k","value":1}]`, `[{"op":"add","value":1}]`,
		`[{"op":"add","path":"/a","value":1}]`, `[{"op":"add","path":"metadata/k","value":1}]`,
		`[{"op":"add","path":"/metadata//k","value":1}]`, `[{"op":"add","path":"/metadata/k/","value":1}]`,
		`[{"op":"add","path":"/metadata/k~2","value":1}]`, `[{"op":"add","path":"/other/k","value":1}]`,
		`[{"op":"add","path":"/metadata/k"}]`,
	} {
		var d []any
		if err := json.Unmarshal([]byte(bad), &d); err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePatch(d); err == nil {
			t.Errorf("ParsePatch(%s) accepted", bad)
		}
	}
}

// FuzzParseJSON: request bodies come from strangers; the parser must never
// panic, must accept only objects or arrays, and must read exactly what
// encoding/json reads.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"messages":[{"body":1,"ttl":60}]}`, `{"a":9223372036854775808}`, `"x"`, "\xff", `[1e999]`,
		`{"a":1,"a":2}`, `[1.0, -0, 1E+2, "\u00e9\ud83d\ude00", null, true]`, `{} ]`, `[] x`, `{"a":"\ud800"}`, "{\"a\":\"\x01\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseJSON(b)
		want, wantErr := stdParse(b)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: parsed with error %v, encoding/json says %v", b, err, wantErr)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(v, want) {
			t.Fatalf("%q: parsed as %#v, encoding/json reads %#v", b, v, want)
		}
		switch v.(type) {
		case map[string]any, []any:
		default:
			t.Fatalf("accepted a %T", v)
		}
		if m, ok := v.(map[string]any); ok {
			if raw, ok := m["messages"]; ok {
				ParseNewMessages(raw)
			}
		}
		if a, ok := v.([]any); ok {
			ParsePatch(a)
		}
	})
}

// stdParse is what ParseJSON accepted when it used encoding/json.
func stdParse(b []byte) (any, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	switch v.(type) {
	case map[string]any, []any:
	default:
		return nil, errors.New("not an object or array")
	}
	if !IntsFit(v) {
		return nil, errors.New("integer too large")
	}
	return v, nil
}

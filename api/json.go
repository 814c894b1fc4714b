package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	fastjson "github.com/goccy/go-json"
	"github.com/heraldmq/herald/projection"
)

// ParseJSON decodes a request body with the rules Zaqar's clients see
// (contract §1.5): UTF-8 only, one value, an object or an array at the top,
// integers within signed 64 bits. Numbers stay json.Number so integer and
// float literals can be told apart.
func ParseJSON(b []byte) (any, *Error) {
	if !utf8.Valid(b) {
		return nil, ErrBodyUnparseable
	}
	dec := fastjson.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, ErrBodyUnparseable
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, ErrBodyUnparseable
	}
	switch v.(type) {
	case map[string]any, []any:
	default:
		return nil, ErrBodyUnparseable
	}
	if !IntsFit(v) {
		return nil, ErrBodyBigInt
	}
	return v, nil
}

// ParseObject is ParseJSON for bodies that must be objects.
func ParseObject(b []byte) (map[string]any, *Error) {
	v, err := ParseJSON(b)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, ErrBodyDocType
	}
	return m, nil
}

// IntsFit reports whether every integer in v fits in 64 bits.
func IntsFit(v any) bool {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if strings.ContainsAny(s, ".eE") {
			return true
		}
		_, err := strconv.ParseInt(s, 10, 64)
		return err == nil
	case []any:
		for _, e := range x {
			if !IntsFit(e) {
				return false
			}
		}
	case map[string]any:
		for _, e := range x {
			if !IntsFit(e) {
				return false
			}
		}
	}
	return true
}

// IntField reads an optional integer field with Python's typing (ints and
// booleans; not floats, strings or null). ok is false when absent.
func IntField(m map[string]any, key string) (v int64, ok bool, err *Error) {
	raw, present := m[key]
	if !present {
		return 0, false, nil
	}
	i, isInt := projection.IntOf(raw)
	if !isInt {
		return 0, false, BadBody("The value of the %q field must be a int.", key)
	}
	return i, true, nil
}

// ParseBool parses a query boolean the way Zaqar's framework does.
func ParseBool(name, s string) (bool, *Error) {
	switch s {
	case "true", "True", "t", "yes", "y", "1", "on", "TRUE":
		return true, nil
	case "false", "False", "f", "no", "n", "0", "off", "FALSE":
		return false, nil
	}
	return false, &Error{Status: 400, Title: TitleBadParam,
		Description: fmt.Sprintf("The %q parameter is invalid. The value of the parameter must be \"true\" or \"false\".", name)}
}

// ParseInt parses a query integer: optional sign and digits only.
func ParseInt(name, s string) (int64, *Error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "+"), "-")
	bad := t == ""
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			bad = true
		}
	}
	i, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, 64)
	if bad || err != nil {
		return 0, &Error{Status: 400, Title: TitleBadParam,
			Description: fmt.Sprintf("The %q parameter is invalid. The value must be an integer.", name)}
	}
	return i, nil
}

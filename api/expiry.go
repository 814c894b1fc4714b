package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The expiry of a pre-signed URL is read as Zaqar reads it (contract
// §2.2.8, §3.11): whatever Python's int() accepts is refused, even where it
// would also be a date (20300101); the rest goes through the ISO 8601
// grammar of the iso8601 package, UTC when no offset is given. The error
// texts are the ones Zaqar answers share requests with.

// SignedDateFormat is Zaqar's %Y-%m-%dT%H:%M:%S, always in UTC: how
// URL-Expires is written.
const SignedDateFormat = "2006-01-02T15:04:05"

// iso8601RE is the iso8601 package's grammar; its one look-ahead, "a
// month must not end the text" (no YYYYMM), is checked in parseISOTime.
var iso8601RE = regexp.MustCompile(`^(?P<year>[0-9]{4})` +
	`((-(?P<monthdash>[0-9]{1,2})|(?P<month>[0-9]{2}))` +
	`((-(?P<daydash>[0-9]{1,2})|(?P<day>[0-9]{2}))` +
	`((?P<separator>[ T])(?P<hour>[0-9]{2})(:?(?P<minute>[0-9]{2}))?` +
	`(:?(?P<second>[0-9]{1,2})([.,](?P<fraction>[0-9]+))?)?` +
	`(?P<timezone>Z|(?P<tzsign>[-+])(?P<tzhour>[0-9]{2}):?(?P<tzminute>[0-9]{2})?)?)?)?)?$`)

// parseExpiry reads a URL-Expires header or a share's "expires" string.
func parseExpiry(s string) (time.Time, error) {
	if n, ok := pyInt(s); ok && n.Sign() != 0 {
		return time.Time{}, integerExpiry(n.String())
	}
	return parseISOTime(s)
}

// shareExpiry reads the "expires" value of a share body, any JSON type.
func shareExpiry(v any) (time.Time, error) {
	switch x := v.(type) {
	case string:
		return parseExpiry(x)
	case bool:
		if x {
			return time.Time{}, integerExpiry("1")
		}
	case json.Number:
		if n, err := pyIntOfNumber(x); err != nil {
			return time.Time{}, err
		} else if n.Sign() != 0 {
			return time.Time{}, integerExpiry(n.String())
		}
	}
	return time.Time{}, fmt.Errorf("expected string or bytes-like object, got '%s'", pyTypeName(v))
}

func integerExpiry(n string) error {
	return fmt.Errorf("`expires` should be date format, for example 2016-01-01T00:00:00, not integer value: %s", n)
}

// pyInt parses s as Python's int(s) does in base 10: surrounding
// whitespace, a sign, digits with single underscores between them.
func pyInt(s string) (*big.Int, bool) {
	s = strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f })
	digits := strings.TrimLeft(s, "+-")
	if len(s)-len(digits) > 1 || digits == "" || digits[0] == '_' || digits[len(digits)-1] == '_' || strings.Contains(digits, "__") {
		return nil, false
	}
	n, ok := new(big.Int).SetString(s[:len(s)-len(digits)]+strings.ReplaceAll(digits, "_", ""), 10)
	return n, ok
}

// pyIntOfNumber is Python's int() of a JSON number: integers exactly,
// floats (read as float64) truncated toward zero.
func pyIntOfNumber(x json.Number) (*big.Int, error) {
	if !strings.ContainsAny(string(x), ".eE") {
		n, _ := new(big.Int).SetString(string(x), 10)
		return n, nil
	}
	f, err := strconv.ParseFloat(string(x), 64)
	if err != nil {
		return nil, errors.New("cannot convert float infinity to integer")
	}
	n, _ := big.NewFloat(f).Int(nil)
	return n, nil
}

// parseISOTime is iso8601.parse_date followed by oslo's normalize_time:
// the instant in UTC, or Python's error text.
func parseISOTime(s string) (time.Time, error) {
	text := strings.TrimSuffix(s, "\n") // Python's $ also matches before a final newline
	m := iso8601RE.FindStringSubmatchIndex(text)
	group := func(name string) (string, bool) {
		i := iso8601RE.SubexpIndex(name)
		if m == nil || m[2*i] < 0 {
			return "", false
		}
		return text[m[2*i]:m[2*i+1]], true
	}
	if month := iso8601RE.SubexpIndex("month"); m != nil && m[2*month+1] == len(text) {
		m = nil // the look-ahead: YYYYMM
	}
	if m == nil {
		return time.Time{}, fmt.Errorf("Unable to parse date string %s", pyRepr(s))
	}
	num := func(names ...string) int {
		for _, name := range names {
			if v, ok := group(name); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		return -1
	}
	or := func(v, def int) int {
		if v < 0 {
			return def
		}
		return v
	}
	year, month, day := num("year"), or(num("month", "monthdash"), 1), or(num("day", "daydash"), 1)
	hour, minute, second := or(num("hour"), 0), or(num("minute"), 0), or(num("second"), 0)
	frac, _ := group("fraction")
	micro, _ := strconv.Atoi((frac + "000000")[:6])

	// Python builds the zone before the date, so its error comes first.
	offset := 0
	if tz, _ := group("timezone"); tz != "" && tz != "Z" {
		offset = or(num("tzhour"), 0)*3600 + or(num("tzminute"), 0)*60
		if sign, _ := group("tzsign"); sign == "-" {
			offset = -offset
		}
		if offset <= -86400 || offset >= 86400 {
			return time.Time{}, fmt.Errorf("offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not %s.", pyTimedelta(offset))
		}
	}
	switch {
	case year < 1:
		return time.Time{}, fmt.Errorf("year %d is out of range", year)
	case month < 1 || month > 12:
		return time.Time{}, errors.New("month must be in 1..12")
	case day < 1 || day > daysIn(year, month):
		return time.Time{}, errors.New("day is out of range for month")
	case hour > 23:
		return time.Time{}, errors.New("hour must be in 0..23")
	case minute > 59:
		return time.Time{}, errors.New("minute must be in 0..59")
	case second > 59:
		return time.Time{}, errors.New("second must be in 0..59")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, second, micro*1000, time.UTC).Add(-time.Duration(offset) * time.Second)
	if t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, errors.New("date value out of range")
	}
	return t, nil
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// pyTimedelta is the repr of a Python timedelta of seconds.
func pyTimedelta(seconds int) string {
	days := seconds / 86400
	if seconds%86400 < 0 {
		days--
	}
	var parts []string
	if days != 0 {
		parts = append(parts, fmt.Sprintf("days=%d", days))
	}
	if rest := seconds - days*86400; rest != 0 {
		parts = append(parts, fmt.Sprintf("seconds=%d", rest))
	}
	if parts == nil {
		return "datetime.timedelta(0)"
	}
	return "datetime.timedelta(" + strings.Join(parts, ", ") + ")"
}

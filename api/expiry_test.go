package api

import (
	"encoding/json"
	"testing"
	"time"
)

// TestSignedExpiryParsing: Python's int() refusal, then the iso8601 package's
// grammar and datetime's range checks, with their error texts.
func TestSignedExpiryParsing(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // the instant in UTC (RFC 3339 with fraction), or the error text
	}{
		{"2030-01-01T00:00:00", "2030-01-01T00:00:00Z"},
		{"2030-01-01T00:00:00.123456", "2030-01-01T00:00:00.123456Z"},
		{"2030-01-01T00:00:00.1234567", "2030-01-01T00:00:00.123456Z"},
		{"2030-01-01T00:00:00,5", "2030-01-01T00:00:00.5Z"},
		{"2030-01-01 00:00:00", "2030-01-01T00:00:00Z"},
		{"2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z"},
		{"2030-01-01T02:30:00+02:30", "2030-01-01T00:00:00Z"},
		{"2030-01-01T00:00:00-0100", "2030-01-01T01:00:00Z"},
		{"2030-01-01T00:00:00+01", "2029-12-31T23:00:00Z"},
		{"2030-01-01T0930", "2030-01-01T09:30:00Z"},
		{"2030-01-01T12", "2030-01-01T12:00:00Z"},
		{"2030-01-01T12:30:5", "2030-01-01T12:30:05Z"},
		{"20300101T120000", "2030-01-01T12:00:00Z"},
		{"2030-01-01", "2030-01-01T00:00:00Z"},
		{"2030-1-2", "2030-01-02T00:00:00Z"},
		{"2030-01", "2030-01-01T00:00:00Z"},
		{"2030-01-01T00:00:00\n", "2030-01-01T00:00:00Z"},

		{"20300101", "`expires` should be date format, for example 2016-01-01T00:00:00, not integer value: 20300101"},
		{" 1_700_000_000\t", "`expires` should be date format, for example 2016-01-01T00:00:00, not integer value: 1700000000"},
		{"-5", "`expires` should be date format, for example 2016-01-01T00:00:00, not integer value: -5"},
		{"0", "Unable to parse date string '0'"},
		{"", "Unable to parse date string ''"},
		{"1__0", "Unable to parse date string '1__0'"},
		{"2030", "`expires` should be date format, for example 2016-01-01T00:00:00, not integer value: 2030"},
		{"wrong date format", "Unable to parse date string 'wrong date format'"},
		{"it's", `Unable to parse date string "it's"`},
		{"2030-01-01t00:00:00", "Unable to parse date string '2030-01-01t00:00:00'"},
		{"2030-01-01T00:00:00z", "Unable to parse date string '2030-01-01T00:00:00z'"},
		{"2030-01-01T00:00:00\n\n", "Unable to parse date string '2030-01-01T00:00:00\\n\\n'"},
		{"0000", "year 0 is out of range"},
		{"2030-13-01", "month must be in 1..12"},
		{"2030-02-29", "day is out of range for month"},
		{"2030-01-01T24:00:00", "hour must be in 0..23"},
		{"2030-01-01T00:60", "minute must be in 0..59"},
		{"2030-01-01T00:00:60", "second must be in 0..59"},
		{"2030-02-30T00:00:00+24:00", "offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=1)."},
		{"2030-01-01T00:00:00-23:99", "offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24), not datetime.timedelta(days=-2, seconds=84060)."},
		{"9999-12-31T23:00:00-01:00", "date value out of range"},
	} {
		got, err := parseExpiry(tc.in)
		text := got.Format(time.RFC3339Nano)
		if err != nil {
			text = err.Error()
		}
		if text != tc.want {
			t.Errorf("parseExpiry(%q) = %s, want %s", tc.in, text, tc.want)
		}
	}
	if got, _ := parseExpiry("2028-02-29"); got.Location() != time.UTC {
		t.Errorf("not in UTC: %v", got)
	}
	// Digits only never reach the date grammar; as dates, YYYY is a year
	// and YYYYMM is refused.
	if got, err := parseISOTime("2030"); err != nil || !got.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("parseISOTime(2030) = %v, %v", got, err)
	}
	if _, err := parseISOTime("203001"); err == nil || err.Error() != "Unable to parse date string '203001'" {
		t.Errorf("parseISOTime(203001): %v", err)
	}
}

// TestShareExpiry: non-string values of a share's "expires".
func TestShareExpiry(t *testing.T) {
	integer := "`expires` should be date format, for example 2016-01-01T00:00:00, not integer value: "
	for _, tc := range []struct {
		in   any
		want string
	}{
		{json.Number("1700000000"), integer + "1700000000"},
		{json.Number("1.7e9"), integer + "1700000000"},
		{json.Number("-2.5"), integer + "-2"},
		{json.Number("0.5"), "expected string or bytes-like object, got 'float'"},
		{json.Number("0"), "expected string or bytes-like object, got 'int'"},
		{true, integer + "1"},
		{false, "expected string or bytes-like object, got 'bool'"},
		{[]any{}, "expected string or bytes-like object, got 'list'"},
		{map[string]any{}, "expected string or bytes-like object, got 'dict'"},
		{"2030-01-01T00:00:00", ""},
	} {
		_, err := shareExpiry(tc.in)
		text := ""
		if err != nil {
			text = err.Error()
		}
		if text != tc.want {
			t.Errorf("shareExpiry(%#v) = %q, want %q", tc.in, text, tc.want)
		}
	}
}

// FuzzSignedExpiry: any header value either fails or gives an instant in
// UTC within Python's datetime range whose Zaqar form reads back as the
// same second.
func FuzzSignedExpiry(f *testing.F) {
	for _, s := range []string{"2030-01-01T00:00:00", "2030-01-01T00:00:00.123456+05:30", "20300101T1200Z", "2030", "1_2", " -7 ", "9999-12-31T23:59:59-23:59"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseExpiry(s)
		if err != nil {
			return
		}
		if got.Location() != time.UTC || got.Year() < 1 || got.Year() > 9999 {
			t.Fatalf("parseExpiry(%q) = %v", s, got)
		}
		back, err := parseExpiry(got.Format(SignedDateFormat))
		if err != nil || !back.Equal(got.Truncate(time.Second)) {
			t.Fatalf("parseExpiry(%q) = %v; its form %s reads back as %v, %v", s, got, got.Format(SignedDateFormat), back, err)
		}
	})
}

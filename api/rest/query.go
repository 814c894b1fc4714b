package rest

import (
	"net/url"
	"strings"

	"github.com/heraldmq/herald/api"
)

// Query parameter rules (contract §1.10): blank values are absent, the last
// of repeated scalars wins, lists are comma-separated and/or repeated.

func param(q url.Values, name string) (string, bool) {
	vs := q[name]
	if len(vs) == 0 || vs[len(vs)-1] == "" {
		return "", false
	}
	return vs[len(vs)-1], true
}

func listParam(q url.Values, name string) ([]string, bool) {
	vs, ok := q[name]
	if !ok {
		return nil, false
	}
	var out []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p != "" {
				out = append(out, p)
			}
		}
	}
	return out, len(out) > 0
}

func intParam(q url.Values, name string) (int64, bool, *api.Error) {
	s, ok := param(q, name)
	if !ok {
		return 0, false, nil
	}
	i, err := api.ParseInt(name, s)
	return i, err == nil, err
}

func boolParam(q url.Values, name string) (bool, bool, *api.Error) {
	s, ok := param(q, name)
	if !ok {
		return false, false, nil
	}
	b, err := api.ParseBool(name, s)
	return b, err == nil, err
}

// link accumulates the recognised parameters of a listing, in the order
// they were read, for its "next" href. The new marker takes the place of
// the client's marker, or goes last when the client sent none.
type link struct {
	parts  []string
	marker int // 1 + index of the client's marker in parts; 0: none
}

// addMarker reserves the client's marker's place for the new marker.
func (l *link) addMarker() {
	l.parts = append(l.parts, "")
	l.marker = len(l.parts)
}

func (l *link) add(k, v string) { l.parts = append(l.parts, url.QueryEscape(k)+"="+url.QueryEscape(v)) }

func (l *link) addBool(k string, v bool) {
	if v {
		l.add(k, "true")
	} else {
		l.add(k, "false")
	}
}

func (l *link) next(path, marker string) []map[string]string {
	q, m := append([]string(nil), l.parts...), "marker="+url.QueryEscape(marker)
	if l.marker > 0 {
		q[l.marker-1] = m
	} else {
		q = append(q, m)
	}
	return []map[string]string{{"rel": "next", "href": path + "?" + strings.Join(q, "&")}}
}

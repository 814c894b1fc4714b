package api

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// MaxHistoryPerPage is the largest page of a queue's history.
const MaxHistoryPerPage = 100

// HistoryQuery is a request for a queue's history (an extension beyond
// Zaqar). Marker is the offset of the last event already seen ("" from the
// start); Types, Since and Until filter.
type HistoryQuery struct {
	Marker       string
	Limit        int
	Types        []string
	Since, Until string // RFC 3339
}

// HistoryPage is one page of a queue's history. Next is the marker of the
// next page, More whether there may be events after it.
type HistoryPage struct {
	Events []*hlog.EventJSON
	Next   string
	More   bool
}

// History returns the queue's events in log order: every change made to
// it, as the log holds it. The queue need not exist any more.
func (s *Service) History(ctx context.Context, c Caller, queue string, q HistoryQuery) (*HistoryPage, error) {
	f := projection.HistoryFilter{After: -1, Limit: 20}
	if q.Marker != "" {
		v, err := strconv.ParseInt(q.Marker, 10, 64)
		if err != nil || v < 0 {
			return nil, BadRequest("The marker must be the offset of an event.")
		}
		f.After = v
	}
	if q.Limit != 0 {
		if q.Limit < 1 || q.Limit > MaxHistoryPerPage {
			return nil, BadRequest("Limit must be at least 1 and may not be greater than %d.", MaxHistoryPerPage)
		}
		f.Limit = q.Limit
	}
	for _, t := range q.Types {
		if t = strings.TrimSpace(t); t != "" {
			if f.Types == nil {
				f.Types = map[hlog.Type]bool{}
			}
			f.Types[hlog.Type(t)] = true
		}
	}
	var err error
	if f.Since, err = historyTime("since", q.Since); err != nil {
		return nil, err
	}
	if f.Until, err = historyTime("until", q.Until); err != nil {
		return nil, err
	}
	r, err := s.replicaFor(ctx, c.Project, queue)
	if err != nil {
		return nil, err
	}
	entries, last, more, err := r.Store.History(c.Project, queue, f)
	if err != nil {
		return nil, Unavailable("History could not be read.", err)
	}
	page := &HistoryPage{Events: make([]*hlog.EventJSON, 0, len(entries)), Next: q.Marker, More: more}
	if last >= 0 {
		page.Next = strconv.FormatInt(last, 10)
	}
	if len(entries) == 0 {
		return page, nil
	}
	p := hlog.PartitionFor(hlog.QueueKey(c.Project, queue), r.Log.Partitions())
	rd := logReader{l: r.Log, p: p}
	defer rd.close()
	for _, e := range entries {
		rec, err := rd.at(ctx, e.Offset)
		if errors.Is(err, hlog.ErrReadOnly) {
			return nil, ReadOnly("History is read from the log; use `herald events` on the log instead.")
		}
		if err != nil {
			return nil, Unavailable("History could not be read.", err)
		}
		ev, err := hlog.DecodeEvent(rec.Value)
		if err != nil || ev.Project != c.Project || ev.Queue != queue {
			return nil, Unavailable("History could not be read.", fmt.Errorf("event at %d/%d is not the indexed one: %v", p, e.Offset, err))
		}
		j, err := ev.JSON(p, e.Offset)
		if err != nil {
			return nil, Unavailable("History could not be read.", err)
		}
		page.Events = append(page.Events, j)
	}
	return page, nil
}

func historyTime(name, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0, BadRequest("%s must be an RFC 3339 time, like 2030-01-01T00:00:00Z.", name)
	}
	return t.UnixNano(), nil
}

// logReader reads records of one partition at increasing offsets,
// reading on from where it is over short gaps and seeking over long ones.
type logReader struct {
	l    hlog.Log
	p    int32
	cur  hlog.Cursor
	next int64 // offset the cursor reads next
	buf  []hlog.Record
}

// seekGap is the widest gap read through rather than sought over.
const seekGap = 64

func (r *logReader) at(ctx context.Context, off int64) (*hlog.Record, error) {
	for len(r.buf) > 0 && r.buf[0].Offset < off {
		r.buf = r.buf[1:]
	}
	if len(r.buf) > 0 && r.buf[0].Offset == off {
		return &r.buf[0], nil
	}
	if r.cur == nil || off < r.next || off-r.next > seekGap {
		r.close()
		c, err := r.l.OpenCursor(r.p, off)
		if err != nil {
			return nil, err
		}
		r.cur, r.next, r.buf = c, off, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		recs, err := r.cur.Next(ctx, seekGap)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			continue
		}
		r.next = recs[len(recs)-1].Offset + 1
		for i := range recs {
			if recs[i].Offset == off {
				r.buf = recs[i:]
				return &r.buf[0], nil
			}
			if recs[i].Offset > off {
				return nil, errors.New("log: offset missing from the partition")
			}
		}
	}
}

func (r *logReader) close() {
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
}

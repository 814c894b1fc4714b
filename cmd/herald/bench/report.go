package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run measured. Its JSON form is the output of --json;
// the field names are stable (documented in the help, flags.go).
type Report struct {
	Target             string  `json:"target"`
	URL                string  `json:"url"`
	Project            string  `json:"project"`
	Queues             int     `json:"queues"`
	MessagesPerRequest int     `json:"messages_per_request"`
	BodySize           int     `json:"body_size"`
	ClaimLimit         int     `json:"claim_limit"`
	ConsumerDelete     string  `json:"consumer_delete"`
	WSPipeline         int     `json:"ws_pipeline"`
	KeepAlive          bool    `json:"keep_alive"`
	WarmupS            float64 `json:"warmup_s"`
	// DurationS is the measured window in seconds: --duration, or less
	// when the run was interrupted.
	DurationS float64 `json:"duration_s"`
	// Ops has one entry per operation of the roles that had workers:
	// "post" (producers), "claim" and "delete" (consumers), "list"
	// (observers).
	Ops map[string]*OpReport `json:"ops"`
	// Verify is null with --verify=false.
	Verify *VerifyReport `json:"verify"`
	// Passed tells whether the exit code is 0; Failures says why not.
	Passed   bool     `json:"passed"`
	Failures []string `json:"failures"`
}

// OpReport holds the figures of one operation over the measured window.
type OpReport struct {
	Role    string `json:"role"`
	Workers int    `json:"workers"`
	// Requests counts successful requests; Messages the messages they
	// carried (posted, claimed, deleted, listed); Empty the successful
	// requests that carried none (nothing to claim, an empty page).
	Requests int64   `json:"requests"`
	Messages int64   `json:"messages"`
	Empty    int64   `json:"empty"`
	ReqPerS  float64 `json:"req_per_s"`
	MsgsPerS float64 `json:"msgs_per_s"`
	// LatencyMs is the latency of successful requests in milliseconds.
	LatencyMs Latency `json:"latency_ms"`
	// Errors counts failed requests by kind: "status_<N>" for an answer
	// with failure status N, else a transport error kind (timeout,
	// connection_refused, connection_reset, eof, ws_closed,
	// no_responders, disconnected, bad_answer, other).
	Errors     map[string]int64 `json:"errors"`
	ErrorTotal int64            `json:"error_total"`
}

// Latency holds percentiles of an HDR histogram with microsecond
// resolution, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

var opOrder = []string{opPost, opClaim, opDelete, opList}

func (r *run) report(ws []*worker, end time.Time) *Report {
	c := r.cfg
	window := max(end.Sub(r.from), 0)
	rep := &Report{
		Target: c.Target, URL: c.endpoint(), Project: c.Project, Queues: c.Queues,
		MessagesPerRequest: c.MessagesPerRequest, BodySize: c.BodySize, ClaimLimit: c.ClaimLimit,
		ConsumerDelete: c.ConsumerDelete, WSPipeline: c.WSPipeline, KeepAlive: c.KeepAlive,
		WarmupS: c.Warmup.Seconds(), DurationS: window.Seconds(),
		Ops: map[string]*OpReport{}, Failures: []string{},
	}
	merged := map[string]*opStats{}
	workers := map[string]int{}
	roles := map[string]string{}
	for _, w := range ws {
		for op, s := range w.ops {
			if merged[op] == nil {
				merged[op] = newOpStats(r.maxLatency)
			}
			merged[op].merge(s)
			workers[op]++
			roles[op] = w.role
		}
	}
	var ok, failed int64
	for op, s := range merged {
		o := &OpReport{Role: roles[op], Workers: workers[op], Requests: s.ok, Messages: s.msgs, Empty: s.empty, Errors: s.errs}
		if secs := window.Seconds(); secs > 0 {
			o.ReqPerS = float64(s.ok) / secs
			o.MsgsPerS = float64(s.msgs) / secs
		}
		ms := func(us int64) float64 { return float64(us) / 1000 }
		h := s.hist
		o.LatencyMs = Latency{P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
			P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000}
		for _, n := range s.errs {
			o.ErrorTotal += n
		}
		ok += s.ok
		failed += o.ErrorTotal
		rep.Ops[op] = o
	}
	if c.Verify {
		var posts []*postLog
		var got [][]delivery
		for _, w := range ws {
			if w.posts != nil {
				posts = append(posts, w.posts)
			}
			got = append(got, w.got)
		}
		rep.Verify = verify(r.id, posts, got, claimTTL*time.Second)
		if !rep.Verify.Passed {
			rep.Failures = append(rep.Failures, fmt.Sprintf("verification failed: %d duplicate(s), %d unknown message(s)",
				rep.Verify.Duplicates, rep.Verify.Unknown))
		}
	}
	if ok == 0 && failed > 0 {
		rep.Failures = append(rep.Failures, "every request failed")
	} else if ok == 0 {
		rep.Failures = append(rep.Failures, "no request was measured")
	}
	rep.Passed = len(rep.Failures) == 0
	return rep
}

// WriteJSON writes the report as one JSON object.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteTable writes the report for people.
func (rep *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "target %s %s, project %s, %d queue(s), %d msg(s)/request of %d bytes, window %.1fs",
		rep.Target, rep.URL, rep.Project, rep.Queues, rep.MessagesPerRequest, rep.BodySize, rep.DurationS)
	if rep.WarmupS > 0 {
		fmt.Fprintf(w, " after %.1fs warm-up", rep.WarmupS)
	}
	fmt.Fprint(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\trole\tworkers\trequests\treq/s\tmsgs/s\tempty\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\t")
	for _, op := range opOrder {
		o := rep.Ops[op]
		if o == nil {
			continue
		}
		l := o.LatencyMs
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%.1f\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t\n",
			op, o.Role, o.Workers, o.Requests, o.ReqPerS, o.MsgsPerS, o.Empty, l.P50, l.P90, l.P99, l.P999, l.Max, o.ErrorTotal)
	}
	tw.Flush()
	for _, op := range opOrder {
		o := rep.Ops[op]
		if o == nil || o.ErrorTotal == 0 {
			continue
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(o.Errors)) {
			parts = append(parts, fmt.Sprintf("%s=%d", k, o.Errors[k]))
		}
		fmt.Fprintf(w, "errors %s: %s\n", op, strings.Join(parts, " "))
	}
	if v := rep.Verify; v != nil {
		verdict := "passed"
		if !v.Passed {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "\nverify: produced %d, consumed %d (deleted %d), duplicates %d, unknown %d, unconfirmed %d: %s\n",
			v.Produced, v.Consumed, v.Deleted, v.Duplicates, v.Unknown, v.Unconfirmed, verdict)
	}
	for _, f := range rep.Failures {
		fmt.Fprintln(w, "FAIL:", f)
	}
	return nil
}

package tests

import (
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestTracesFollowAWrite checks the span chain of one message post: the
// HTTP span, its log append child, and the apply span linked to the append
// through the trace context carried in the record headers.
func TestTracesFollowAWrite(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })

	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		c.postMessages("traced", msg("hello"))

		var httpSpan, appendSpan, applySpan sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			switch {
			case s.Name() == "POST /v2/queues/:queue_name/messages":
				httpSpan = s
			case s.Name() == "log.append" && hasAttr(s, "herald.event_type", "messages.posted"):
				appendSpan = s
			case s.Name() == "projection.apply" && hasAttr(s, "herald.event_type", "messages.posted"):
				applySpan = s
			}
		}
		if httpSpan == nil || appendSpan == nil || applySpan == nil {
			t.Fatalf("missing spans: http=%v append=%v apply=%v", httpSpan != nil, appendSpan != nil, applySpan != nil)
		}
		if appendSpan.Parent().SpanID() != httpSpan.SpanContext().SpanID() {
			t.Errorf("append span's parent is not the HTTP span")
		}
		linked := false
		for _, l := range applySpan.Links() {
			if l.SpanContext.SpanID() == appendSpan.SpanContext().SpanID() && l.SpanContext.TraceID() == httpSpan.SpanContext().TraceID() {
				linked = true
			}
		}
		if !linked {
			t.Errorf("apply span is not linked to the append span: %+v", applySpan.Links())
		}
	})
}

func hasAttr(s sdktrace.ReadOnlySpan, key, value string) bool {
	for _, a := range s.Attributes() {
		if string(a.Key) == key && a.Value.AsString() == value {
			return true
		}
	}
	return false
}

// TestMetricsEndpoint checks the Prometheus metrics named in the design.
func TestMetricsEndpoint(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	c.postMessages("metered", msg(1))
	body := string(c.get("/metrics").expect(t, 200).Body)
	for _, want := range []string{
		`herald_http_request_duration_seconds_bucket{`,
		`http_route="/v2/queues/:queue_name/messages"`,
		`herald_log_append_duration_seconds_count`,
		`herald_projector_lag{`,
		`herald_projector_applied_offset{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

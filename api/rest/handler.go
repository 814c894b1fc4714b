// Package rest serves Zaqar's v2 REST API on httprouter. Handlers parse
// HTTP, call package api and render its answers; they hold no business
// logic. The order of checks follows the contract's §1.2 so the same error
// wins as in Zaqar.
package rest

import (
	"bytes"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	fastjson "github.com/goccy/go-json"
	"github.com/julienschmidt/httprouter"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldmq/herald/api"
	"github.com/heraldmq/herald/projection"
)

// Options configures the REST handler.
type Options struct {
	Logger *slog.Logger
	// Metrics, if set, is served at GET /metrics (Prometheus format).
	Metrics http.Handler
	// AdminMode serves the admin API: health, pools and flavors.
	AdminMode bool
	// CORS, when it names allowed origins, answers preflights and marks
	// responses to those origins readable, in front of everything else.
	CORS CORS
	// Keystone, when set, requires Keystone tokens (auth_strategy
	// keystone); nil trusts the client's headers (noauth).
	Keystone *Keystone
	// Snapshots, when set (a node that takes snapshots), serves
	// GET and POST /v2/snapshots in admin mode.
	Snapshots Snapshotter
}

// Snapshotter takes and lists snapshots of a node's projection.
type Snapshotter interface {
	Snapshot() (*projection.SnapshotInfo, error)
	Snapshots() ([]projection.SnapshotInfo, error)
}

// Handler is the REST API as an http.Handler.
type Handler struct {
	svc     *api.Service
	router  *httprouter.Router
	serve   http.Handler // the router, behind CORS when configured
	logger  *slog.Logger
	tracer  trace.Tracer
	latency metric.Float64Histogram
	home    []byte // the JSON-Home document
	snaps   Snapshotter
}

// New returns the REST API over svc.
func New(svc *api.Service, opts Options) (*Handler, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	lat, err := otel.Meter("github.com/heraldmq/herald/api/rest").Float64Histogram("herald.http.request.duration",
		metric.WithUnit("s"), metric.WithDescription("REST request latency by route."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	if err != nil {
		return nil, err
	}
	h := &Handler{svc: svc, logger: opts.Logger, latency: lat, snaps: opts.Snapshots,
		tracer: otel.Tracer("github.com/heraldmq/herald/api/rest")}
	r := httprouter.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.HandleOPTIONS = true
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, errNotFound)
	})
	// A 405 and an OPTIONS answer come from a matched route, so that
	// route's hooks run first, queue name check included (§1.2 step 3).
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if e := h.matchedHooks(w, req); e != nil {
			writeError(w, e)
			return
		}
		writeError(w, &api.Error{Status: 405, Title: "405 Method Not Allowed"})
	})
	r.GlobalOPTIONS = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if e := h.matchedHooks(w, req); e != nil {
			writeError(w, e)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		h.logger.Error("panic in handler", "path", req.URL.Path, "panic", v)
		writeError(w, &api.Error{Status: 500, Title: api.TitleInternal, Description: "Unexpected error."})
	}
	h.router, h.serve = r, r
	if opts.Keystone != nil {
		h.serve = newKeystoneAuth(*opts.Keystone).authenticate(h.serve)
	}
	if len(opts.CORS.AllowedOrigins) > 0 {
		h.serve = newCORS(opts.CORS, h.serve)
	}

	r.GET("/", h.plain("/", h.versions))
	if opts.Metrics != nil {
		r.Handler(http.MethodGet, "/metrics", opts.Metrics)
	}
	h.routes()
	h.home = homeDoc(opts.AdminMode)
	if opts.AdminMode {
		h.adminRoutes()
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serve.ServeHTTP(w, r) }

// request is what hooks established about a request.
type request struct {
	*http.Request
	caller api.Caller
	// queue is the queue the route names; a topic is the queue
	// api.TopicQueue(name), and base is the path of either.
	queue  string
	base   string
	topic  bool
	params httprouter.Params
	// signed: the request carried URL-* headers that verified. Token
	// authentication, once there is one, must skip such requests (§1.2
	// step 2); the signature stands in for the token.
	signed bool
}

// errNotFound is the framework's 404: an unknown route or a pre-signed
// request that does not verify.
var errNotFound = &api.Error{Status: 404, Title: "404 Not Found"}

type handlerFunc func(w http.ResponseWriter, r *request) error

func (h *Handler) routes() {
	const q = "/v2/queues/:queue_name"
	h.handle("GET", "/v2/", h.homeDoc)
	h.handle("GET", "/v2/ping", h.ping)
	h.handle("HEAD", "/v2/ping", h.pingHead)

	h.handle("GET", "/v2/queues", h.listQueues)
	// PUT with an empty name is 405 (contract M20): the collection has no PUT.
	h.handle("GET", "/v2/queues/", h.listQueues)
	h.queueRoutes(q)
	h.handle("POST", q+"/share", h.shareQueue)
	h.handle("POST", q+"/claims", h.createClaim)
	h.handle("GET", q+"/claims/:claim_id", h.getClaim)
	h.handle("PATCH", q+"/claims/:claim_id", h.renewClaim)
	h.handle("DELETE", q+"/claims/:claim_id", h.releaseClaim)

	// Topics behave like queues of their own namespace, without claims
	// (contract §2.8; the message and subscription routes as B11
	// recommends).
	h.handle("GET", "/v2/topics", h.listQueues)
	h.queueRoutes("/v2/topics/:topic_name")
}

// queueRoutes registers what queues and topics share under base.
func (h *Handler) queueRoutes(base string) {
	h.handle("PUT", base, h.createQueue)
	h.handle("GET", base, h.getQueue)
	h.handle("PATCH", base, h.patchQueue)
	h.handle("DELETE", base, h.deleteQueue)
	h.handle("GET", base+"/stats", h.queueStats)
	h.handle("POST", base+"/purge", h.purgeQueue)
	h.handle("GET", base+"/history", h.getHistory)

	h.handle("POST", base+"/messages", h.postMessages)
	h.handle("GET", base+"/messages", h.getMessages)
	h.handle("DELETE", base+"/messages", h.deleteMessages)
	h.handle("GET", base+"/messages/:message_id", h.getMessage)
	h.handle("DELETE", base+"/messages/:message_id", h.deleteMessage)

	h.handle("GET", base+"/subscriptions", h.listSubscriptions)
	h.handle("POST", base+"/subscriptions", h.createSubscription)
	h.handle("GET", base+"/subscriptions/:subscription_id", h.getSubscription)
	h.handle("PATCH", base+"/subscriptions/:subscription_id", h.updateSubscription)
	h.handle("DELETE", base+"/subscriptions/:subscription_id", h.deleteSubscription)
	h.handle("PUT", base+"/subscriptions/:subscription_id/confirm", h.confirmSubscription)
}

var propagator = propagation.TraceContext{}

// instrument wraps a handler with a server span, the route's latency
// metric and panic-free error rendering.
func (h *Handler) instrument(route string, fn func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) *api.Error) httprouter.Handle {
	// Attribute sets are built once per method and status, not per request.
	var sets sync.Map // "METHOD status" → metric.MeasurementOption
	measure := func(method string, status int) metric.MeasurementOption {
		key := method + " " + strconv.Itoa(status)
		if o, ok := sets.Load(key); ok {
			return o.(metric.MeasurementOption)
		}
		o, _ := sets.LoadOrStore(key, metric.WithAttributeSet(attribute.NewSet(
			attribute.String("http.route", route), attribute.String("http.request.method", method),
			attribute.Int("http.response.status_code", status))))
		return o.(metric.MeasurementOption)
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		start := time.Now()
		ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := h.tracer.Start(ctx, r.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.route", route), attribute.String("http.request.method", r.Method)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		if e := fn(sw, r.WithContext(ctx), ps); e != nil {
			if e.Status >= 500 {
				h.logger.Error("request failed", "method", r.Method, "route", route, "status", e.Status, "err", e.Unwrap())
				span.RecordError(e)
			}
			writeError(sw, e)
		}
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		h.latency.Record(ctx, time.Since(start).Seconds(), measure(r.Method, sw.status))
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// plain registers a route without Zaqar's header hooks (the versions doc).
func (h *Handler) plain(route string, fn func(w http.ResponseWriter, r *http.Request) *api.Error) httprouter.Handle {
	return h.instrument(route, func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) *api.Error {
		return fn(w, r)
	})
}

func (h *Handler) handle(method, route string, fn handlerFunc) {
	h.router.Handle(method, route, h.instrument(route, func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) *api.Error {
		req, e := h.routeHooks(r, ps)
		if e != nil {
			return e
		}
		if err := fn(w, req); err != nil {
			return api.AsError(err, "The request could not be completed.")
		}
		return nil
	}))
}

// matchedHooks runs the hooks of a request whose path matched a route
// under another method; the router has set the Allow header, and the
// route's parameters come from one of the allowed methods.
func (h *Handler) matchedHooks(w http.ResponseWriter, req *http.Request) *api.Error {
	var ps httprouter.Params
	for _, m := range strings.Split(w.Header().Get("Allow"), ", ") {
		if _, p, _ := h.router.Lookup(m, req.URL.Path); p != nil {
			ps = p
			break
		}
	}
	_, e := h.routeHooks(req, ps)
	return e
}

// routeHooks runs the hooks of a matched route with parameters ps,
// including the queue name and project check (§1.2 step 4.6).
func (h *Handler) routeHooks(r *http.Request, ps httprouter.Params) (*request, *api.Error) {
	req, e := h.hooks(r, ps.ByName("queue_name"))
	if e != nil {
		return nil, e
	}
	if _, hasQueue := paramIndex(ps, "queue_name"); hasQueue {
		if !api.ValidQueueName(req.queue) || !api.ValidProject(req.caller.Project) {
			return nil, &api.Error{Status: 400, Title: "Invalid queue identification",
				Description: "The format of the submitted queue name or project id is not valid."}
		}
		req.base = "/v2/queues/" + req.queue
	}
	if _, hasTopic := paramIndex(ps, "topic_name"); hasTopic {
		name := ps.ByName("topic_name")
		if !api.ValidQueueName(name) || !api.ValidProject(req.caller.Project) {
			return nil, &api.Error{Status: 400, Title: "Invalid topic identification",
				Description: "The format of the submitted topic name or project id is not valid."}
		}
		req.queue, req.base = api.TopicQueue(name), "/v2/topics/"+name
	}
	req.topic = strings.HasPrefix(r.URL.Path, "/v2/topics")
	req.params = ps
	if e := h.idempotency(req); e != nil {
		return nil, e
	}
	return req, nil
}

func paramIndex(ps httprouter.Params, name string) (int, bool) {
	for i, p := range ps {
		if p.Key == name {
			return i, true
		}
	}
	return 0, false
}

// hooks runs Zaqar's request hooks in order (contract §1.2 step 4).
func (h *Handler) hooks(r *http.Request, queue string) (*request, *api.Error) {
	_, signed := r.Header[http.CanonicalHeaderKey("URL-Signature")]
	if signed && !h.svc.VerifySigned(r.Method, r.URL.Path, r.Header.Get("URL-Signature"), r.Header.Get("URL-Expires"),
		r.Header.Get("URL-Methods"), r.Header.Get("URL-Paths"), r.Header.Get("X-Project-ID")) {
		return nil, errNotFound
	}
	if hasBody(r) && strings.EqualFold(strings.TrimSpace(r.Header.Get("Content-Type")), "application/x-www-form-urlencoded") {
		return nil, &api.Error{Status: 400, Title: "Invalid Content-Type",
			Description: "Endpoint does not accept `application/x-www-form-urlencoded` content; currently supported media type is `application/json`; specify proper client-side media type with the \"Content-Type\" header."}
	}
	if !acceptsJSON(r.Header.Values("Accept")) {
		return nil, &api.Error{Status: 406, Title: "406 Not Acceptable",
			Description: "Endpoint only serves `application/json`; specify client-side media type support with the \"Accept\" header."}
	}
	rawClient, ok := r.Header[http.CanonicalHeaderKey("Client-ID")]
	if !ok {
		return nil, &api.Error{Status: 400, Title: "Missing header value", Description: "The \"Client-ID\" header is required."}
	}
	client, ok := api.NormalizeClientID(strings.TrimSpace(rawClient[0]))
	if !ok {
		return nil, &api.Error{Status: 400, Title: "Wrong UUID value", Description: "Malformed hexadecimal UUID."}
	}
	projects, ok := r.Header[http.CanonicalHeaderKey("X-Project-ID")]
	if !ok {
		return nil, &api.Error{Status: 400, Title: "Project-Id Missing", Description: "The header X-PROJECT-ID was missing"}
	}
	if projects[0] == "" {
		return nil, &api.Error{Status: 400, Title: "Empty project header not allowed",
			Description: "X-PROJECT-ID cannot be an empty string. Specify the right header X-PROJECT-ID and retry."}
	}
	return &request{Request: r, queue: queue, signed: signed, caller: api.Caller{
		Project: projects[0], ClientID: client, RequestID: r.Header.Get("X-Openstack-Request-ID"),
	}}, nil
}

// hasBody reports whether the request has a body in Zaqar's sense: it has
// a Content-Length. A chunked body without one counts as no body.
func hasBody(r *http.Request) bool {
	return r.Header.Get("Content-Length") != ""
}

func acceptsJSON(values []string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue // an empty or malformed range allows nothing
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
					continue
				}
			}
			switch mt {
			case "*/*", "application/*", "application/json":
				return true
			}
		}
	}
	return false
}

// readBody reads a request body of at most limit bytes. present is false
// when the request has no body at all (no Content-Length, not chunked).
// tooLarge builds the error for a body over the limit.
func readBody(r *http.Request, limit int64, tooLarge func() *api.Error) (body []byte, present bool, e *api.Error) {
	if !hasBody(r) {
		return nil, false, nil
	}
	if r.ContentLength > limit {
		return nil, true, tooLarge()
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, true, api.BadBody("Request body could not be read.")
	}
	if int64(len(b)) > limit {
		return nil, true, tooLarge()
	}
	return b, true, nil
}

// writeJSON writes v as JSON with status. Non-ASCII stays literal.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := fastjson.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		writeError(w, &api.Error{Status: 500, Title: api.TitleInternal, Description: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, e *api.Error) {
	body := map[string]any{"title": e.Title}
	if e.Description != "" {
		body["description"] = e.Description
	}
	if e.Status == 406 {
		body["link"] = map[string]string{"text": "14.1 Accept, Hypertext Transfer Protocol -- HTTP/1.1",
			"href": "http://www.w3.org/Protocols/rfc2616/rfc2616-sec14.html", "rel": "help"}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, body)
}

func noContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// Package server assembles a Herald node: the log (embedded Pebble or
// Kafka), the projection and its projector, the API service, the REST
// listener, tracing and metrics. `herald serve` runs one; tests start
// them in-process on loopback.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"

	"github.com/heraldmq/herald/api"
	"github.com/heraldmq/herald/api/rest"
	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/notifier"
	"github.com/heraldmq/herald/projection"
	"github.com/heraldmq/herald/ws"
)

// Version is the build's version, set with -ldflags.
var Version = "dev"

// Config configures a node.
type Config struct {
	// DataDir holds the embedded log (DataDir/log) and the projection
	// (DataDir/projection).
	DataDir string
	// Listen is the REST listener address (host:port; port 0 picks one).
	// It also serves the WebSocket API at /ws.
	Listen string
	// WSListen, when set, serves the WebSocket API on its own listener
	// too (Zaqar's 127.0.0.1:9000).
	WSListen string
	// WS configures the WebSocket transport.
	WS ws.Config
	// Brokers, when set, selects the Kafka log instead of the embedded one.
	Brokers    []string
	Topic      string
	Partitions int32
	// OTLPEndpoint, when set, exports traces over OTLP/HTTP (host:port).
	OTLPEndpoint string
	// DebugListen, when set, serves Go's pprof profiles on this address
	// (keep it on loopback: profiles reveal internals).
	DebugListen string
	API         api.Config
	// AdminMode serves the admin API (health, pools, flavors).
	AdminMode bool
	// CORS configures cross-origin requests to the REST API (off while it
	// names no origin).
	CORS rest.CORS
	// Keystone, when set, requires Keystone tokens on the REST API.
	Keystone *rest.Keystone
	// Notifier configures subscription delivery (the node fills in its
	// replica, feed, logger and signed-URL key); NoNotifier turns it off.
	Notifier   notifier.Config
	NoNotifier bool
	Logger     *slog.Logger
	// Now is the clock (time.Now when nil); tests inject their own.
	Now func() time.Time
}

// Server is a running node.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	primary  *projection.Replica
	svc      *api.Service
	ws       *ws.Server
	notifier *notifier.Notifier
	wsHTTP   *http.Server
	wsLn     net.Listener
	http     *http.Server
	listener net.Listener
	debug    *http.Server
	serveErr chan error
	tracing  *sdktrace.TracerProvider
	meters   *sdkmetric.MeterProvider
}

// Start opens the log and the projection, catches the projection up with
// the log, and starts serving REST.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 16
	}
	if cfg.Topic == "" {
		cfg.Topic = "herald-events"
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, serveErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.close(context.Background())
		}
	}()
	if err := s.setupTelemetry(ctx); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	if err := s.setupMetrics(reg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	l, err := OpenLog(ctx, cfg.DataDir, cfg.Brokers, cfg.Topic, cfg.Partitions, cfg.Logger)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	feed := projection.NewFeed()
	if s.primary, err = projection.StartReplica(ctx, l, filepath.Join(cfg.DataDir, "projection"), cfg.Logger, feed); err != nil {
		return nil, err
	}
	s.logger.Info("projection caught up with the log", "took", time.Since(start).Round(time.Millisecond))
	if err := s.registerLag(); err != nil {
		return nil, err
	}

	apiCfg := cfg.API
	apiCfg.PoolDir, apiCfg.Partitions, apiCfg.Logger, apiCfg.Feed = filepath.Join(cfg.DataDir, "pools"), cfg.Partitions, cfg.Logger, feed
	if s.svc, err = api.New(apiCfg, s.primary, cfg.Now); err != nil {
		return nil, err
	}
	h, err := rest.New(s.svc, rest.Options{Logger: cfg.Logger, AdminMode: cfg.AdminMode, Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), CORS: cfg.CORS, Keystone: cfg.Keystone})
	if err != nil {
		return nil, err
	}
	wsCfg := cfg.WS
	if wsCfg.Logger == nil {
		wsCfg.Logger = cfg.Logger
	}
	if wsCfg.Keystone == nil {
		wsCfg.Keystone = cfg.Keystone
	}
	s.ws = ws.New(s.svc, feed, wsCfg)
	mux := http.NewServeMux()
	mux.Handle("/ws", s.ws)
	mux.Handle("/ui/", ws.UIHandler())
	mux.Handle("/", h)
	if s.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, err
	}
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() { s.serveErr <- s.http.Serve(s.listener) }()
	if cfg.WSListen != "" {
		if s.wsLn, err = net.Listen("tcp", cfg.WSListen); err != nil {
			return nil, err
		}
		s.wsHTTP = &http.Server{Handler: s.ws, ReadHeaderTimeout: 10 * time.Second}
		go func() { s.serveErr <- s.wsHTTP.Serve(s.wsLn) }()
		s.logger.Info("WebSocket API listening", "addr", s.wsLn.Addr().String())
	}
	if !cfg.NoNotifier {
		nc := cfg.Notifier
		nc.Replica, nc.Feed, nc.Logger, nc.SignedURLKey = s.primary, feed, cfg.Logger, cfg.API.SignedURLKey
		if s.notifier, err = notifier.Start(nc); err != nil {
			return nil, err
		}
	}
	if cfg.DebugListen != "" {
		if err := s.startDebug(cfg.DebugListen); err != nil {
			return nil, err
		}
	}
	s.logger.Info("REST API listening", "addr", s.listener.Addr().String(), "log", s.logKind(), "version", Version)
	return s, nil
}

// OpenLog opens a node's log: the Kafka log on topic when brokers are
// given, else the embedded log under dataDir/log.
func OpenLog(ctx context.Context, dataDir string, brokers []string, topic string, partitions int32, logger *slog.Logger) (hlog.Log, error) {
	if len(brokers) > 0 {
		return hlog.OpenKafka(ctx, hlog.KafkaOptions{Brokers: brokers, Topic: topic, Partitions: partitions})
	}
	return hlog.OpenPebble(hlog.PebbleOptions{Dir: filepath.Join(dataDir, "log"), Partitions: partitions, Logger: logger})
}

func (s *Server) logKind() string {
	if len(s.cfg.Brokers) > 0 {
		return "kafka"
	}
	return "embedded"
}

// Addr is the REST listener's address.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// WSAddr is the WebSocket listener's address ("" without one).
func (s *Server) WSAddr() string {
	if s.wsLn == nil {
		return ""
	}
	return s.wsLn.Addr().String()
}

// WS is the WebSocket transport (tests count its connections).
func (s *Server) WS() *ws.Server { return s.ws }

// Store is the node's projection (tests read digests from it).
func (s *Server) Store() *projection.Store { return s.primary.Store }

// Notifier is the node's notifier (nil when off).
func (s *Server) Notifier() *notifier.Notifier { return s.notifier }

// Log is the node's own log (tests read its ends).
func (s *Server) Log() hlog.Log { return s.primary.Log }

// Done reports a listener failure.
func (s *Server) Done() <-chan error { return s.serveErr }

// Shutdown stops accepting requests, lets running ones finish (bounded by
// ctx), then stops the projector and closes the projection and the log.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.close(ctx)
}

func (s *Server) close(ctx context.Context) error {
	var errs []error
	if s.ws != nil {
		// WebSocket connections are hijacked: http.Server.Shutdown does
		// not wait for them, the transport closes them itself.
		errs = append(errs, s.ws.Shutdown(ctx))
	}
	if s.wsHTTP != nil {
		errs = append(errs, s.wsHTTP.Shutdown(ctx))
	} else if s.wsLn != nil {
		errs = append(errs, s.wsLn.Close())
	}
	if s.http != nil {
		errs = append(errs, s.http.Shutdown(ctx))
	} else if s.listener != nil {
		errs = append(errs, s.listener.Close())
	}
	if s.debug != nil {
		errs = append(errs, s.debug.Close())
	}
	if s.notifier != nil {
		// Its last progress reports need the log: before the replica.
		errs = append(errs, s.notifier.Close())
	}
	if s.svc != nil {
		errs = append(errs, s.svc.Close(ctx))
	}
	if s.primary != nil {
		errs = append(errs, s.primary.Close(ctx))
	}
	if s.tracing != nil {
		errs = append(errs, s.tracing.Shutdown(ctx))
	}
	if s.meters != nil {
		errs = append(errs, s.meters.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

func (s *Server) setupTelemetry(ctx context.Context) error {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if s.cfg.OTLPEndpoint == "" {
		return nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(s.cfg.OTLPEndpoint), otlptracehttp.WithInsecure())
	if err != nil {
		return fmt.Errorf("OTLP exporter: %w", err)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("herald"), semconv.ServiceVersion(Version))
	s.tracing = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(s.tracing)
	return nil
}

// setupMetrics installs a meter provider exporting to reg; instruments
// created from then on (the API's and REST's) report there.
func (s *Server) setupMetrics(reg *prometheus.Registry) error {
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return err
	}
	s.meters = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	otel.SetMeterProvider(s.meters)
	return nil
}

// registerLag reports the applied offset and the lag of every partition.
func (s *Server) registerLag() error {
	m := s.meters.Meter("github.com/heraldmq/herald/projection")
	applied, err := m.Int64ObservableGauge("herald.projector.applied_offset", metric.WithDescription("Next log offset the projector applies, per partition."))
	if err != nil {
		return err
	}
	lag, err := m.Int64ObservableGauge("herald.projector.lag", metric.WithDescription("Durable log records not yet applied, per partition."))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		r := s.primary
		ends, err := r.Log.Ends(ctx) // one request per scrape, not one per partition
		for p := range r.Log.Partitions() {
			a := r.Projector.Applied(p)
			attrs := metric.WithAttributes(attribute.Int("partition", int(p)))
			o.ObserveInt64(applied, a, attrs)
			if err == nil {
				o.ObserveInt64(lag, max(0, ends[p]-a), attrs)
			}
		}
		return nil
	}, applied, lag)
	return err
}

// startDebug serves net/http/pprof on addr.
func (s *Server) startDebug(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.debug.Serve(l)
	s.logger.Info("pprof listening", "addr", l.Addr().String())
	return nil
}

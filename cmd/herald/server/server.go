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
	"sync"
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

	// ReadOnly serves the projection `herald replay` wrote in Projection,
	// read-only: no log, projector, notifier or snapshots; writes are
	// refused. The clock stands at the projection's last event (Now still
	// overrides it), so messages live then are live now.
	ReadOnly   bool
	Projection string
	// Snapshots configures the projection's snapshots.
	Snapshots SnapshotConfig
}

// SnapshotConfig configures snapshots of the projection (see
// projection.TakeSnapshot).
type SnapshotConfig struct {
	// Dir holds them (DataDir/snapshots when empty).
	Dir string
	// Interval between periodic snapshots; 0 takes them only on demand.
	Interval time.Duration
	// Keep is how many to keep (2 when 0).
	Keep int
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

	restored *projection.SnapshotInfo // the snapshot the projection started from
	snapMu   sync.Mutex               // one snapshot at a time
	stop     chan struct{}            // closed by Shutdown: stops the snapshot loop
	loops    sync.WaitGroup
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
	if cfg.Snapshots.Dir == "" {
		cfg.Snapshots.Dir = filepath.Join(cfg.DataDir, "snapshots")
	}
	if cfg.Snapshots.Keep <= 0 {
		cfg.Snapshots.Keep = 2
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, serveErr: make(chan error, 1), stop: make(chan struct{})}
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
	feed := projection.NewFeed()
	if cfg.ReadOnly {
		if err := s.openReadOnly(); err != nil {
			return nil, err
		}
	} else if err := s.openReplica(ctx, feed); err != nil {
		return nil, err
	}
	if err := s.registerLag(); err != nil {
		return nil, err
	}
	cfg = s.cfg

	apiCfg := cfg.API
	apiCfg.PoolDir, apiCfg.Partitions, apiCfg.Logger, apiCfg.Feed = filepath.Join(cfg.DataDir, "pools"), cfg.Partitions, cfg.Logger, feed
	apiCfg.ReadOnly = cfg.ReadOnly
	if s.svc, err = api.New(apiCfg, s.primary, cfg.Now); err != nil {
		return nil, err
	}
	h, err := rest.New(s.svc, rest.Options{Logger: cfg.Logger, AdminMode: cfg.AdminMode, Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), CORS: cfg.CORS, Keystone: cfg.Keystone, Snapshots: s.snapshotter()})
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
	if !cfg.NoNotifier && !cfg.ReadOnly {
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
	if cfg.Snapshots.Interval > 0 && !cfg.ReadOnly {
		s.loops.Add(1)
		go s.snapshotLoop()
	}
	s.logger.Info("REST API listening", "addr", s.listener.Addr().String(), "log", s.logKind(), "version", Version)
	return s, nil
}

// openReplica opens the node's log and projection and catches the
// projection up. A node without a projection starts from its newest
// snapshot, if it has one, and replays only the log after it.
func (s *Server) openReplica(ctx context.Context, feed *projection.Feed) error {
	cfg := s.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return err
	}
	projDir := filepath.Join(cfg.DataDir, "projection")
	if !projection.HasProjection(projDir) {
		if err := s.restoreSnapshot(projDir); err != nil {
			return err
		}
	}
	l, err := OpenLog(ctx, cfg.DataDir, cfg.Brokers, cfg.Topic, cfg.Partitions, cfg.Logger)
	if err != nil {
		return err
	}
	start := time.Now()
	if s.primary, err = projection.StartReplica(ctx, l, projDir, cfg.Logger, feed); err != nil {
		return err
	}
	s.logger.Info("projection caught up with the log", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// restoreSnapshot puts the newest snapshot in place as projDir, if there
// is one.
func (s *Server) restoreSnapshot(projDir string) error {
	snaps, err := projection.ListSnapshots(s.cfg.Snapshots.Dir)
	if err != nil || len(snaps) == 0 {
		return err
	}
	snap := snaps[0]
	if snap.Partitions != s.cfg.Partitions {
		return fmt.Errorf("snapshot %s projects a log of %d partitions, the node's has %d", snap.Name, snap.Partitions, s.cfg.Partitions)
	}
	os.RemoveAll(projDir) // an empty or half-created directory
	if err := projection.RestoreSnapshot(s.cfg.Snapshots.Dir, snap, projDir); err != nil {
		return fmt.Errorf("restore snapshot %s: %w", snap.Name, err)
	}
	s.restored = &snap
	s.logger.Info("projection restored from snapshot; replaying the log after it", "snapshot", snap.Name, "applied", snap.Applied)
	return nil
}

// openReadOnly opens the rebuilt projection in cfg.Projection.
func (s *Server) openReadOnly() error {
	r, info, err := projection.OpenReadOnly(s.cfg.Projection, s.cfg.Logger)
	if err != nil {
		return err
	}
	s.primary = r
	s.cfg.Partitions = info.Partitions
	if s.cfg.Now == nil {
		at := info.AsOf
		if at == "" {
			at = info.LastEventTime
		}
		if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
			s.cfg.Now = func() time.Time { return t }
		}
	}
	s.logger.Info("serving a rebuilt projection read-only", "projection", s.cfg.Projection, "applied", info.Applied, "as_of", info.AsOf, "last_event", info.LastEventTime)
	return nil
}

// Snapshot takes a snapshot of the projection now and prunes old ones.
func (s *Server) Snapshot() (*projection.SnapshotInfo, error) {
	if s.cfg.ReadOnly {
		return nil, errors.New("a read-only node takes no snapshots")
	}
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	info, err := projection.TakeSnapshot(s.primary.Store, s.cfg.Snapshots.Dir, s.primary.Log.Partitions())
	if err != nil {
		return nil, err
	}
	s.logger.Info("snapshot taken", "snapshot", info.Name, "applied", info.Applied)
	return info, projection.PruneSnapshots(s.cfg.Snapshots.Dir, s.cfg.Snapshots.Keep)
}

// snapshotter is what the admin API takes snapshots through (none on a
// read-only node).
func (s *Server) snapshotter() rest.Snapshotter {
	if s.cfg.ReadOnly {
		return nil
	}
	return s
}

// Snapshots lists the node's snapshots, newest first. It waits for a
// snapshot being taken: between its rename and the pruning the directory
// holds one more than Keep.
func (s *Server) Snapshots() ([]projection.SnapshotInfo, error) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	return projection.ListSnapshots(s.cfg.Snapshots.Dir)
}

// Restored is the snapshot the projection started from (nil: none).
func (s *Server) Restored() *projection.SnapshotInfo { return s.restored }

func (s *Server) snapshotLoop() {
	defer s.loops.Done()
	t := time.NewTicker(s.cfg.Snapshots.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if s.snapshotCurrent() {
				continue // nothing applied since the newest snapshot
			}
			if _, err := s.Snapshot(); err != nil {
				s.logger.Error("snapshot failed", "err", err)
			}
		}
	}
}

// snapshotCurrent reports whether the newest snapshot holds everything
// the projection applied: an idle node takes no snapshot that only
// repeats it (and would prune an older, different one).
func (s *Server) snapshotCurrent() bool {
	snaps, err := s.Snapshots()
	if err != nil || len(snaps) == 0 {
		return false
	}
	for p, off := range snaps[0].Applied {
		applied, err := s.primary.Store.Applied(int32(p))
		if err != nil || applied != off {
			return false
		}
	}
	return len(snaps[0].Applied) == int(s.primary.Log.Partitions())
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
	if s.cfg.ReadOnly {
		return "none (read-only)"
	}
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
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.loops.Wait()
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

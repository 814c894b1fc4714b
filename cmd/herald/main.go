// Command herald is the Herald messaging service: a Zaqar v2 compatible
// REST API on an event log.
//
//	herald [serve] [flags]   run a node (the default command)
//	herald version           print the version
//
// Every flag can also be set through an environment variable named
// HERALD_ plus the flag name in capitals with dashes as underscores
// (--data → HERALD_DATA). Flags win over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/heraldmq/herald/api"
	"github.com/heraldmq/herald/api/rest"
	"github.com/heraldmq/herald/cmd/herald/bench"
	"github.com/heraldmq/herald/cmd/herald/server"
	"github.com/heraldmq/herald/notifier"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "version":
		fmt.Fprintln(stdout, "herald", server.Version)
		return 0
	case "bench":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return bench.Run(ctx, args, stdout, stderr)
	case "events":
		return events(args, stdout, stderr)
	case "replay":
		return replay(args, stdout, stderr)
	case "verify":
		return verify(args, stdout, stderr)
	case "snapshot":
		return snapshot(args, stdout, stderr)
	case "help":
		usage(stderr)
		return 0
	}
	fmt.Fprintf(stderr, "herald: unknown command %q\n\n", cmd)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Herald: a multi-tenant messaging and notification service speaking the
OpenStack Zaqar v2 API, built on an event log.

Usage:
  herald [serve] [flags]   run a node (default; see 'herald serve --help')
  herald version           print the version
  herald bench [flags]     load-test a Zaqar v2 or NATS JetStream endpoint
  herald events [flags]    export the log's events as JSON Lines
  herald replay [flags]    rebuild the projection from the log, as of any point
  herald verify [flags]    check the log and prove the projection matches it
  herald snapshot [flags]  take (or list) snapshots of the projection
  herald help              this text
`)
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		lf         = addLogFlags(fs, "directory of the embedded log (DIR/log) and the projection (DIR/projection)")
		listen     = fs.String("listen", "127.0.0.1:8888", "REST API listen address (host:port); it also serves the WebSocket API at /ws")
		wsListen   = fs.String("ws-listen", "127.0.0.1:9000", "WebSocket API listen address (host:port); empty serves WebSocket only at the REST address's /ws")
		otlp       = fs.String("otlp-endpoint", "", "OTLP/HTTP trace collector host:port; empty disables trace export")
		debugAddr  = fs.String("debug-listen", "", "serve Go pprof profiles on this host:port (keep it on loopback); empty disables")
		logLevel   = fs.String("log-level", "info", "log level: debug, info, warn, error")
		logFormat  = fs.String("log-format", "text", "log format: text or json")
		applyWait  = fs.Duration("apply-timeout", 10*time.Second, "how long a write waits for its event to be applied before answering 503")
		shutdown   = fs.Duration("shutdown-timeout", 15*time.Second, "how long shutdown waits for running requests")
		adminMode  = fs.Bool("admin-mode", false, "serve the admin API: /v2/health, /v2/pools and /v2/flavors (callers need the admin role)")
		authMode   = fs.String("auth-strategy", "noauth", "noauth (trust X-Project-ID) or keystone (require Keystone tokens)")
		ksURL      = fs.String("keystone-url", "", "Keystone v3 endpoint for --auth-strategy keystone, e.g. http://127.0.0.1:5000/v3")
		ksUser     = fs.String("keystone-user", "herald", "service user that validates tokens")
		ksPassword = fs.String("keystone-password", "", "password of the service user (prefer the environment variable)")
		ksProject  = fs.String("keystone-project", "service", "project of the service user")
		ksDomain   = fs.String("keystone-domain", "Default", "domain of the service user and project")
		ksCache    = fs.Duration("keystone-cache", 5*time.Minute, "how long a validated token is trusted before Keystone is asked again")
		readOnly   = fs.Bool("read-only", false, "serve the projection that 'herald replay' wrote in --projection, read-only (no log, no notifier; writes are refused)")
		projDir    = fs.String("projection", "", "with --read-only: the replayed projection to serve")
		snapEvery  = fs.Duration("snapshot-interval", time.Hour, "how often to snapshot the projection (0: only on demand); see --snapshot-keep")
		snapKeep   = fs.Int("snapshot-keep", 2, "how many snapshots to keep")
		snapDir    = fs.String("snapshot-dir", "", "where snapshots are kept (default DATA/snapshots)")
		origins    = fs.String("cors-allowed-origins", "", "comma-separated origins (scheme://host[:port], or *) whose browsers may call the API; empty disables CORS")
	)
	var cfg api.Config
	fs.Int64Var(&cfg.DefaultMessageTTL, "default-message-ttl", 3600, "message TTL (s) when neither the message nor the queue sets one")
	fs.Int64Var(&cfg.DefaultClaimTTL, "default-claim-ttl", 300, "claim TTL (s) when the request sets none")
	fs.Int64Var(&cfg.DefaultClaimGrace, "default-claim-grace", 60, "claim grace (s) when the request sets none")
	fs.IntVar(&cfg.MaxQueuesPerPage, "max-queues-per-page", 20, "largest queue list page")
	fs.IntVar(&cfg.MaxMessagesPerPage, "max-messages-per-page", 20, "largest message list page and most ids per request")
	fs.IntVar(&cfg.MaxMessagesPerClaim, "max-messages-per-claim-or-pop", 20, "most messages one claim or pop takes")
	fs.Int64Var(&cfg.MaxQueueMetadata, "max-queue-metadata", 65536, "largest queue metadata body (bytes)")
	fs.Int64Var(&cfg.MaxMessagesPostSize, "max-messages-post-size", 262144, "largest message post body (bytes)")
	fs.Int64Var(&cfg.MaxMessageTTL, "max-message-ttl", 1209600, "largest message TTL (s)")
	fs.Int64Var(&cfg.MaxMessageDelay, "max-message-delay", 900, "largest message delay (s)")
	fs.Int64Var(&cfg.MaxClaimTTL, "max-claim-ttl", 43200, "largest claim TTL (s)")
	fs.Int64Var(&cfg.MaxClaimGrace, "max-claim-grace", 43200, "largest claim grace (s)")
	fs.Int64Var(&cfg.DefaultSubscriptionTTL, "default-subscription-ttl", 3600, "subscription TTL (s) when the request sets none")
	fs.IntVar(&cfg.MaxSubscriptionsPerPage, "max-subscriptions-per-page", 20, "largest subscription list page")
	fs.DurationVar(&cfg.IdempotencyWindow, "idempotency-window", 10*time.Minute, "how long a POST's Idempotency-Key is remembered")
	fs.StringVar(&cfg.SignedURLKey, "signed-url-key", "", "secret key signing pre-signed URLs (prefer the environment variable: flags show in ps); empty disables them")
	fs.BoolVar(&cfg.RequireConfirmation, "require-confirmation", false, "notify only confirmed subscriptions; with --signed-url-key each new subscription is sent a confirmation request")
	var nc notifier.Config
	notify := fs.Bool("notifier", true, "deliver subscription notifications (webhooks, e-mail) from this node")
	fs.StringVar(&nc.Node, "node-name", "", "name of this node in notifier requests (default: the host name)")
	fs.StringVar(&nc.Group, "notifier-group", "herald-notifier", "Kafka consumer group sharing out delivery among nodes")
	fs.DurationVar(&nc.Timeout, "notifier-timeout", 10*time.Second, "timeout of one webhook request or SMTP session")
	fs.IntVar(&nc.Concurrency, "notifier-concurrency", 4, "deliveries of one subscription in flight at once")
	fs.DurationVar(&nc.Own.SessionTimeout, "notifier-session-timeout", 10*time.Second, "Kafka: how long a silent node keeps its partitions before another node delivers for them")
	fs.DurationVar(&nc.ProbeInterval, "notifier-probe-interval", 5*time.Minute, "how often a suspended subscription is tried again")
	fs.StringVar(&nc.PublicURL, "public-url", "", "public base URL of the REST API, named in confirmation requests")
	fs.StringVar(&nc.PublicWSURL, "public-ws-url", "", "public base URL of the WebSocket API, named in confirmation requests")
	fs.StringVar(&nc.ConfirmationPage, "external-confirmation-url", "", "page that confirmation e-mails link to (Zaqar's external_confirmation_url)")
	fs.StringVar(&nc.Mail.Host, "smtp-host", "", "SMTP relay for mailto subscriptions")
	fs.IntVar(&nc.Mail.Port, "smtp-port", 0, "SMTP relay port (default 25, or 465 with --smtp-tls tls)")
	fs.StringVar(&nc.Mail.TLS, "smtp-tls", "starttls", "SMTP transport security: starttls (required), tls (implicit) or none")
	fs.StringVar(&nc.Mail.Username, "smtp-user", "", "SMTP user; empty sends without authentication")
	fs.StringVar(&nc.Mail.Password, "smtp-password", "", "SMTP password (prefer the environment variable)")
	fs.StringVar(&nc.Mail.From, "smtp-from", "", "sender of notification e-mails (default herald@<node name>)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: herald serve [flags]\n\nRuns a Herald node. With no flags it keeps everything under ./data and\nserves the Zaqar v2 REST API on 127.0.0.1:8888.\n\nFlags (each also read from the environment variable shown):\n")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(stderr, "  --%s (%s)\n    \t%s (default %q)\n", f.Name, envName(f.Name), f.Usage, f.DefValue)
		})
	}
	if err := parseWithEnv(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "herald:", err)
		return 2
	}
	slog.SetDefault(logger)
	if *otlp == "" {
		// Without an exporter, spans need not exist at all: a no-op
		// provider still propagates incoming trace context.
		otel.SetTracerProvider(noop.NewTracerProvider())
	}
	if os.Getenv("GOGC") == "" {
		// Herald allocates per request and has memory to spare; collect
		// less often than Go's default. GOGC in the environment wins.
		debug.SetGCPercent(400)
	}
	cfg.ApplyTimeout = *applyWait
	sc := server.Config{
		DataDir: *lf.data, Listen: *listen, WSListen: *wsListen, Topic: *lf.topic, Partitions: int32(*lf.partitions),
		OTLPEndpoint: *otlp, DebugListen: *debugAddr, API: cfg, AdminMode: *adminMode, Logger: logger,
		CORS: rest.CORS{AllowedOrigins: commaList(*origins)}, Notifier: nc, NoNotifier: !*notify,
		ReadOnly: *readOnly, Projection: *projDir,
		Snapshots: server.SnapshotConfig{Dir: *snapDir, Interval: *snapEvery, Keep: *snapKeep},
	}
	if *readOnly != (*projDir != "") {
		fmt.Fprintln(stderr, "herald: --read-only and --projection go together")
		return 2
	}
	switch nc.Mail.TLS {
	case "starttls", "tls", "none":
	default:
		fmt.Fprintf(stderr, "herald: --smtp-tls must be starttls, tls or none, not %q\n", nc.Mail.TLS)
		return 2
	}
	sc.Brokers = lf.brokerList()
	switch *authMode {
	case "noauth", "":
	case "keystone":
		if *ksURL == "" {
			fmt.Fprintln(stderr, "herald: --auth-strategy keystone needs --keystone-url")
			return 2
		}
		sc.Keystone = &rest.Keystone{URL: *ksURL, User: *ksUser, Password: *ksPassword, Project: *ksProject, Domain: *ksDomain, CacheTTL: *ksCache}
	default:
		fmt.Fprintf(stderr, "herald: --auth-strategy must be noauth or keystone, not %q\n", *authMode)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, sc)
	if err != nil {
		logger.Error("start failed", "err", err)
		return 1
	}
	code := 0
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-srv.Done():
		logger.Error("listener failed", "err", err)
		code = 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), *shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Error("shutdown", "err", err)
		code = 1
	}
	logger.Info("stopped")
	return code
}

// logFlags name a node's log.
type logFlags struct {
	data, brokers, topic *string
	partitions           *int
}

func addLogFlags(fs *flag.FlagSet, dataUsage string) logFlags {
	return logFlags{
		data:       fs.String("data", "./data", dataUsage),
		brokers:    fs.String("brokers", "", "comma-separated Kafka bootstrap brokers; empty: the embedded log"),
		topic:      fs.String("topic", "herald-events", "Kafka topic of the event log (created on start)"),
		partitions: fs.Int("partitions", 16, "partitions of the event log (fixed once the log exists)"),
	}
}

func (f logFlags) brokerList() []string { return commaList(*f.brokers) }

// commaList splits a comma-separated flag value, dropping blanks.
func commaList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func envName(flagName string) string {
	return "HERALD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseWithEnv parses args, then fills every flag not given on the command
// line from its HERALD_* environment variable.
func parseWithEnv(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errors.New("unexpected argument")
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, e)
				fmt.Fprintln(fs.Output(), "herald:", err)
			}
		}
	})
	return err
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

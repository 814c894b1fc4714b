package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heraldmq/herald/cmd/herald/server"
	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// The operator's audit commands: replay (rebuild a projection, as of any
// point), verify (prove the projection is faithful to the log, and the log
// sound) and snapshot.

// openOfflineLog opens the log named by lf for a command that reads it;
// the embedded log can be read only while its node is stopped.
func openOfflineLog(ctx context.Context, lf logFlags, logger *slog.Logger) (hlog.Log, error) {
	brokers := lf.brokerList()
	if dir := filepath.Join(*lf.data, "log"); len(brokers) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("no embedded log at %s", dir)
		}
	}
	l, err := server.OpenLog(ctx, *lf.data, brokers, *lf.topic, int32(*lf.partitions), logger)
	if err != nil && len(brokers) == 0 {
		return nil, fmt.Errorf("%w (is its node running? the embedded log is read while the node is stopped)", err)
	}
	return l, err
}

func commandContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func quietLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// replay is `herald replay`.
func replay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		lf       = addLogFlags(fs, "data directory of the node whose log to replay (the embedded log DIR/log is read while the node is stopped)")
		out      = fs.String("out", "", "directory to build the projection in (must not hold another one)")
		atOffset = fs.String("as-of-offset", "", "rebuild the state right after these events: P:OFFSET[,P:OFFSET...] (or OFFSET for a one-partition log); partitions not named stop at the latest time of the named events")
		atTime   = fs.String("as-of-time", "", "rebuild the state as of this time (RFC 3339): each partition up to its first event later than it")
		mode     = fs.String("progress", "auto", "progress report: auto (a bar on a terminal, lines otherwise), bar, lines or none")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: herald replay --out DIR [flags]

Rebuilds the projection from the log into a new directory, optionally as of a
position or a time. Serve it with 'herald serve --read-only --projection DIR'
to inspect that state through the normal API.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseWithEnv(fs, args); err != nil {
		return 2
	}
	if *out == "" {
		fmt.Fprintln(stderr, "herald replay: --out is required")
		return 2
	}
	if projection.HasProjection(*out) {
		if s, err := projection.OpenStoreReadOnly(*out, quietLogger(stderr)); err == nil {
			info, _ := s.ReplayInfo()
			s.Close()
			if info != nil && info.Built != "" {
				fmt.Fprintf(stderr, "herald replay: %s already holds a replayed projection; choose a new directory\n", *out)
				return 2
			}
		}
	}
	ctx, stop := commandContext()
	defer stop()
	logger := quietLogger(stderr)
	l, err := openOfflineLog(ctx, lf, logger)
	if err != nil {
		fmt.Fprintln(stderr, "herald replay:", err)
		return 1
	}
	defer l.Close()
	opts := projection.RebuildOptions{Logger: logger}
	if *atTime != "" {
		t, err := time.Parse(time.RFC3339Nano, *atTime)
		if err != nil {
			fmt.Fprintf(stderr, "herald replay: --as-of-time %q is not an RFC 3339 time\n", *atTime)
			return 2
		}
		opts.AsOf = t.UnixNano()
	}
	if *atOffset != "" {
		if err := cutAtOffsets(ctx, l, *atOffset, &opts); err != nil {
			fmt.Fprintln(stderr, "herald replay:", err)
			return 2
		}
	}
	prog, err := newProgress(stderr, "replay", *mode)
	if err != nil {
		fmt.Fprintln(stderr, "herald replay:", err)
		return 2
	}
	opts.Progress = prog.update
	s, err := projection.Open(*out, logger)
	if err != nil {
		fmt.Fprintln(stderr, "herald replay:", err)
		return 1
	}
	info, err := projection.Rebuild(ctx, l, s, opts)
	prog.finish()
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stderr, "herald replay:", err)
		return 1
	}
	return printJSON(stdout, info)
}

// cutAtOffsets sets opts to stop right after the named positions: spec is
// P:OFFSET[,...], or a bare OFFSET on a one-partition log. Partitions not
// named stop at the latest event time of the named positions, so the cut
// is exact where named and consistent in time elsewhere.
func cutAtOffsets(ctx context.Context, l hlog.Log, spec string, opts *projection.RebuildOptions) error {
	n := l.Partitions()
	ends, err := l.Ends(ctx)
	if err != nil {
		return err
	}
	until := append([]int64(nil), ends...)
	named := make([]bool, n)
	var latest int64
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		ps, offs, ok := strings.Cut(item, ":")
		if !ok {
			if n != 1 {
				return fmt.Errorf("--as-of-offset %q: name the partition (P:OFFSET); the log has %d", item, n)
			}
			ps, offs = "0", item
		}
		p, err1 := strconv.ParseInt(ps, 10, 32)
		off, err2 := strconv.ParseInt(offs, 10, 64)
		if err1 != nil || err2 != nil || p < 0 || p >= int64(n) || off < 0 {
			return fmt.Errorf("--as-of-offset %q: want PARTITION:OFFSET with a partition below %d", item, n)
		}
		if off >= ends[p] {
			return fmt.Errorf("--as-of-offset %q: partition %d ends at %d", item, p, ends[p])
		}
		t, err := eventTime(ctx, l, int32(p), off)
		if err != nil {
			return fmt.Errorf("--as-of-offset %q: %w", item, err)
		}
		latest = max(latest, t)
		until[p], named[p] = off+1, true
	}
	opts.Until = until
	opts.PartitionAsOf = make([]int64, n)
	for p := range n {
		switch {
		case !named[p]:
			opts.PartitionAsOf[p] = latest
			if opts.AsOf != 0 {
				opts.PartitionAsOf[p] = min(latest, opts.AsOf)
			}
		default:
			opts.PartitionAsOf[p] = opts.AsOf
		}
	}
	return nil
}

// eventTime reads the time of the event at (p, off).
func eventTime(ctx context.Context, l hlog.Log, p int32, off int64) (int64, error) {
	ev, err := hlog.EventAt(ctx, l, p, off)
	if err != nil {
		return 0, err
	}
	return ev.Time, nil
}

// verify is `herald verify`.
func verify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		lf      = addLogFlags(fs, "data directory of a stopped node: its embedded log (DIR/log) and its projection (DIR/projection)")
		projDir = fs.String("projection", "", "projection to verify (default DATA/projection; a snapshot's DIR/snapshots/NAME/projection works too)")
		mode    = fs.String("progress", "auto", "progress report: auto, bar, lines or none")
		skipLog = fs.Bool("skip-log-check", false, "do not read the whole log to check it (only rebuild and compare)")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: herald verify [flags]

Checks the log (dense offsets, checksums, decodable events), then rebuilds the
projection from it into a temporary directory, up to the offsets the
projection has applied, and compares the two part by part (each queue, and the
node-wide parts). Prints every difference; exits 1 when there is one.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseWithEnv(fs, args); err != nil {
		return 2
	}
	if *projDir == "" {
		*projDir = filepath.Join(*lf.data, "projection")
	}
	ctx, stop := commandContext()
	defer stop()
	logger := quietLogger(stderr)
	l, err := openOfflineLog(ctx, lf, logger)
	if err != nil {
		fmt.Fprintln(stderr, "herald verify:", err)
		return 1
	}
	defer l.Close()
	failed := false
	if !*skipLog {
		prog, err := newProgress(stderr, "check log", *mode)
		if err != nil {
			fmt.Fprintln(stderr, "herald verify:", err)
			return 2
		}
		problems, err := checkLog(ctx, l, prog.update)
		prog.finish()
		if err != nil {
			fmt.Fprintln(stderr, "herald verify:", err)
			return 1
		}
		for _, p := range problems {
			fmt.Fprintln(stdout, "LOG", p)
		}
		failed = len(problems) > 0
	}

	if !projection.HasProjection(*projDir) {
		fmt.Fprintf(stderr, "herald verify: no projection at %s\n", *projDir)
		return 1
	}
	live, err := projection.OpenStoreReadOnly(*projDir, logger)
	if err != nil {
		fmt.Fprintf(stderr, "herald verify: %v (is its node running? verify a snapshot of it instead)\n", err)
		return 1
	}
	defer live.Close()
	ends, err := l.Ends(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "herald verify:", err)
		return 1
	}
	until := make([]int64, l.Partitions())
	for p := range until {
		a, err := live.Applied(int32(p))
		if err != nil {
			fmt.Fprintln(stderr, "herald verify:", err)
			return 1
		}
		if a > ends[p] {
			fmt.Fprintf(stdout, "LOG partition %d ends at %d, but the projection applied it up to %d: the log lost events\n", p, ends[p], a)
			failed = true
			a = ends[p]
		}
		until[p] = a
	}
	tmp, err := os.MkdirTemp("", "herald-verify-")
	if err != nil {
		fmt.Fprintln(stderr, "herald verify:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	rebuilt, err := projection.Open(tmp, logger)
	if err != nil {
		fmt.Fprintln(stderr, "herald verify:", err)
		return 1
	}
	defer rebuilt.Close()
	prog, err := newProgress(stderr, "rebuild", *mode)
	if err != nil {
		fmt.Fprintln(stderr, "herald verify:", err)
		return 2
	}
	_, err = projection.Rebuild(ctx, l, rebuilt, projection.RebuildOptions{Until: until, Logger: logger, Progress: prog.update})
	prog.finish()
	if err != nil {
		fmt.Fprintln(stderr, "herald verify: rebuild:", err)
		return 1
	}
	want, err := rebuilt.Parts()
	if err == nil {
		var got []projection.Part
		if got, err = live.Parts(); err == nil {
			for _, d := range projection.CompareParts(want, got) {
				failed = true
				fmt.Fprintf(stdout, "DIFFERS %s: projection %s, rebuilt from the log %s\n", d.Name, describePart(d.Got), describePart(d.Want))
			}
			if !failed {
				fmt.Fprintf(stdout, "OK %d parts match the log (applied offsets %v)\n", len(want), until)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "herald verify:", err)
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

func describePart(p projection.Part) string {
	if p.Digest == "" {
		return "has nothing"
	}
	return fmt.Sprintf("%d keys, digest %s", p.Keys, p.Digest[:16])
}

// checkLog reads every partition of l from its start and returns what is
// wrong with it: missing offsets, records failing their checksum (the
// embedded log's CRC-32C; Kafka's batch CRCs are checked by the client),
// undecodable events.
func checkLog(ctx context.Context, l hlog.Log, progress func(done, total int64)) ([]string, error) {
	ends, err := l.Ends(ctx)
	if err != nil {
		return nil, err
	}
	var total, done int64
	for _, e := range ends {
		total += e
	}
	var problems []string
	for p := range l.Partitions() {
		pos := int64(0)
		err := hlog.ReadRange(ctx, l, p, 0, ends[p], func(r *hlog.Record) error {
			if r.Offset != pos {
				problems = append(problems, fmt.Sprintf("partition %d: offsets %d to %d missing", p, pos, r.Offset-1))
			}
			pos = r.Offset + 1
			if _, err := hlog.DecodeEvent(r.Value); err != nil {
				problems = append(problems, fmt.Sprintf("partition %d offset %d: undecodable event: %v", p, r.Offset, err))
			}
			if done++; done%1024 == 0 {
				progress(done, total)
			}
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			problems = append(problems, fmt.Sprintf("partition %d: unreadable after offset %d: %v", p, pos-1, err))
		}
		progress(done, total)
	}
	return problems, nil
}

// snapshot is `herald snapshot`.
func snapshot(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald snapshot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		lf    = addLogFlags(fs, "data directory of a stopped node to snapshot (its projection is caught up with the log first)")
		url   = fs.String("url", "", "ask the running node at this REST base URL (admin mode) to take one, e.g. http://127.0.0.1:8888")
		token = fs.String("token", "", "Keystone token for --url (with --auth-strategy keystone)")
		dir   = fs.String("snapshot-dir", "", "where snapshots are kept (default DATA/snapshots)")
		keep  = fs.Int("snapshot-keep", 2, "how many snapshots to keep")
		list  = fs.Bool("list", false, "list the snapshots instead of taking one")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: herald snapshot [flags]

Takes a snapshot of the projection: of a running node with --url, of a
stopped node's data directory otherwise. A node that starts without a
projection starts from its newest snapshot and replays only the log after it.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseWithEnv(fs, args); err != nil {
		return 2
	}
	if *dir == "" {
		*dir = filepath.Join(*lf.data, "snapshots")
	}
	if *url != "" {
		return snapshotRemote(*url, *token, *list, stdout, stderr)
	}
	if *list {
		snaps, err := projection.ListSnapshots(*dir)
		if err != nil {
			fmt.Fprintln(stderr, "herald snapshot:", err)
			return 1
		}
		if snaps == nil {
			snaps = []projection.SnapshotInfo{}
		}
		return printJSON(stdout, map[string]any{"snapshots": snaps})
	}
	ctx, stop := commandContext()
	defer stop()
	logger := quietLogger(stderr)
	l, err := openOfflineLog(ctx, lf, logger)
	if err != nil {
		fmt.Fprintln(stderr, "herald snapshot:", err)
		return 1
	}
	r, err := projection.StartReplica(ctx, l, filepath.Join(*lf.data, "projection"), logger, nil)
	if err != nil {
		fmt.Fprintln(stderr, "herald snapshot:", err)
		return 1
	}
	defer r.Close(context.Background())
	info, err := projection.TakeSnapshot(r.Store, *dir, l.Partitions())
	if err == nil {
		err = projection.PruneSnapshots(*dir, *keep)
	}
	if err != nil {
		fmt.Fprintln(stderr, "herald snapshot:", err)
		return 1
	}
	return printJSON(stdout, info)
}

func snapshotRemote(base, token string, list bool, stdout, stderr io.Writer) int {
	method := http.MethodPost
	if list {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, strings.TrimRight(base, "/")+"/v2/snapshots", nil)
	if err != nil {
		fmt.Fprintln(stderr, "herald snapshot:", err)
		return 2
	}
	req.Header.Set("X-Roles", "admin")
	req.Header.Set("X-Project-ID", "admin")
	var id [16]byte
	rand.Read(id[:])
	req.Header.Set("Client-ID", hex.EncodeToString(id[:]))
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "herald snapshot:", err)
		return 1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		fmt.Fprintln(stderr, "herald snapshot:", err)
		return 1
	}
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(stderr, "herald snapshot: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		if resp.StatusCode == http.StatusNotFound {
			fmt.Fprintln(stderr, "herald snapshot: is the node running with --admin-mode?")
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", strings.TrimSpace(string(body)))
	return 0
}

func printJSON(w io.Writer, v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return 1
	}
	fmt.Fprintf(w, "%s\n", b)
	return 0
}

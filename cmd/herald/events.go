package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	hlog "github.com/heraldmq/herald/log"
)

// events is `herald events`: the log's events as JSON Lines, filtered,
// read as a stream (memory does not grow with the log).
func events(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald events", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		lf        = addLogFlags(fs, "data directory of a stopped node whose embedded log (DIR/log) to read")
		project   = fs.String("project", "", "only events of this project")
		queue     = fs.String("queue", "", "only events of this queue (with --project: reads only its partition)")
		types     = fs.String("type", "", "only events of these comma-separated types")
		since     = fs.String("since", "", "only events at or after this time (RFC 3339)")
		until     = fs.String("until", "", "only events before this time (RFC 3339)")
		partition = fs.Int("partition", -1, "only this partition")
		from      = fs.Int64("from", 0, "first offset to read in each partition")
		to        = fs.Int64("to", -1, "read up to this offset (exclusive) in each partition; default: the end when the export starts")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: herald events [flags]\n\nWrites the events of the log as JSON Lines, one event per line, partition\nby partition in log order. The embedded log can only be read while its node\nis stopped.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseWithEnv(fs, args); err != nil {
		return 2
	}
	f := eventFilter{project: *project, queue: *queue}
	if *types != "" {
		f.types = map[hlog.Type]bool{}
		for _, t := range strings.Split(*types, ",") {
			f.types[hlog.Type(strings.TrimSpace(t))] = true
		}
	}
	for _, v := range []struct {
		s   string
		dst *int64
	}{{*since, &f.since}, {*until, &f.until}} {
		if v.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v.s)
		if err != nil {
			fmt.Fprintf(stderr, "herald events: %q is not an RFC 3339 time\n", v.s)
			return 2
		}
		*v.dst = t.UnixNano()
	}
	ctx, stop := commandContext()
	defer stop()
	l, err := openOfflineLog(ctx, lf, quietLogger(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "herald events:", err)
		return 1
	}
	defer l.Close()
	parts := []int32{}
	switch {
	case *partition >= 0:
		parts = append(parts, int32(*partition))
	case *project != "" && *queue != "":
		parts = append(parts, hlog.PartitionFor(hlog.QueueKey(*project, *queue), l.Partitions()))
	default:
		for p := range l.Partitions() {
			parts = append(parts, p)
		}
	}
	w := bufio.NewWriterSize(stdout, 64<<10)
	defer w.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // as the fixture's events.jsonl
	for _, p := range parts {
		if err := exportPartition(ctx, l, p, *from, *to, f, enc); err != nil {
			w.Flush()
			fmt.Fprintf(stderr, "herald events: partition %d: %v\n", p, err)
			return 1
		}
	}
	return 0
}

type eventFilter struct {
	project, queue string
	types          map[hlog.Type]bool
	since, until   int64
}

func (f *eventFilter) match(ev *hlog.Event) bool {
	return (f.project == "" || ev.Project == f.project) && (f.queue == "" || ev.Queue == f.queue) &&
		(f.types == nil || f.types[ev.Type]) && (f.since == 0 || ev.Time >= f.since) && (f.until == 0 || ev.Time < f.until)
}

// exportPartition writes the matching events of partition p in [from,
// to), to -1 meaning the end of the partition when it starts.
func exportPartition(ctx context.Context, l hlog.Log, p int32, from, to int64, f eventFilter, enc *json.Encoder) error {
	if to < 0 {
		end, err := l.End(ctx, p)
		if err != nil {
			return err
		}
		to = end
	}
	return hlog.ReadRange(ctx, l, p, from, to, func(r *hlog.Record) error {
		ev, err := hlog.DecodeEvent(r.Value)
		if err != nil {
			return fmt.Errorf("offset %d: %w", r.Offset, err)
		}
		if !f.match(ev) {
			return nil
		}
		j, err := ev.JSON(p, r.Offset)
		if err != nil {
			return fmt.Errorf("offset %d: %w", r.Offset, err)
		}
		return enc.Encode(j)
	})
}

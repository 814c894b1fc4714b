package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// Run is `herald bench`: it parses args, runs the bench and prints the
// report on stdout. It returns the exit code: 0 on success, 1 when the
// verification failed, every request failed or the bench could not run,
// 2 for usage errors. Cancelling ctx (SIGINT) ends the run early and
// still reports.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Target, "target", cfg.Target, "what to drive: rest (Zaqar v2 REST), ws (Zaqar v2 WebSocket) or nats (NATS JetStream)")
	fs.StringVar(&cfg.URL, "url", cfg.URL, "REST server root, without /v2 (--target rest)")
	fs.StringVar(&cfg.WSURL, "ws-url", cfg.WSURL, "WebSocket URL (--target ws)")
	fs.StringVar(&cfg.WSAuth, "ws-auth", "", "token to send in an authenticate frame first on each WebSocket; empty sends none (Zaqar without auth never answers it)")
	fs.IntVar(&cfg.WSPipeline, "ws-pipeline", cfg.WSPipeline, "frames in flight per WebSocket connection for producers")
	fs.StringVar(&cfg.NATSURL, "nats-url", cfg.NATSURL, "NATS server URL (--target nats)")
	fs.IntVar(&cfg.Producers, "producers", cfg.Producers, "producer workers: each posts --messages-per-request messages per request")
	fs.IntVar(&cfg.Consumers, "consumers", cfg.Consumers, "consumer workers: each claims up to --claim-limit messages (ttl 60, grace 60), then deletes them")
	fs.IntVar(&cfg.Observers, "observers", cfg.Observers, "observer workers: each lists messages (echo=true, limit 10), following next links and restarting at the head after an empty page; not with nats")
	fs.IntVar(&cfg.MessagesPerRequest, "messages-per-request", cfg.MessagesPerRequest, "messages per post")
	fs.IntVar(&cfg.BodySize, "body-size", cfg.BodySize, "bytes of each message body (a JSON object holding the message's token; at least the token's size)")
	fs.IntVar(&cfg.ClaimLimit, "claim-limit", cfg.ClaimLimit, "most messages per claim (Zaqar allows 1..20)")
	fs.StringVar(&cfg.ConsumerDelete, "consumer-delete", cfg.ConsumerDelete, "each: one delete per claimed message with its claim id (nats: AckSync each); bulk: one DELETE ?ids=…&claim_ids=… per claim (nats: Ack all but the last, AckSync the last)")
	fs.IntVar(&cfg.Queues, "queues", cfg.Queues, "queues; workers of each role are spread round-robin over them")
	fs.StringVar(&cfg.QueuePrefix, "queue-prefix", cfg.QueuePrefix, "queues are named PREFIX-0 … PREFIX-(N-1)")
	fs.StringVar(&cfg.Project, "project", "", "X-Project-ID (nats: stream name prefix); empty picks bench-<random> so runs do not see each other")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "time run before measuring, excluded from the figures")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "per-request timeout; the run ends at most this long after --warmup + --duration")
	fs.BoolVar(&cfg.KeepAlive, "keep-alive", cfg.KeepAlive, "reuse HTTP connections; false opens one per request (rest)")
	fs.BoolVar(&cfg.Setup, "setup", cfg.Setup, "create the queues (nats: streams) before the run")
	fs.BoolVar(&cfg.Clean, "clean", cfg.Clean, "delete the queues (nats: streams) after the run")
	fs.BoolVar(&cfg.Verify, "verify", cfg.Verify, "check that no message was consumed twice and that every consumed message was produced by this run")
	jsonOut := fs.Bool("json", false, "print the report as one JSON object (fields below) instead of a table")
	fs.Usage = func() { usage(fs, stderr) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "herald bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg.Progress = stderr
	rep, err := Execute(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "herald bench:", err)
		var ue *UsageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	if *jsonOut {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "herald bench:", err)
		return 1
	}
	if !rep.Passed {
		return 1
	}
	return 0
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, `Usage: herald bench [flags]

Load generator for any Zaqar v2 endpoint (REST or WebSocket), and for NATS
JetStream as a point of comparison, modelled on zaqar-bench. Producers post,
consumers claim and delete, observers list, each worker with its own
connection and Client-ID, for --duration; then it prints latency and
throughput per operation and checks what the consumers got. It only talks to
the URL of the chosen target. Bench flags are not read from the environment.

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "  --%s\n    \t%s (default %q)\n", f.Name, f.Usage, f.DefValue)
	})
	fmt.Fprint(w, `
Measurement: a request counts when it starts after --warmup and before the
end of --duration. Successful requests go into an HDR histogram per operation
(microsecond resolution); req/s and msgs/s count successful requests only.
Failed requests are counted by kind: status_<N> for an answer with failure
status N (HTTP, WebSocket headers.status, JetStream API code), otherwise
timeout, connection_refused, connection_reset, eof, ws_closed, no_responders,
disconnected, bad_answer (a success the bench could not read) or other.

Verification (--verify): each body is {"token":"<run>-<producer>-<seq>",
"pad":"…"}. Over the whole run, warm-up included, a delivery is a duplicate
when its message id (nats: stream:sequence) was delivered before and deleted,
or delivered less than the claim TTL (60 s) before, or when its token came
under another id; unknown when its token was not posted by this run or its
post was refused; unconfirmed (allowed) when its post got no answer.

Targets:
  rest  Zaqar v2 REST: POST …/messages, POST …/claims?limit=N, DELETE
        …/messages/{id}?claim_id=C (or bulk), GET …/messages?echo=true.
  ws    Zaqar v2 WebSocket, JSON text frames: message_post, claim_create,
        message_delete (message_delete_many), message_list (no paging over
        WebSocket: observers always read the head). Responses are matched to
        requests by order; notification frames are skipped.
  nats  JetStream (nats-server 2.9+): a file-storage work-queue stream per
        queue; a post is a synchronous publish waiting for the PubAck, or
        for N>1 messages async publishes waiting for every PubAck; consumers
        share a durable pull consumer per queue (explicit acks, AckWait 60 s):
        a claim is a no-wait Fetch, a delete an AckSync (see --consumer-delete).

JSON output (--json), one object:
  target, url, project, queues, messages_per_request, body_size, claim_limit,
  consumer_delete, ws_pipeline, keep_alive, warmup_s,
  duration_s            measured window in seconds
  ops.<op>              op is post, claim, delete or list; each has
    role, workers
    requests            successful requests
    messages            messages they carried
    empty               successful requests that carried none
    req_per_s, msgs_per_s
    latency_ms          {p50, p90, p99, p99_9, max, mean}
    errors              {"<kind>": count}, error_total
  verify                null with --verify=false, else {produced, consumed,
                        deleted, duplicates, unknown, unconfirmed, passed}
  passed, failures      exit code 0 or not, and why

Exit status: 0 success; 1 verification failed, every request failed or the
bench could not run; 2 usage error.
`)
}

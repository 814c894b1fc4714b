package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hlog "github.com/heraldmq/herald/log"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata")

// writeKnownLog writes a fixed history into DIR/log: two projects, three
// queues, most event types, fixed times and ids.
func writeKnownLog(t *testing.T, dir string) {
	t.Helper()
	l, err := hlog.OpenPebble(hlog.PebbleOptions{Dir: filepath.Join(dir, "log"), Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	add := func(typ hlog.Type, project, queue string, payload any) {
		t.Helper()
		ev, err := hlog.NewEvent(typ, project, queue, now, payload)
		if err != nil {
			t.Fatal(err)
		}
		ev.ClientID, ev.RequestID = "0123456789abcdef0123456789abcdef", "req-"+string(typ)
		rec, err := ev.Record()
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		now += int64(time.Minute)
	}
	for _, pq := range [][2]string{{"p1", "orders"}, {"p1", "audit"}, {"p2", "orders"}} {
		add(hlog.QueueCreated, pq[0], pq[1], &hlog.QueueCreatedV1{Metadata: []byte(`{"_default_message_ttl":300}`)})
		add(hlog.MessagesPosted, pq[0], pq[1], &hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{
			{TTL: 300, Body: []byte(`{"event":"created","n":1}`)}, {TTL: 60, Delay: 5, Delayed: true, Body: []byte(`"two"`)}}})
		add(hlog.ClaimCreated, pq[0], pq[1], &hlog.ClaimCreatedV1{TTL: 60, Grace: 30, Limit: 5})
		add(hlog.SubscriptionCreated, pq[0], pq[1], &hlog.SubscriptionCreatedV1{Subscriber: "http://hooks.example/" + pq[1], TTL: 3600,
			Options: []byte(`{"post_headers":{"X-A":"b"}}`), Secret: "must-not-show"})
		add(hlog.QueuePurged, pq[0], pq[1], &hlog.QueuePurgedV1{Messages: true})
	}
}

// TestEventsExportMatchesGolden exports a known log and compares it with
// testdata/events.golden.jsonl (go test ./cmd/herald -run Golden -update
// rewrites it), then checks the filters against the full export.
func TestEventsExportMatchesGolden(t *testing.T) {
	dir := t.TempDir()
	writeKnownLog(t, dir)
	export := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(append([]string{"events", "--data", dir, "--partitions", "4"}, args...), &out, &errb); code != 0 {
			t.Fatalf("herald events %v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	all := export()
	golden := filepath.Join("testdata", "events.golden.jsonl")
	if *update {
		if err := os.WriteFile(golden, []byte(all), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if all != string(want) {
		t.Fatalf("export differs from %s:\n%s", golden, all)
	}
	if strings.Contains(all, "must-not-show") {
		t.Fatal("the export shows a subscription's signing secret")
	}
	lines := func(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }
	keep := func(pred func(string) bool) string {
		var out []string
		for _, l := range lines(all) {
			if pred(l) {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	for _, c := range []struct {
		args []string
		pred func(string) bool
	}{
		{[]string{"--project", "p1", "--queue", "orders"}, func(l string) bool {
			return strings.Contains(l, `"project":"p1","queue":"orders"`)
		}},
		{[]string{"--project", "p2"}, func(l string) bool { return strings.Contains(l, `"project":"p2"`) }},
		{[]string{"--type", "claim.created,queue.purged"}, func(l string) bool {
			return strings.Contains(l, `"type":"claim.created"`) || strings.Contains(l, `"type":"queue.purged"`)
		}},
		{[]string{"--since", "2030-01-02T03:10:05Z", "--until", "2030-01-02T03:14:05Z"}, func(l string) bool {
			var ev struct{ Time time.Time }
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatal(err)
			}
			return !ev.Time.Before(time.Date(2030, 1, 2, 3, 10, 5, 0, time.UTC)) && ev.Time.Before(time.Date(2030, 1, 2, 3, 14, 5, 0, time.UTC))
		}},
	} {
		got := strings.TrimSpace(export(c.args...))
		if want := keep(c.pred); got != want || got == "" {
			t.Errorf("herald events %v:\n%s\nwant\n%s", c.args, got, want)
		}
	}
	got := lines(export("--partition", "0", "--from", "1", "--to", "3"))
	if len(got) != 2 || !strings.HasPrefix(got[0], `{"partition":0,"offset":1,`) || !strings.HasPrefix(got[1], `{"partition":0,"offset":2,`) {
		t.Errorf("offsets [1,3) of partition 0 gave %v", got)
	}
}

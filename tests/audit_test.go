package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/heraldmq/herald/cmd/herald/server"
	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// The operator's audit commands end to end: herald verify, herald replay
// and herald serve --read-only, snapshots taken and restored.

// heraldCmd runs a herald command other than serve to completion.
func heraldCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, heraldBinary(t), args...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("herald %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String(), 0
}

// auditQueueData is the prefix of a queue's data keys in the projection:
// 'm' | str(project) | str(queue), see projection/keys.go (the names here
// hold no 0x00, so str is the name and 0x00 0x01).
func auditQueueData(project, queue string) []byte {
	b := append([]byte{'m'}, project...)
	b = append(b, 0, 1)
	b = append(b, queue...)
	return append(b, 0, 1)
}

// auditTamper opens the Pebble database in dir, finds the first key with
// prefix, lets change return a new value for it and writes that back.
func auditTamper(t *testing.T, dir string, prefix []byte, change func(v []byte) []byte) []byte {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: hlog.PebbleLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer db.Close()
	upper := append(append([]byte(nil), prefix...), 0xff)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		t.Fatal(err)
	}
	if !it.First() {
		it.Close()
		t.Fatalf("no key with prefix %q in %s", prefix, dir)
	}
	key := append([]byte(nil), it.Key()...)
	val := change(append([]byte(nil), it.Value()...))
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Set(key, val, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	// Into an sstable: the projection is read without a WAL.
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	return key
}

// copyTree copies the directory tree from into to.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy %s: %v", from, err)
	}
}

// linesWith returns the lines of out starting with prefix.
func linesWith(out, prefix string) []string {
	var l []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			l = append(l, line)
		}
	}
	return l
}

// TestVerifyHealthyThenCorrupted: verify passes on a node's data, names
// exactly the queue whose projected data was changed behind its back, and
// reports a log record that fails its checksum.
func TestVerifyHealthyThenCorrupted(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "--data", dir, "--partitions", "4")
	a, b := clientOf(t, p), clientOf(t, p)
	for _, q := range []string{"orders", "invoices", "audit"} {
		a.put("/v2/queues/"+q, map[string]any{"owner": q}).expect(t, 201)
		ids := a.postMessages(q, msg(q+"-1"), msg(map[string]any{"n": 2}), msg([]any{3}, "ttl", 600))
		a.post("/v2/queues/"+q+"/claims?limit=1", map[string]any{"ttl": 120, "grace": 60}).expect(t, 201)
		a.del("/v2/queues/"+q+"/messages/"+ids[2]).expect(t, 204)
	}
	// The same queue name in another project is another queue.
	b.postMessages("orders", msg("b-1"), msg("b-2"))
	b.postMessages("events", msg("e-1"))
	b.post("/v2/queues/events/claims", map[string]any{"ttl": 60}).expect(t, 201)
	sbCreate(a, "invoices", map[string]any{"subscriber": "http://127.0.0.1:9/hook", "ttl": 600})
	p.stop(t)

	out, errOut, code := heraldCmd(t, "verify", "--data", dir, "--partitions", "4", "--progress", "none")
	if code != 0 || len(linesWith(out, "OK ")) != 1 || strings.Contains(out, "DIFFERS") || strings.Contains(out, "LOG") {
		t.Fatalf("verify of a healthy node: exit %d\n%s%s", code, out, errOut)
	}

	// The log copy for the checksum check is taken before the projection
	// is tampered with.
	logCopy := t.TempDir()
	copyTree(t, dir, logCopy)

	tampered := auditTamper(t, filepath.Join(dir, "projection"), auditQueueData(a.Project, "orders"), func(v []byte) []byte {
		return append(v, 'x')
	})
	out, errOut, code = heraldCmd(t, "verify", "--data", dir, "--partitions", "4", "--progress", "none")
	differs := linesWith(out, "DIFFERS ")
	want := fmt.Sprintf("DIFFERS queue %q of project %q: ", "orders", a.Project)
	if code != 1 || len(differs) != 1 || !strings.HasPrefix(differs[0], want) || len(linesWith(out, "OK")) != 0 {
		t.Fatalf("verify after changing key %q: exit %d, want 1 and only %q\n%s%s", tampered, code, want, out, errOut)
	}

	// One byte of the first stored record's event: its checksum fails.
	rec := auditTamper(t, filepath.Join(logCopy, "log"), []byte{'r'}, func(v []byte) []byte {
		v[len(v)-1] ^= 0x55
		return v
	})
	damaged := fmt.Sprintf("partition %d offset %d", binary.BigEndian.Uint32(rec[1:5]), binary.BigEndian.Uint64(rec[5:13]))
	out, errOut, code = heraldCmd(t, "verify", "--data", logCopy, "--partitions", "4", "--progress", "none")
	logLines := linesWith(out, "LOG ")
	if code != 1 || len(logLines) == 0 || !strings.Contains(logLines[0], "checksum") || !strings.Contains(logLines[0], damaged) {
		t.Fatalf("verify of a log with a damaged record: exit %d, want 1 and a LOG line about the checksum of %s\n%s%s", code, damaged, out, errOut)
	}
}

// queueRef names a queue of a project.
type queueRef struct{ project, queue string }

// auditView is what a project sees of some queues through REST: the queue
// list, and each queue's messages (claimed ones too) and stats, without
// the ages that depend on the clock.
func auditView(t *testing.T, url string, refs []queueRef) map[string]string {
	t.Helper()
	view := map[string]string{}
	for _, ref := range refs {
		c := &client{t: t, n: &node{URL: url}, Project: ref.project, ClientID: newID()}
		r := c.get("/v2/queues?limit=20").expect(t, 200)
		var ql struct{ Queues []struct{ Name string } }
		if err := json.Unmarshal(r.Body, &ql); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, q := range ql.Queues {
			names = append(names, q.Name)
		}
		view[ref.project+" queues"] = strings.Join(names, ",")

		var msgs []string
		r = c.get("/v2/queues/" + ref.queue + "/messages?include_claimed=true&echo=true&limit=20")
		if r.Status == 200 {
			var ml struct{ Messages []map[string]any }
			if err := json.Unmarshal(r.Body, &ml); err != nil {
				t.Fatal(err)
			}
			for _, m := range ml.Messages {
				delete(m, "age")
				b, _ := json.Marshal(m)
				msgs = append(msgs, string(b))
			}
		} else if r.Status != 204 && r.Status != 404 {
			t.Fatalf("list messages of %v: %d %s", ref, r.Status, r.Body)
		}
		slices.Sort(msgs)
		view[ref.project+"/"+ref.queue+" messages"] = strings.Join(msgs, "\n")
		r = c.get("/v2/queues/" + ref.queue + "/stats")
		stats := fmt.Sprint(r.Status)
		if r.Status == 200 {
			stats = string(stripAges(t, r.Body))
		}
		view[ref.project+"/"+ref.queue+" stats"] = stats
	}
	return view
}

// TestReplayAsOfServesPastState replays the log as of a past position and
// as of a past time, and serves each read-only: both show the state of
// that moment through the normal API and refuse writes.
func TestReplayAsOfServesPastState(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, nodeOptions{Dir: dir, Configure: func(c *server.Config) { c.Partitions = 4 }})
	a, b := newClient(t, n), newClient(t, n)

	// Round 1.
	alpha := a.postMessages("alpha", msg("a1"), msg(map[string]any{"a": 2}), msg("a3", "ttl", 900))
	a.post("/v2/queues/alpha/claims?limit=1", map[string]any{"ttl": 300, "grace": 60}).expect(t, 201)
	beta := a.postMessages("beta", msg("b1"), msg("b2"))
	a.del("/v2/queues/beta/messages/"+beta[0]).expect(t, 204)
	b.put("/v2/queues/gamma", map[string]any{"k": "v"}).expect(t, 201)
	b.postMessages("gamma", msg("g1"), msg("g2"))
	refs := []queueRef{{a.Project, "alpha"}, {a.Project, "beta"}, {b.Project, "gamma"}, {a.Project, "delta"}}
	round1 := auditView(t, n.URL, refs)

	// The last position of round 1 on every partition it wrote to.
	last := map[int]int{}
	for _, ref := range refs[:3] {
		c := a.inProject(ref.project)
		for _, e := range hsAll(c, "/v2/queues/"+ref.queue+"/history") {
			p, off := int(e["partition"].(float64)), int(e["offset"].(float64))
			last[p] = max(last[p], off)
		}
	}
	var spec []string
	for p, off := range last {
		spec = append(spec, fmt.Sprintf("%d:%d", p, off))
	}
	between := n.Clock.Now().UTC()

	// Round 2.
	a.postMessages("alpha", msg("a4"))
	a.del("/v2/queues/alpha/messages/"+alpha[2]).expect(t, 204)
	a.post("/v2/queues/beta/claims", map[string]any{"ttl": 300}).expect(t, 201)
	a.postMessages("delta", msg("d1"))
	b.del("/v2/queues/gamma").expect(t, 204)
	if round2 := auditView(t, n.URL, refs); reflect.DeepEqual(round2, round1) {
		t.Fatal("round 2 changed nothing visible")
	}
	n.Stop(t)

	serveView := func(t *testing.T, proj string) {
		t.Helper()
		p := startProc(t, "--read-only", "--projection", proj)
		got := auditView(t, p.URL, refs)
		for k, w := range round1 {
			if got[k] != w {
				t.Errorf("%s: read-only node shows\n%s\nround 1 showed\n%s", k, got[k], w)
			}
		}
		c := clientOf(t, p)
		c.Project = a.Project
		c.post("/v2/queues/alpha/messages", map[string]any{"messages": []any{msg("late")}}).expectError(t, 403, "read-only")
		if m := c.get("/v2/queues/alpha/history").expect(t, 403).JSON(t); m["title"] != "Read-only node" {
			t.Errorf("history on a read-only node: %v", m)
		}
		p.stop(t)
	}

	t.Run("as-of-offset", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "replayed")
		stdout, stderr, code := heraldCmd(t, "replay", "--data", dir, "--partitions", "4", "--out", out,
			"--as-of-offset", strings.Join(spec, ","), "--progress", "lines")
		if code != 0 {
			t.Fatalf("replay: exit %d\n%s", code, stderr)
		}
		var info projection.ReplayInfo
		if err := json.Unmarshal([]byte(stdout), &info); err != nil {
			t.Fatalf("replay printed %q: %v", stdout, err)
		}
		for p, off := range last {
			if info.Applied[p] != int64(off)+1 {
				t.Errorf("partition %d applied up to %d, asked for %d", p, info.Applied[p], off)
			}
		}
		if info.Partitions != 4 || info.LastEventTime == "" || info.Built == "" {
			t.Errorf("replay info %+v", info)
		}
		if !strings.Contains(stderr, "events/s") {
			t.Errorf("--progress lines wrote no summary:\n%s", stderr)
		}
		serveView(t, out)
	})
	t.Run("as-of-time", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "replayed")
		stdout, stderr, code := heraldCmd(t, "replay", "--data", dir, "--partitions", "4", "--out", out,
			"--as-of-time", between.Format(time.RFC3339Nano), "--progress", "none")
		if code != 0 {
			t.Fatalf("replay: exit %d\n%s", code, stderr)
		}
		var info projection.ReplayInfo
		if err := json.Unmarshal([]byte(stdout), &info); err != nil || info.AsOf == "" {
			t.Fatalf("replay printed %q: %v", stdout, err)
		}
		serveView(t, out)
	})
}

// adminGet reads an admin route.
func adminGet(c *client, path string) *resp {
	c.t.Helper()
	return c.do("GET", path, req{Headers: map[string]string{"X-Roles": "admin"}})
}

// TestStartFromSnapshotSameDigestAsFullReplay: a node without a projection
// starts from its newest snapshot and replays only the log after it, and
// ends with the projection a full replay of the log builds.
func TestStartFromSnapshotSameDigestAsFullReplay(t *testing.T) {
	dir := t.TempDir()
	configure := func(c *server.Config) { c.Partitions = 4; c.AdminMode = true }
	n := startNode(t, nodeOptions{Dir: dir, Configure: configure})
	c := newClient(t, n)
	workload(t, c)

	stdout, stderr, code := heraldCmd(t, "snapshot", "--url", n.URL)
	var snap projection.SnapshotInfo
	if code != 0 || json.Unmarshal([]byte(stdout), &snap) != nil || snap.Name == "" || len(snap.Applied) != 4 {
		t.Fatalf("snapshot: exit %d, %q\n%s", code, stdout, stderr)
	}
	var taken int64
	for _, a := range snap.Applied {
		taken += a
	}
	if taken == 0 {
		t.Fatalf("snapshot %+v applied nothing", snap)
	}
	stdout, _, code = heraldCmd(t, "snapshot", "--url", n.URL, "--list")
	if code != 0 || !strings.Contains(stdout, snap.Name) {
		t.Fatalf("snapshot --list: exit %d, %s", code, stdout)
	}

	// The tail.
	c.postMessages("alpha", msg("after the snapshot"), msg(2))
	c.post("/v2/queues/alpha/claims?limit=1", map[string]any{}).expect(t, 201)
	c.inProject("other").del("/v2/queues/alpha").expect(t, 204)
	before := auditView(t, n.URL, []queueRef{{c.Project, "alpha"}, {c.Project, "gamma"}, {"other", "alpha"}})
	ends, err := n.srv.Log().Ends(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n.Stop(t)
	projDir := filepath.Join(dir, "projection")
	live := digestOf(t, projDir)
	if err := os.RemoveAll(projDir); err != nil {
		t.Fatal(err)
	}

	n2 := startNode(t, nodeOptions{Dir: dir, Configure: configure})
	r := n2.srv.Restored()
	if r == nil || r.Name != snap.Name || !reflect.DeepEqual(r.Applied, snap.Applied) {
		t.Fatalf("restored from %+v, want snapshot %+v", r, snap)
	}
	for p := range ends {
		if got, _ := n2.srv.Store().Applied(int32(p)); got != ends[p] {
			t.Errorf("partition %d: restored node applied up to %d, the log ends at %d", p, got, ends[p])
		}
	}
	if reflect.DeepEqual(snap.Applied, ends) {
		t.Fatal("no tail after the snapshot")
	}
	if after := auditView(t, n2.URL, []queueRef{{c.Project, "alpha"}, {c.Project, "gamma"}, {"other", "alpha"}}); !reflect.DeepEqual(after, before) {
		t.Errorf("restored node shows %v, before the restart %v", after, before)
	}
	n2.Stop(t)
	restored := digestOf(t, projDir)

	for _, proj := range []string{projDir, filepath.Join(dir, "snapshots", snap.Name, "projection")} {
		out, errOut, code := heraldCmd(t, "verify", "--data", dir, "--partitions", "4", "--projection", proj, "--progress", "none")
		if code != 0 || len(linesWith(out, "OK ")) != 1 {
			t.Fatalf("verify of %s: exit %d\n%s%s", proj, code, out, errOut)
		}
	}
	replayed := filepath.Join(t.TempDir(), "replayed")
	if _, errOut, code := heraldCmd(t, "replay", "--data", dir, "--partitions", "4", "--out", replayed, "--progress", "none"); code != 0 {
		t.Fatalf("replay: exit %d\n%s", code, errOut)
	}
	if full := digestOf(t, replayed); full != restored || full != live {
		t.Fatalf("digests: full replay %s, restored from the snapshot %s, before the restart %s", full, restored, live)
	}

	// A stopped node's snapshot is of everything in its log; the oldest
	// snapshot beyond --snapshot-keep goes.
	stdout, stderr, code = heraldCmd(t, "snapshot", "--data", dir, "--partitions", "4", "--snapshot-keep", "1")
	var offline projection.SnapshotInfo
	if code != 0 || json.Unmarshal([]byte(stdout), &offline) != nil || !reflect.DeepEqual(offline.Applied, ends) {
		t.Fatalf("snapshot of the stopped node: exit %d, %q, want applied %v\n%s", code, stdout, ends, stderr)
	}
	stdout, _, code = heraldCmd(t, "snapshot", "--data", dir, "--list")
	var list struct{ Snapshots []projection.SnapshotInfo }
	if code != 0 || json.Unmarshal([]byte(stdout), &list) != nil || len(list.Snapshots) != 1 || list.Snapshots[0].Name != offline.Name {
		t.Fatalf("snapshot --list: exit %d, %s; want only %s", code, stdout, offline.Name)
	}
}

// TestPeriodicSnapshotsKeepTheNewest: --snapshot-interval takes snapshots
// on its own and --snapshot-keep bounds how many are kept.
func TestPeriodicSnapshotsKeepTheNewest(t *testing.T) {
	n := startNode(t, nodeOptions{Configure: func(c *server.Config) {
		c.Partitions, c.AdminMode = 4, true
		c.Snapshots = server.SnapshotConfig{Interval: 300 * time.Millisecond, Keep: 2}
	}})
	c := newClient(t, n)
	seen := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; len(seen) < 4; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("saw %d snapshots before the deadline", len(seen))
		}
		c.postMessages("periodic", msg(i))
		var list struct{ Snapshots []projection.SnapshotInfo }
		if err := json.Unmarshal(adminGet(c, "/v2/snapshots").expect(t, 200).Body, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Snapshots) > 2 {
			t.Fatalf("%d snapshots kept, want at most 2: %+v", len(list.Snapshots), list.Snapshots)
		}
		for _, s := range list.Snapshots {
			seen[s.Name] = true
		}
		time.Sleep(20 * time.Millisecond) // pacing the polls, not waiting for a state
	}
	entries, err := os.ReadDir(filepath.Join(n.Dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) > 3 { // two, and perhaps one being written
		t.Fatalf("%d entries in the snapshot directory", len(entries))
	}
}

// TestVerifyAndReplayOnKafka verifies and replays a node whose log is
// Kafka.
func TestVerifyAndReplayOnKafka(t *testing.T) {
	brokers := startKafka(t)
	dir := t.TempDir()
	n := startNode(t, nodeOptions{Dir: dir, Brokers: brokers, Topic: "herald-audit", Configure: func(c *server.Config) { c.Partitions = 4 }})
	c := newClient(t, n)
	workload(t, c)
	n.Stop(t)

	logArgs := []string{"--data", dir, "--brokers", strings.Join(brokers, ","), "--topic", "herald-audit", "--partitions", "4", "--progress", "none"}
	out, errOut, code := heraldCmd(t, append([]string{"verify"}, logArgs...)...)
	if code != 0 || len(linesWith(out, "OK ")) != 1 {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	replayed := filepath.Join(t.TempDir(), "replayed")
	if _, errOut, code := heraldCmd(t, append([]string{"replay", "--out", replayed}, logArgs...)...); code != 0 {
		t.Fatalf("replay: exit %d\n%s", code, errOut)
	}
	if got, want := digestOf(t, replayed), digestOf(t, filepath.Join(dir, "projection")); got != want {
		t.Fatalf("replayed digest %s, the node's %s", got, want)
	}
}

package tests

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldmq/herald/cmd/herald/server"
	hlog "github.com/heraldmq/herald/log"
)

// Admin API: health, pools and flavors (contract §2.6, §2.7, §3.13,
// checklist item 64), and queues routed to the pools of their flavor.

func startAdminNode(t *testing.T, o nodeOptions) *node {
	o.Configure = func(c *server.Config) { c.AdminMode = true }
	return startNode(t, o)
}

// admin returns a client with the admin role.
func (c *client) admin() *adminClient { return &adminClient{c} }

type adminClient struct{ c *client }

func (a *adminClient) do(method, path string, body any) *resp {
	a.c.t.Helper()
	return a.c.do(method, path, req{Body: body, Headers: map[string]string{"X-Roles": "reader,admin"}})
}

func TestAdminRoutesNeedAdminMode(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := newClient(t, n)
	for _, p := range []string{"/v2/health", "/v2/pools", "/v2/flavors", "/v2/pools/p1"} {
		c.admin().do("GET", p, nil).expect(t, 404)
	}
	home := c.get("/v2/").expect(t, 200).JSON(t)["resources"].(map[string]any)
	if _, ok := home["rel/pools"]; ok {
		t.Fatal("home document lists pools outside admin mode")
	}
}

func TestItem64HealthNeedsAdminRole(t *testing.T) {
	n := startAdminNode(t, nodeOptions{})
	c := newClient(t, n)
	c.postMessages("q", msg(1), msg(2))
	c.get("/v2/health").expectError(t, 403, "not authorized")
	doc := c.admin().do("GET", "/v2/health", nil).expect(t, 200).JSON(t)
	if doc["storage_reachable"] != true {
		t.Fatalf("storage_reachable: %v", doc["storage_reachable"])
	}
	ops := doc["operation_status"].(map[string]any)
	for _, op := range []string{"create_queue", "post_messages", "claim_messages", "list_messages", "delete_messages", "delete_claim", "bulk_delete_messages", "delete_queue"} {
		st, ok := ops[op].(map[string]any)
		if !ok || st["succeeded"] != true || st["ref"] != nil {
			t.Fatalf("operation %s: %v", op, ops[op])
		}
	}
	vol := doc["message_volume"].(map[string]any)
	// The health check cleans up after itself: only the client's messages.
	if vol["total"] != 2.0 || vol["free"] != 2.0 || vol["claimed"] != 0.0 {
		t.Fatalf("message_volume %v", vol)
	}
	home := c.get("/v2/").expect(t, 200).JSON(t)["resources"].(map[string]any)
	for _, k := range []string{"rel/pools", "rel/pool", "rel/flavors", "rel/flavor", "rel/health"} {
		if _, ok := home[k]; !ok {
			t.Fatalf("home document lacks %s in admin mode", k)
		}
	}
}

func pebbleURI(t *testing.T) string { return "pebble://" + filepath.Join(t.TempDir(), "pool-log") }

func TestPoolsCRUD(t *testing.T) {
	n := startAdminNode(t, nodeOptions{})
	c := newClient(t, n)
	a := c.admin()
	uri := pebbleURI(t)

	c.put("/v2/pools/p1", map[string]any{"uri": uri, "weight": 100}).expectError(t, 403, "not authorized")
	r := a.do("PUT", "/v2/pools/p1", map[string]any{"uri": uri, "weight": 100, "options": map[string]any{"k": "v"}}).expect(t, 201)
	if loc := r.Header.Get("Location"); loc != "/v2/pools/p1" {
		t.Fatalf("Location %q", loc)
	}
	got := a.do("GET", "/v2/pools/p1", nil).expect(t, 200).JSON(t)
	want := map[string]any{"name": "p1", "uri": uri, "weight": 100.0, "flavor": nil, "href": "/v2/pools/p1"}
	if !jsonEqual(got, want) {
		t.Fatalf("pool %v, want %v", got, want)
	}
	if d := a.do("GET", "/v2/pools/p1?detailed=true", nil).expect(t, 200).JSON(t); !jsonEqual(d["options"], map[string]any{"k": "v"}) {
		t.Fatalf("detailed pool %v", d)
	}
	a.do("GET", "/v2/pools/nope", nil).expect(t, 404)

	for _, tc := range []struct {
		body   any
		substr string
	}{
		{map[string]any{"weight": 1}, "'uri' is a required property"},
		{map[string]any{"uri": uri + "2"}, "'weight' is a required property"},
		{map[string]any{"uri": uri + "2", "weight": -1}, "less than the minimum of 0"},
		{map[string]any{"uri": uri + "2", "weight": 4294967296}, "greater than the maximum of 4294967295"},
		{map[string]any{"uri": uri + "2", "weight": "1"}, "is not of type 'integer'"},
		{map[string]any{"uri": 5, "weight": 1}, "is not of type 'string'"},
		{map[string]any{"uri": uri + "2", "weight": 1, "x": 1}, "Additional properties are not allowed"},
		{map[string]any{"uri": "mongodb://localhost:1", "weight": 1}, "cannot connect to mongodb://localhost:1"},
		{map[string]any{"uri": "kafka://127.0.0.1:1/topic", "weight": 1}, "cannot connect to"},
		{Raw("[]"), "Document type not supported."},
	} {
		a.do("PUT", "/v2/pools/p2", tc.body).expectError(t, 400, tc.substr)
	}
	a.do("PUT", "/v2/pools/p2", map[string]any{"uri": uri, "weight": 1}).expectError(t, 409, "in use by another pool")
	// Re-PUT of the same name overwrites.
	a.do("PUT", "/v2/pools/p1", map[string]any{"uri": uri, "weight": 7}).expect(t, 201)

	a.do("PATCH", "/v2/pools/p1", map[string]any{}).expectError(t, 400, "needs to be specified")
	a.do("PATCH", "/v2/pools/nope", map[string]any{"weight": 1}).expect(t, 404)
	p := a.do("PATCH", "/v2/pools/p1", map[string]any{"weight": 50}).expect(t, 200).JSON(t)
	if p["weight"] != 50.0 || p["href"] != "/v2/pools/p1" {
		t.Fatalf("patched pool %v", p)
	}

	for _, name := range []string{"p2", "p3", "p4"} {
		a.do("PUT", "/v2/pools/"+name, map[string]any{"uri": pebbleURI(t), "weight": 1}).expect(t, 201)
	}
	page := a.do("GET", "/v2/pools?limit=3", nil).expect(t, 200)
	if cl := page.Header.Get("Content-Location"); cl != "/v2/pools?limit=3" {
		t.Fatalf("Content-Location %q", cl)
	}
	names, next := poolPage(t, page, "pools")
	if !slices.Equal(names, []string{"p1", "p2", "p3"}) || next != "/v2/pools?limit=3&marker=p3" {
		t.Fatalf("page 1: %v next %q", names, next)
	}
	names, next = poolPage(t, a.do("GET", next, nil).expect(t, 200), "pools")
	if !slices.Equal(names, []string{"p4"}) {
		t.Fatalf("page 2: %v", names)
	}
	if names, _ = poolPage(t, a.do("GET", next, nil).expect(t, 200), "pools"); len(names) != 0 {
		t.Fatalf("page 3: %v", names)
	}
	a.do("GET", "/v2/pools?limit=21", nil).expect(t, 400)

	a.do("DELETE", "/v2/pools/p4", nil).expect(t, 204)
	a.do("DELETE", "/v2/pools/p4", nil).expect(t, 204)
	a.do("GET", "/v2/pools/p4", nil).expect(t, 404)
	c.del("/v2/pools/p3").expectError(t, 403, "not authorized")
}

// poolPage returns the names of a pool or flavor page and its next href.
func poolPage(t *testing.T, r *resp, key string) ([]string, string) {
	t.Helper()
	var page struct {
		Items []map[string]any    `json:"-"`
		Links []map[string]string `json:"links"`
	}
	doc := r.JSON(t)
	raw, _ := json.Marshal(doc["links"])
	json.Unmarshal(raw, &page.Links)
	var names []string
	for _, it := range doc[key].([]any) {
		names = append(names, it.(map[string]any)["name"].(string))
	}
	if len(names) == 0 {
		if len(page.Links) != 0 {
			t.Fatalf("empty page with links %v", page.Links)
		}
		return nil, ""
	}
	return names, page.Links[0]["href"]
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestFlavorsCRUD(t *testing.T) {
	n := startAdminNode(t, nodeOptions{})
	c := newClient(t, n)
	a := c.admin()
	for _, name := range []string{"p1", "p2"} {
		a.do("PUT", "/v2/pools/"+name, map[string]any{"uri": pebbleURI(t), "weight": 1}).expect(t, 201)
	}
	c.put("/v2/flavors/f1", map[string]any{"pool_list": []string{"p1"}}).expectError(t, 403, "not authorized")
	for _, tc := range []struct {
		body   any
		substr string
	}{
		{map[string]any{}, "'pool_list' is a required property"},
		{map[string]any{"pool_list": []string{}}, "must not be empty"},
		{map[string]any{"pool_list": "p1"}, "is not of type 'array'"},
		{map[string]any{"pool_list": []string{"nope"}}, "Pool nope does not exist"},
		{map[string]any{"pool_list": []string{"p1"}, "x": 1}, "Additional properties are not allowed"},
	} {
		a.do("PUT", "/v2/flavors/f1", tc.body).expectError(t, 400, tc.substr)
	}
	r := a.do("PUT", "/v2/flavors/f1", map[string]any{"pool_list": []string{"p1", "p2"}, "capabilities": map[string]any{}}).expect(t, 201)
	if loc := r.Header.Get("Location"); loc != "/v2/flavors/f1" {
		t.Fatalf("Location %q", loc)
	}
	// Reading flavors needs no role.
	f := c.get("/v2/flavors/f1").expect(t, 200).JSON(t)
	want := map[string]any{"name": "f1", "href": "/v2/flavors/f1", "pool_list": []string{"p1", "p2"},
		"capabilities": []string{"FIFO", "CLAIMS", "DURABILITY", "AOD", "HIGH_THROUGHPUT"}}
	if !jsonEqual(f, want) {
		t.Fatalf("flavor %v, want %v", f, want)
	}
	if p := a.do("GET", "/v2/pools/p1", nil).expect(t, 200).JSON(t); p["flavor"] != "f1" {
		t.Fatalf("pool p1 flavor %v", p["flavor"])
	}
	list := c.get("/v2/flavors").expect(t, 200).JSON(t)["flavors"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["capabilities"] != nil || list[0].(map[string]any)["pool_list"] == nil {
		t.Fatalf("flavor list %v", list)
	}
	c.get("/v2/flavors/nope").expect(t, 404)

	p := a.do("PATCH", "/v2/flavors/f1", map[string]any{"pool_list": []string{"p1"}}).expect(t, 200).JSON(t)
	if !jsonEqual(p["pool_list"], []string{"p1"}) {
		t.Fatalf("patched flavor %v", p)
	}
	if p := a.do("GET", "/v2/pools/p2", nil).expect(t, 200).JSON(t); p["flavor"] != nil {
		t.Fatalf("pool p2 still in the flavor: %v", p["flavor"])
	}
	a.do("PATCH", "/v2/flavors/f1", map[string]any{"capabilities": map[string]any{}}).expectError(t, 400, "pool_list")
	a.do("PATCH", "/v2/flavors/nope", map[string]any{"pool_list": []string{"p1"}}).expect(t, 404)

	a.do("DELETE", "/v2/pools/p1", nil).expectError(t, 403, "only pool of flavor f1")
	a.do("DELETE", "/v2/flavors/f1", nil).expect(t, 204)
	a.do("DELETE", "/v2/flavors/f1", nil).expect(t, 204)
	if p := a.do("GET", "/v2/pools/p1", nil).expect(t, 200).JSON(t); p["flavor"] != nil {
		t.Fatalf("pool p1 keeps a deleted flavor: %v", p["flavor"])
	}
	a.do("DELETE", "/v2/pools/p1", nil).expect(t, 204)
}

// TestQueuesLiveOnTheirFlavorsPool puts two pools behind one node, an
// embedded log and a Kafka topic, and checks that each queue's events land
// in its pool's log only, and that the node serves all of them, also
// after a restart.
func TestQueuesLiveOnTheirFlavorsPool(t *testing.T) {
	dir := t.TempDir()
	brokers := startKafka(t)
	n := startAdminNode(t, nodeOptions{Dir: dir})
	c := newClient(t, n)
	a := c.admin()
	pebbleDir := filepath.Join(t.TempDir(), "pool-a")
	a.do("PUT", "/v2/pools/a", map[string]any{"uri": "pebble://" + pebbleDir, "weight": 1}).expect(t, 201)
	a.do("PUT", "/v2/pools/b", map[string]any{"uri": "kafka://" + strings.Join(brokers, ",") + "/herald-pool-b", "weight": 1}).expect(t, 201)
	a.do("PUT", "/v2/flavors/fa", map[string]any{"pool_list": []string{"a"}}).expect(t, 201)
	a.do("PUT", "/v2/flavors/fb", map[string]any{"pool_list": []string{"b"}}).expect(t, 201)

	c.put("/v2/queues/qx", map[string]any{"_flavor": "nope"}).expectError(t, 400, "Flavor nope does not exist")
	c.put("/v2/queues/qa", map[string]any{"_flavor": "fa"}).expect(t, 201)
	c.put("/v2/queues/qb", map[string]any{"_flavor": "fb", "k": 1}).expect(t, 201)
	c.put("/v2/queues/qc", nil).expect(t, 201)
	for _, q := range []string{"qa", "qb", "qc"} {
		ids := c.postMessages(q, msg(q+"-1"), msg(q+"-2"))
		cid, msgs := mcClaim(c, q, "limit=1", map[string]any{})
		if len(msgs) != 1 || msgs[0]["body"] != q+"-1" {
			t.Fatalf("%s: claimed %v", q, msgs)
		}
		c.do("DELETE", "/v2/queues/"+q+"/messages/"+ids[0]+"?claim_id="+cid, req{}).expect(t, 204)
		c.post("/v2/queues/"+q+"/subscriptions", map[string]any{"subscriber": "http://example.com/" + q}).expect(t, 201)
	}
	if m := c.get("/v2/queues/qb").expect(t, 200).JSON(t); m["_flavor"] != "fb" || m["k"] != 1.0 {
		t.Fatalf("qb metadata %v", m)
	}
	checkQueues := func(c *client) {
		t.Helper()
		page := c.get("/v2/queues?limit=2&with_count=true").expect(t, 200).JSON(t)
		if names := listNames(page, "queues"); !slices.Equal(names, []string{"qa", "qb"}) || page["count"] != 3.0 {
			t.Fatalf("queue page %v", page)
		}
		for _, q := range []string{"qa", "qb", "qc"} {
			st := c.get("/v2/queues/"+q+"/stats").expect(t, 200).JSON(t)["messages"].(map[string]any)
			if st["total"] != 1.0 {
				t.Fatalf("%s stats %v", q, st)
			}
		}
	}
	checkQueues(c)
	// Another project sees none of it.
	if page := c.inProject("other").get("/v2/queues").expect(t, 200).JSON(t); len(listNames(page, "queues")) != 0 {
		t.Fatalf("other project lists %v", page)
	}

	n.Stop(t)
	n = startAdminNode(t, nodeOptions{Dir: dir})
	c.n = n
	checkQueues(c)
	n.Stop(t)

	pa := readQueuesOfPebbleLog(t, pebbleDir)
	pb := readQueuesOfKafkaTopic(t, brokers, "herald-pool-b")
	own := readQueuesOfPebbleLog(t, filepath.Join(dir, "log"))
	if !slices.Equal(pa, []string{"qa"}) || !slices.Equal(pb, []string{"qb"}) {
		t.Fatalf("pool a holds events of %v, pool b of %v", pa, pb)
	}
	// The node's own log holds the catalog, the placements and qc.
	if !slices.Equal(own, []string{"qc"}) {
		t.Fatalf("node log holds events of %v", own)
	}
}

// readQueuesOfPebbleLog returns the queues that have events other than
// placements in an embedded log, sorted.
func readQueuesOfPebbleLog(t *testing.T, dir string) []string {
	t.Helper()
	l, err := hlog.OpenPebble(hlog.PebbleOptions{Dir: dir, Partitions: 8})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := l.Ends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for p, end := range ends {
		if end == 0 {
			continue
		}
		cur, err := l.OpenCursor(int32(p), 0)
		if err != nil {
			t.Fatal(err)
		}
		for read := int64(0); read < end; {
			recs, err := cur.Next(ctx, 512)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				noteQueue(t, seen, r.Value)
			}
			read += int64(len(recs))
		}
		cur.Close()
	}
	return sortedKeys(seen)
}

func readQueuesOfKafkaTopic(t *testing.T, brokers []string, topic string) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Read until two polls in a row bring nothing new.
	for idle := 0; idle < 2 && ctx.Err() == nil; {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { noteQueue(t, seen, r.Value); n++ })
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return sortedKeys(seen)
}

func noteQueue(t *testing.T, seen map[string]bool, v []byte) {
	ev, err := hlog.DecodeEvent(v)
	if err != nil {
		t.Fatalf("undecodable event: %v", err)
	}
	if ev.Type != hlog.QueuePlaced && ev.Queue != "" {
		seen[ev.Queue] = true
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestDeadLettersOnAPool: a queue on a pool moves its dead letters into a
// dead-letter queue on the same pool, readable through the node.
func TestDeadLettersOnAPool(t *testing.T) {
	n := startAdminNode(t, nodeOptions{})
	c := newClient(t, n)
	a := c.admin()
	pebbleDir := filepath.Join(t.TempDir(), "pool-a")
	a.do("PUT", "/v2/pools/a", map[string]any{"uri": "pebble://" + pebbleDir, "weight": 1}).expect(t, 201)
	a.do("PUT", "/v2/flavors/fa", map[string]any{"pool_list": []string{"a"}}).expect(t, 201)
	c.put("/v2/queues/src", map[string]any{"_flavor": "fa", "_max_claim_count": 1, "_dead_letter_queue": "dead"}).expect(t, 201)
	id := c.postMessages("src", msg("poison"))[0]
	mcClaim(c, "src", "", map[string]any{"ttl": 60})
	n.Clock.Advance(61 * time.Second)
	c.post("/v2/queues/src/claims", map[string]any{"ttl": 60}).expect(t, 204)
	m := c.get("/v2/queues/dead/messages/"+id).expect(t, 200).JSON(t)
	if m["body"] != "poison" {
		t.Fatalf("dead letter %v", m)
	}
	n.Stop(t)
	if got := readQueuesOfPebbleLog(t, pebbleDir); !slices.Equal(got, []string{"dead", "src"}) {
		t.Fatalf("pool a holds events of %v", got)
	}
}

// TestPoolSafety: a pool holding queues cannot be deleted, names that
// cannot be directories are refused, two spellings of one directory are
// one log, and a pool that cannot be reached leaves other tenants'
// listings alone.
func TestPoolSafety(t *testing.T) {
	n := startAdminNode(t, nodeOptions{})
	c := newClient(t, n)
	a := c.admin()
	dir := filepath.Join(t.TempDir(), "pool-a")
	a.do("PUT", "/v2/pools/a", map[string]any{"uri": "pebble://" + dir, "weight": 1}).expect(t, 201)
	a.do("PUT", "/v2/pools/b", map[string]any{"uri": "pebble://" + dir + "/", "weight": 1}).expectError(t, 409, "in use by another pool")
	a.do("PUT", "/v2/pools/b", map[string]any{"uri": "pebble://" + filepath.Dir(dir) + "/./pool-a", "weight": 1}).expectError(t, 409, "in use by another pool")
	a.do("PUT", "/v2/pools/bad%20name", map[string]any{"uri": pebbleURI(t), "weight": 1}).expectError(t, 400, "Pool names")
	a.do("PUT", "/v2/flavors/bad%20name", map[string]any{"pool_list": []string{"a"}}).expectError(t, 400, "Flavor names")
	a.do("PUT", "/v2/flavors/fa", map[string]any{"pool_list": []string{"a"}}).expect(t, 201)
	c.put("/v2/queues/qa", map[string]any{"_flavor": "fa"}).expect(t, 201)
	a.do("DELETE", "/v2/flavors/fa", nil).expect(t, 204)
	a.do("DELETE", "/v2/pools/a", nil).expectError(t, 409, "still holds queues")
	c.postMessages("qa", msg(1))

	// A registered pool whose broker answers nothing Kafka: listings of
	// other projects still work.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	a.do("PUT", "/v2/pools/dead", map[string]any{"uri": "kafka://" + l.Addr().String() + "/t", "weight": 1}).expect(t, 201)
	other := newClient(t, n)
	other.put("/v2/queues/mine", nil).expect(t, 201)
	if names := listNames(other.get("/v2/queues").expect(t, 200).JSON(t), "queues"); !slices.Equal(names, []string{"mine"}) {
		t.Fatalf("listing with an unreachable pool: %v", names)
	}
}

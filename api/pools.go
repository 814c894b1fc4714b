package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// Pools and flavors (contract §2.7, §3.14). A pool names a log (see
// hlog.OpenURI); a flavor is a set of pools. The catalog is kept in the
// node's own log. A queue created with metadata "_flavor" is placed on one
// of that flavor's pools, chosen by weight from a hash of its name, and
// from then on all its events go to that pool's log and its reads to that
// pool's projection. Every other queue lives on the node's own log. Each
// node projects every pool it is asked about, so any node serves any
// queue. Dead-letter queues live on the log of their source queue.

// poolSet opens and caches the replicas of pools.
type poolSet struct {
	primary    *projection.Replica
	dir        string
	partitions int32
	cfg        *Config

	mu   sync.Mutex
	open map[string]*openPool // by pool name and URI
}

// openPool is one pool's replica. Its own lock serialises opening it, so
// a pool catching up with a long log holds up only its own queues.
type openPool struct {
	mu      sync.Mutex
	replica *projection.Replica
	// After a failed open, requests fail fast until retryAt.
	retryAt time.Time
	err     error
}

// poolRetry is how long a pool that failed to open is not tried again.
const poolRetry = 30 * time.Second

// replica returns the running replica of pool name, opening it (and
// catching it up with its log) on first use.
func (ps *poolSet) replica(ctx context.Context, name string) (*projection.Replica, error) {
	rec, err := ps.primary.Store.Pool(name)
	if err != nil {
		return nil, Unavailable("The pool catalog could not be read.", err)
	}
	if rec == nil {
		return nil, Unavailable(fmt.Sprintf("Pool %s is not registered.", name), nil)
	}
	if ps.cfg.ReadOnly {
		// A rebuilt projection is of the node's own log only.
		return nil, ReadOnly(fmt.Sprintf("Queues on pool %s are not part of this projection.", name))
	}
	// A pool pointed at another log has another projection: the key
	// holds the URI. A replica it replaces stays open (requests may
	// still use it) until the service closes.
	sum := sha256.Sum256([]byte(rec.URI))
	key := name + "-" + hex.EncodeToString(sum[:4])
	ps.mu.Lock()
	op, ok := ps.open[key]
	if !ok {
		op = &openPool{}
		ps.open[key] = op
	}
	ps.mu.Unlock()

	op.mu.Lock()
	defer op.mu.Unlock()
	if op.replica != nil {
		return op.replica, nil
	}
	if time.Now().Before(op.retryAt) {
		return nil, op.err
	}
	// Opening outlives the request that asked for it.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	fail := func(err error) (*projection.Replica, error) {
		op.retryAt, op.err = time.Now().Add(poolRetry), Unavailable(fmt.Sprintf("Pool %s could not be opened.", name), err)
		return nil, op.err
	}
	l, err := hlog.OpenURI(octx, rec.URI, ps.partitions, ps.cfg.Logger)
	if err != nil {
		return fail(err)
	}
	r, err := projection.StartReplica(octx, l, filepath.Join(ps.dir, key), ps.cfg.Logger, ps.cfg.Feed)
	if err != nil {
		return fail(err)
	}
	op.replica = r
	return r, nil
}

// replicas returns the node's own replica and those of every pool.
func (ps *poolSet) replicas(ctx context.Context) ([]*projection.Replica, error) {
	pools, err := ps.primary.Store.Pools("", -1)
	if err != nil {
		return nil, Unavailable("The pool catalog could not be read.", err)
	}
	out := []*projection.Replica{ps.primary}
	for _, p := range pools {
		r, err := ps.replica(ctx, p.Name)
		if err != nil {
			// One pool that cannot be reached must not take down
			// everyone's listings: its queues are left out, and logged.
			ps.cfg.Logger.Warn("pool left out of a listing", "pool", p.Name, "err", err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func (ps *poolSet) close(ctx context.Context) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var errs []error
	for key, op := range ps.open {
		op.mu.Lock()
		if op.replica != nil {
			errs = append(errs, op.replica.Close(ctx))
		}
		op.mu.Unlock()
		delete(ps.open, key)
	}
	return errors.Join(errs...)
}

// replicaFor returns the replica holding a queue's events.
func (s *Service) replicaFor(ctx context.Context, project, queue string) (*projection.Replica, error) {
	if project == "" {
		return s.pools.primary, nil
	}
	name, err := s.pools.primary.Store.Placement(project, queue)
	if err != nil {
		return nil, Unavailable("The queue catalog could not be read.", err)
	}
	if name == "" {
		return s.pools.primary, nil
	}
	return s.pools.replica(ctx, name)
}

// storeFor returns the projection holding a queue.
func (s *Service) storeFor(ctx context.Context, c Caller, queue string) (*projection.Store, error) {
	r, err := s.replicaFor(ctx, c.Project, queue)
	if err != nil {
		return nil, err
	}
	return r.Store, nil
}

// placeQueue places a new queue on a pool of flavor, unless it is placed
// already. It answers 400 for an unknown flavor or one without pools.
func (s *Service) placeQueue(ctx context.Context, c Caller, queue, flavor string) error {
	store := s.pools.primary.Store
	if placed, err := store.Placement(c.Project, queue); err != nil || placed != "" {
		return err
	}
	f, err := store.Flavor(flavor)
	if err != nil {
		return Unavailable("The pool catalog could not be read.", err)
	}
	if f == nil {
		return BadRequest("Flavor %s does not exist", flavor)
	}
	pools, err := store.FlavorPools(flavor)
	if err != nil {
		return Unavailable("The pool catalog could not be read.", err)
	}
	if len(pools) == 0 {
		return BadRequest("Flavor %s has no pools", flavor)
	}
	return s.placeOn(ctx, c, queue, pickPool(pools, c.Project+"/"+queue))
}

func (s *Service) placeOn(ctx context.Context, c Caller, queue, pool string) error {
	ev, err := s.event(hlog.QueuePlaced, c, queue, &hlog.QueuePlacedV1{Pool: pool})
	if err != nil {
		return err
	}
	_, _, _, err = s.writeTo(ctx, c, s.pools.primary, ev)
	return err
}

// colocateDeadLetters makes sure the dead-letter queue of a claim on
// queue lives on the same log, where the projector moves messages: a
// dead-letter queue not yet placed anywhere is placed on the source's
// pool. When it lives elsewhere already, nothing is moved (false).
func (s *Service) colocateDeadLetters(ctx context.Context, c Caller, queue, dlq string) (bool, error) {
	store := s.pools.primary.Store
	src, err := store.Placement(c.Project, queue)
	if err != nil {
		return false, Unavailable("The queue catalog could not be read.", err)
	}
	dst, err := store.Placement(c.Project, dlq)
	if err != nil {
		return false, Unavailable("The queue catalog could not be read.", err)
	}
	if src == dst {
		return true, nil
	}
	if dst != "" || src == "" {
		return false, nil
	}
	if q, err := store.Queue(c.Project, dlq); err != nil || q != nil {
		return false, err // it exists on the node's own log
	}
	return true, s.placeOn(ctx, c, dlq, src)
}

// pickPool chooses among pools by weight with a hash of key, so the same
// queue always lands on the same pool of a flavor.
func pickPool(pools []projection.Pool, key string) string {
	var total uint64
	for _, p := range pools {
		total += uint64(max(p.Weight, 0))
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	if total == 0 {
		return pools[h.Sum64()%uint64(len(pools))].Name
	}
	x := h.Sum64() % total
	for _, p := range pools {
		w := uint64(max(p.Weight, 0))
		if x < w {
			return p.Name
		}
		x -= w
	}
	return pools[len(pools)-1].Name
}

// --- admin operations ---

// PoolJSON renders a pool (contract §2.7).
func PoolJSON(p *projection.Pool, detailed bool) map[string]any {
	out := map[string]any{"name": p.Name, "uri": p.URI, "weight": p.Weight, "href": "/v2/pools/" + p.Name, "flavor": nil}
	if p.Flavor != "" {
		out["flavor"] = p.Flavor
	}
	if detailed {
		out["options"] = rawObject(p.Options)
	}
	return out
}

func rawObject(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("{}")
	}
	return json.RawMessage(b)
}

// Capabilities are what every Herald log offers, named as older Zaqar
// releases name them (contract B12).
var Capabilities = []string{"FIFO", "CLAIMS", "DURABILITY", "AOD", "HIGH_THROUGHPUT"}

// FlavorJSON renders a flavor; the list form omits an empty pool list and,
// unless detailed, the capabilities.
func (s *Service) FlavorJSON(f *projection.Flavor, item, detailed bool) (map[string]any, error) {
	pools, err := s.pools.primary.Store.FlavorPools(f.Name)
	if err != nil {
		return nil, Unavailable("Flavors could not be listed.", err)
	}
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.Name
	}
	out := map[string]any{"name": f.Name, "href": "/v2/flavors/" + f.Name}
	if item || len(names) > 0 {
		out["pool_list"] = names
	}
	if item || detailed {
		out["capabilities"] = Capabilities
	}
	return out, nil
}

func (s *Service) pageLimit(limit int) (int, error) {
	if limit == 0 {
		return 10, nil
	}
	if limit < 1 || limit > 20 {
		return 0, BadRequest("Limit must be at least 1 and no greater than 20.")
	}
	return limit, nil
}

// ListPools lists pools in name order after marker.
func (s *Service) ListPools(ctx context.Context, marker string, limit int) ([]projection.Pool, error) {
	limit, err := s.pageLimit(limit)
	if err != nil {
		return nil, err
	}
	pools, err := s.pools.primary.Store.Pools(marker, limit)
	if err != nil {
		return nil, Unavailable("Pools could not be listed.", err)
	}
	return pools, nil
}

// GetPool returns a pool or 404.
func (s *Service) GetPool(ctx context.Context, name string) (*projection.Pool, error) {
	p, err := s.pools.primary.Store.Pool(name)
	if err != nil {
		return nil, Unavailable("Pool could not be read.", err)
	}
	if p == nil {
		return nil, NotFound("Pool %s does not exist", name)
	}
	return p, nil
}

// PutPool creates or replaces pool name from a request body.
func (s *Service) PutPool(ctx context.Context, c Caller, name string, doc map[string]any) error {
	if err := checkSchema(doc, poolSchema, []string{"uri", "weight"}); err != nil {
		return err
	}
	if err := validAdminName("Pool", name); err != nil {
		return err
	}
	pl := &hlog.PoolPutV1{Name: name, URI: hlog.NormalizeURI(doc["uri"].(string))}
	pl.Weight, _ = projection.IntOf(doc["weight"])
	pl.Flavor, _ = doc["flavor"].(string)
	if o, ok := doc["options"]; ok {
		pl.Options = projection.EncodeJSON(o)
	}
	if err := s.checkPoolURI(ctx, pl.URI); err != nil {
		return err
	}
	return s.admin(ctx, c, hlog.PoolPut, pl)
}

func (s *Service) checkPoolURI(ctx context.Context, uri string) error {
	if err := hlog.CheckURI(ctx, uri); err != nil {
		return BadRequest("cannot connect to %s", uri)
	}
	return nil
}

// PatchPool changes some fields of a pool and returns it.
func (s *Service) PatchPool(ctx context.Context, c Caller, name string, doc map[string]any) (*projection.Pool, error) {
	if err := checkSchema(doc, poolSchema, nil); err != nil {
		return nil, err
	}
	pl := &hlog.PoolPatchedV1{Name: name}
	any := false
	if v, ok := doc["uri"].(string); ok {
		v = hlog.NormalizeURI(v)
		if err := s.checkPoolURI(ctx, v); err != nil {
			return nil, err
		}
		pl.URI, any = &v, true
	}
	if v, ok := doc["weight"]; ok {
		w, _ := projection.IntOf(v)
		pl.Weight, any = &w, true
	}
	if v, ok := doc["flavor"].(string); ok {
		pl.Flavor, any = &v, true
	}
	if v, ok := doc["options"]; ok {
		pl.Options, any = projection.EncodeJSON(v), true
	}
	if !any {
		return nil, BadRequest("One of `uri`, `weight`, `flavor`, or `options` needs to be specified")
	}
	if err := s.admin(ctx, c, hlog.PoolPatched, pl); err != nil {
		return nil, err
	}
	return s.GetPool(ctx, name)
}

// DeletePool deletes a pool (403 for the last pool of a flavor).
func (s *Service) DeletePool(ctx context.Context, c Caller, name string) error {
	return s.admin(ctx, c, hlog.PoolDeleted, &hlog.PoolDeletedV1{Name: name})
}

// ListFlavors lists flavors in name order after marker.
func (s *Service) ListFlavors(ctx context.Context, marker string, limit int) ([]projection.Flavor, error) {
	limit, err := s.pageLimit(limit)
	if err != nil {
		return nil, err
	}
	fs, err := s.pools.primary.Store.Flavors(marker, limit)
	if err != nil {
		return nil, Unavailable("Flavors could not be listed.", err)
	}
	return fs, nil
}

// GetFlavor returns a flavor or 404.
func (s *Service) GetFlavor(ctx context.Context, name string) (*projection.Flavor, error) {
	f, err := s.pools.primary.Store.Flavor(name)
	if err != nil {
		return nil, Unavailable("Flavor could not be read.", err)
	}
	if f == nil {
		return nil, NotFound("Flavor %s does not exist", name)
	}
	return f, nil
}

// PutFlavor creates or replaces a flavor and assigns its pools.
func (s *Service) PutFlavor(ctx context.Context, c Caller, name string, doc map[string]any) error {
	if err := checkSchema(doc, flavorSchema, []string{"pool_list"}); err != nil {
		return err
	}
	if err := validAdminName("Flavor", name); err != nil {
		return err
	}
	pools, err := poolList(doc)
	if err != nil {
		return err
	}
	pl := &hlog.FlavorPutV1{Name: name, Pools: pools}
	if v, ok := doc["capabilities"]; ok {
		pl.Capabilities = projection.EncodeJSON(v)
	}
	return s.admin(ctx, c, hlog.FlavorPut, pl)
}

// PatchFlavor replaces the pools of a flavor and returns it.
func (s *Service) PatchFlavor(ctx context.Context, c Caller, name string, doc map[string]any) (*projection.Flavor, error) {
	if err := checkSchema(doc, flavorSchema, nil); err != nil {
		return nil, err
	}
	if _, ok := doc["pool_list"]; !ok {
		return nil, BadRequest("`pool_list` needs to be specified")
	}
	pools, err := poolList(doc)
	if err != nil {
		return nil, err
	}
	if err := s.admin(ctx, c, hlog.FlavorPatched, &hlog.FlavorPatchedV1{Name: name, Pools: pools}); err != nil {
		return nil, err
	}
	return s.GetFlavor(ctx, name)
}

// DeleteFlavor deletes a flavor and detaches its pools.
func (s *Service) DeleteFlavor(ctx context.Context, c Caller, name string) error {
	return s.admin(ctx, c, hlog.FlavorDeleted, &hlog.FlavorDeletedV1{Name: name})
}

// validAdminName checks a pool or flavor name: pool names also name
// directories, so they take the queue name characters.
func validAdminName(what, name string) error {
	if !ValidQueueName(name) {
		return BadRequest("%s names may only contain ASCII letters, digits, underscores, dashes and dots, up to 64 of them.", what)
	}
	return nil
}

func poolList(doc map[string]any) ([]string, error) {
	raw, _ := doc["pool_list"].([]any)
	if len(raw) == 0 {
		return nil, BadRequest("`pool_list` must not be empty")
	}
	out := make([]string, 0, len(raw))
	for _, v := range raw {
		name, ok := v.(string)
		if !ok || name == "" {
			return nil, BadRequest("`pool_list` must list pool names")
		}
		out = append(out, name)
	}
	return out, nil
}

// admin appends a catalog event to the node's own log.
func (s *Service) admin(ctx context.Context, c Caller, t hlog.Type, payload any) error {
	ev, err := hlog.NewEvent(t, "", "", s.Now(), payload)
	if err != nil {
		return err
	}
	_, _, _, err = s.writeTo(ctx, c, s.pools.primary, ev)
	return err
}

// --- JSON schema checks, worded like Python's jsonschema ---

type fieldRule struct {
	name   string
	kind   string // "string", "integer", "object", "array"
	maxLen int
	min    int64
	max    int64
}

var poolSchema = []fieldRule{
	{name: "weight", kind: "integer", min: 0, max: 1<<32 - 1},
	{name: "flavor", kind: "string", maxLen: 255},
	{name: "uri", kind: "string", maxLen: 255},
	{name: "options", kind: "object"},
}

var flavorSchema = []fieldRule{
	{name: "pool_list", kind: "array"},
	{name: "capabilities", kind: "object"},
}

func checkSchema(doc map[string]any, rules []fieldRule, required []string) error {
	bad := func(format string, args ...any) error { return BadBody(format, args...) }
	known := map[string]bool{}
	for _, r := range rules {
		known[r.name] = true
		v, ok := doc[r.name]
		if !ok {
			continue
		}
		switch r.kind {
		case "string":
			s, isStr := v.(string)
			if !isStr {
				return bad("%s is not of type 'string'", pyRepr(v))
			}
			if len([]rune(s)) > r.maxLen {
				return bad("%s is too long", pyRepr(v))
			}
		case "integer":
			n, isNum := v.(json.Number)
			i, err := strconv.ParseInt(string(n), 10, 64)
			if !isNum || err != nil {
				return bad("%s is not of type 'integer'", pyRepr(v))
			}
			if i < r.min {
				return bad("%d is less than the minimum of %d", i, r.min)
			}
			if i > r.max {
				return bad("%d is greater than the maximum of %d", i, r.max)
			}
		case "object":
			if _, isObj := v.(map[string]any); !isObj {
				return bad("%s is not of type 'object'", pyRepr(v))
			}
		case "array":
			if _, isArr := v.([]any); !isArr {
				return bad("%s is not of type 'array'", pyRepr(v))
			}
		}
	}
	for _, k := range required {
		if _, ok := doc[k]; !ok {
			return bad("'%s' is a required property", k)
		}
	}
	var extra []string
	for k := range doc {
		if !known[k] {
			extra = append(extra, "'"+k+"'")
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		verb := "was"
		if len(extra) > 1 {
			verb = "were"
		}
		return bad("Additional properties are not allowed (%s %s unexpected)", strings.Join(extra, ", "), verb)
	}
	return nil
}

package projection

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// The admin catalog: pools (logs that queues can live on), flavors (sets
// of pools) and queue placements. It lives in the node's own log and
// projection; a pool's queues live in the pool's log and projection.

// Pool is a registered pool.
type Pool struct {
	Name    string `msgpack:"name"`
	URI     string `msgpack:"uri"`
	Weight  int64  `msgpack:"weight"`
	Flavor  string `msgpack:"flavor,omitempty"`
	Options []byte `msgpack:"options,omitempty"` // compact JSON object
}

// Flavor is a registered flavor; its pools are the pools naming it.
type Flavor struct {
	Name         string `msgpack:"name"`
	Capabilities []byte `msgpack:"capabilities,omitempty"` // compact JSON object
}

func (a *applier) putPool(b *pebble.Batch, pl *hlog.PoolPutV1) (*Outcome, error) {
	if out, err := uriTaken(b, pl.Name, pl.URI); out != nil || err != nil {
		return out, err
	}
	p := &Pool{Name: pl.Name, URI: pl.URI, Weight: pl.Weight, Flavor: pl.Flavor, Options: pl.Options}
	return &Outcome{Status: 201}, putRecord(b, poolKey(p.Name), p)
}

// uriTaken answers 409 when a pool other than name has uri.
func uriTaken(r pebble.Reader, name, uri string) (*Outcome, error) {
	pools, err := scanPools(r, "", -1)
	if err != nil {
		return nil, err
	}
	for _, p := range pools {
		if p.URI == uri && p.Name != name {
			return &Outcome{Status: 409, Title: "Resource conflict", Description: "The database URI is in use by another pool."}, nil
		}
	}
	return nil, nil
}

func poolNotFound(name string) *Outcome {
	return &Outcome{Status: 404, Title: "Not found", Description: fmt.Sprintf("Pool %s does not exist", name)}
}

func (a *applier) patchPool(b *pebble.Batch, pl *hlog.PoolPatchedV1) (*Outcome, error) {
	p, err := getRecord[Pool](b, poolKey(pl.Name))
	if err != nil || p == nil {
		return poolNotFound(pl.Name), err
	}
	if pl.URI != nil {
		if out, err := uriTaken(b, pl.Name, *pl.URI); out != nil || err != nil {
			return out, err
		}
		p.URI = *pl.URI
	}
	if pl.Weight != nil {
		p.Weight = *pl.Weight
	}
	if pl.Flavor != nil {
		p.Flavor = *pl.Flavor
	}
	if pl.Options != nil {
		p.Options = pl.Options
	}
	return &Outcome{Status: 200}, putRecord(b, poolKey(p.Name), p)
}

func (a *applier) deletePool(b *pebble.Batch, pl *hlog.PoolDeletedV1) (*Outcome, error) {
	p, err := getRecord[Pool](b, poolKey(pl.Name))
	if err != nil || p == nil {
		return &Outcome{Status: 204}, err
	}
	if used, err := poolHoldsQueues(b, p.Name); err != nil || used {
		return &Outcome{Status: 409, Title: "Resource conflict",
			Description: fmt.Sprintf("Pool %s still holds queues; it cannot be deleted.", p.Name)}, err
	}
	if p.Flavor != "" {
		members, err := flavorPools(b, p.Flavor)
		if err != nil {
			return nil, err
		}
		if len(members) == 1 {
			return &Outcome{Status: 403, Title: "Unable to delete",
				Description: fmt.Sprintf("Pool %s is the only pool of flavor %s; delete the flavor first.", p.Name, p.Flavor)}, nil
		}
	}
	return &Outcome{Status: 204}, b.Delete(poolKey(p.Name), nil)
}

func (a *applier) putFlavor(b *pebble.Batch, name string, pools []string, caps []byte, replace bool) (*Outcome, error) {
	f, err := getRecord[Flavor](b, flavorKey(name))
	if err != nil {
		return nil, err
	}
	if f == nil && !replace {
		return &Outcome{Status: 404, Title: "Not found", Description: fmt.Sprintf("Flavor %s does not exist", name)}, nil
	}
	var assign []*Pool
	for _, n := range pools {
		p, err := getRecord[Pool](b, poolKey(n))
		if err != nil {
			return nil, err
		}
		if p == nil {
			return &Outcome{Status: 400, Title: "Invalid API request", Description: fmt.Sprintf("Pool %s does not exist", n)}, nil
		}
		assign = append(assign, p)
	}
	if err := a.detachPools(b, name, pools); err != nil {
		return nil, err
	}
	for _, p := range assign {
		p.Flavor = name
		if err := putRecord(b, poolKey(p.Name), p); err != nil {
			return nil, err
		}
	}
	if f == nil || replace {
		f = &Flavor{Name: name, Capabilities: caps}
	}
	status := 200
	if replace {
		status = 201
	}
	return &Outcome{Status: status}, putRecord(b, flavorKey(name), f)
}

// detachPools detaches the pools of flavor that are not in keep.
func (a *applier) detachPools(b *pebble.Batch, flavor string, keep []string) error {
	members, err := flavorPools(b, flavor)
	if err != nil {
		return err
	}
	for _, p := range members {
		if slices.Contains(keep, p.Name) {
			continue
		}
		p.Flavor = ""
		if err := putRecord(b, poolKey(p.Name), &p); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) deleteFlavor(b *pebble.Batch, name string) error {
	if err := a.detachPools(b, name, nil); err != nil {
		return err
	}
	return b.Delete(flavorKey(name), nil)
}

// placeQueue records a queue's pool; an empty pool removes the placement
// (the queue was deleted). A placement stays until then: the queue's
// events went to that pool's log.
func (a *applier) placeQueue(b *pebble.Batch, ev *hlog.Event, pool string) error {
	k := placementKey(ev.Project, ev.Queue)
	a.catalogChanged = true
	if pool == "" {
		return b.Delete(k, nil)
	}
	_, closer, err := b.Get(k)
	if err == nil {
		return closer.Close()
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	return b.Set(k, []byte(pool), nil)
}

// poolHoldsQueues reports whether any queue is placed on pool. Deleting
// such a pool would strand its queues.
func poolHoldsQueues(r pebble.Reader, pool string) (bool, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{tagPlace}, UpperBound: []byte{tagPlace + 1}})
	if err != nil {
		return false, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if string(it.Value()) == pool {
			return true, nil
		}
	}
	return false, it.Error()
}

// scanPools returns up to limit pools (all when limit < 0) named after
// marker, in name order.
func scanPools(r pebble.Reader, marker string, limit int) ([]Pool, error) {
	return scanNamed[Pool](r, tagPool, marker, limit)
}

func scanNamed[T any](r pebble.Reader, tag byte, marker string, limit int) ([]T, error) {
	lo := []byte{tag}
	if marker != "" {
		lo = append(append([]byte{tag}, marker...), 0)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: []byte{tag + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []T
	for ok := it.First(); ok && (limit < 0 || len(out) < limit); ok = it.Next() {
		var v T
		if err := hlog.Unmarshal(it.Value(), &v); err != nil {
			return nil, fmt.Errorf("projection: decode %x: %w", it.Key(), err)
		}
		out = append(out, v)
	}
	return out, it.Error()
}

// flavorPools returns the pools assigned to flavor, in name order.
func flavorPools(r pebble.Reader, flavor string) ([]Pool, error) {
	all, err := scanPools(r, "", -1)
	if err != nil {
		return nil, err
	}
	var out []Pool
	for _, p := range all {
		if p.Flavor == flavor {
			out = append(out, p)
		}
	}
	return out, nil
}

// --- queries for the API ---

// Pool returns a pool, or nil.
func (s *Store) Pool(name string) (*Pool, error) { return getRecord[Pool](s.db, poolKey(name)) }

// Pools returns up to limit pools after marker (all when limit < 0).
func (s *Store) Pools(marker string, limit int) ([]Pool, error) {
	return scanPools(s.db, marker, limit)
}

// Flavor returns a flavor, or nil.
func (s *Store) Flavor(name string) (*Flavor, error) {
	return getRecord[Flavor](s.db, flavorKey(name))
}

// Flavors returns up to limit flavors after marker.
func (s *Store) Flavors(marker string, limit int) ([]Flavor, error) {
	return scanNamed[Flavor](s.db, tagFlavor, marker, limit)
}

// FlavorPools returns the pools of a flavor in name order.
func (s *Store) FlavorPools(flavor string) ([]Pool, error) { return flavorPools(s.db, flavor) }

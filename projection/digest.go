package projection

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
)

// digested reports whether key takes part in digests: everything but the
// transient outbox and a rebuild's ReplayInfo.
func digested(key []byte) bool {
	return len(key) > 0 && key[0] != tagOutbox && key[0] != tagReplay
}

// keyDigest is a SHA-256 over length-prefixed keys and values, in the
// order they are added.
type keyDigest struct {
	h    hash.Hash
	keys int
}

func newKeyDigest() *keyDigest { return &keyDigest{h: sha256.New()} }

func (d *keyDigest) add(k, v []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(k)))
	d.h.Write(n[:])
	d.h.Write(k)
	binary.BigEndian.PutUint64(n[:], uint64(len(v)))
	d.h.Write(n[:])
	d.h.Write(v)
	d.keys++
}

func (d *keyDigest) sum() string { return hex.EncodeToString(d.h.Sum(nil)) }

// Part is one part of a projection and its digest: a queue (with its
// messages, claims, subscriptions, deliveries, history and expiry
// entries) or one of the node-wide parts (applied offsets, outcomes,
// follow-up marks, the pool and flavor catalog).
type Part struct {
	// Name says which part: `queue "q" of project "p"` or a node-wide
	// part's name.
	Name string
	// Project and Queue name the queue of a queue part.
	Project, Queue string
	Digest         string
	Keys           int
}

// Parts digests the projection part by part, in name order, so two
// projections can be compared and their differences named.
func (s *Store) Parts() ([]Part, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	parts := map[string]*Part{}
	sums := map[string]*keyDigest{}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if !digested(k) {
			continue
		}
		p := partOf(k)
		d := sums[p.Name]
		if d == nil {
			d = newKeyDigest()
			sums[p.Name] = d
			parts[p.Name] = &p
		}
		d.add(k, it.Value())
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	out := make([]Part, 0, len(parts))
	for name, p := range parts {
		p.Digest, p.Keys = sums[name].sum(), sums[name].keys
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Part) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out, nil
}

// partOf names the part key belongs to.
func partOf(k []byte) Part {
	var rest []byte
	switch k[0] {
	case tagQueue, tagMsgs, tagSub, tagSubUniq, tagPlace, tagIdem, tagHistory:
		rest = k[1:]
	case tagDelivery:
		if len(k) >= 5 {
			rest = k[5:]
		}
	case tagExpiry:
		if len(k) >= 14 {
			rest = k[14:]
		}
	case tagApplied:
		return Part{Name: "applied offsets"}
	case tagOutcome:
		return Part{Name: "outcomes"}
	case tagFollow:
		return Part{Name: "follow-up marks"}
	case tagPool, tagFlavor:
		return Part{Name: "pool and flavor catalog"}
	default:
		return Part{Name: fmt.Sprintf("keys tagged %q", k[0])}
	}
	project, rest, ok1 := readStr(rest)
	queue, _, ok2 := readStr(rest)
	if !ok1 || !ok2 {
		return Part{Name: fmt.Sprintf("malformed keys tagged %q", k[0])}
	}
	if project == "" && queue == "" {
		return Part{Name: "pool and flavor catalog"} // the admin events' history
	}
	return Part{Name: fmt.Sprintf("queue %q of project %q", queue, project), Project: project, Queue: queue}
}

// PartDifference is a part whose digest differs between two projections;
// a part missing on one side has an empty digest there.
type PartDifference struct {
	Part
	Want, Got Part
}

// CompareParts returns the parts of want and got that differ, by name.
func CompareParts(want, got []Part) []PartDifference {
	byName := func(ps []Part) map[string]Part {
		m := make(map[string]Part, len(ps))
		for _, p := range ps {
			m[p.Name] = p
		}
		return m
	}
	w, g := byName(want), byName(got)
	var names []string
	for n := range w {
		names = append(names, n)
	}
	for n := range g {
		if _, ok := w[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out []PartDifference
	for _, n := range names {
		a, b := w[n], g[n]
		if a.Digest == b.Digest {
			continue
		}
		d := PartDifference{Want: a, Got: b}
		if a.Name != "" {
			d.Part = a
		} else {
			d.Part = b
		}
		out = append(out, d)
	}
	return out
}

package projection

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// Reads used by apply (on its indexed batch) and by the API (on the
// database). Every read takes "now" from its caller: event time in apply,
// the node's clock for the API.

func getRecord[T any](r pebble.Reader, key []byte) (*T, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	var out T
	if err := hlog.Unmarshal(v, &out); err != nil {
		return nil, fmt.Errorf("projection: decode %x: %w", key, err)
	}
	return &out, nil
}

func getQueue(r pebble.Reader, project, queue string) (*Queue, error) {
	return getRecord[Queue](r, queueKey(project, queue))
}

// getMessage returns the header of the message at seq, or nil.
func getMessage(r pebble.Reader, prefix []byte, seq uint64) (*Message, error) {
	v, closer, err := r.Get(msgKey(prefix, seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	var m Message
	return &m, decodeHeader(v, &m)
}

// getMessageByID returns the header of message id, or nil.
func getMessageByID(r pebble.Reader, prefix []byte, id string) (*Message, error) {
	if !ValidID(id) {
		return nil, nil
	}
	v, closer, err := r.Get(idKey(prefix, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seq := binary.BigEndian.Uint64(v)
	closer.Close()
	return getMessage(r, prefix, seq)
}

// loadBody reads the body of m.
func loadBody(r pebble.Reader, prefix []byte, m *Message) error {
	v, closer, err := r.Get(bodyKey(prefix, m.Seq))
	if err != nil {
		return fmt.Errorf("projection: body of message %s: %w", m.ID, err)
	}
	m.Body = append([]byte(nil), v...)
	return closer.Close()
}

// loadBodies reads the bodies of msgs.
func loadBodies(r pebble.Reader, prefix []byte, msgs []Message) error {
	seqs := make([]uint64, len(msgs))
	for i := range msgs {
		seqs[i] = msgs[i].Seq
	}
	return readSeqs(r, prefix, bodyKey, seqs, func(i int, v []byte) error {
		if v == nil {
			return fmt.Errorf("projection: body of message %s: %w", msgs[i].ID, pebble.ErrNotFound)
		}
		msgs[i].Body = append([]byte(nil), v...)
		return nil
	})
}

// readSeqs calls fn(i, value) with the value stored at key(prefix, seqs[i])
// for each i, in order, with nil for a missing key. The value is only
// valid during the call. It reads with one iterator instead of a lookup
// per key: the messages of a claim or a page are mostly adjacent, so each
// one after the first costs a step, not a seek through every level.
func readSeqs(r pebble.Reader, prefix []byte, key func([]byte, uint64) []byte, seqs []uint64, fn func(i int, v []byte) error) error {
	if len(seqs) == 0 {
		return nil
	}
	lo, hi := seqs[0], seqs[0]
	for _, s := range seqs {
		lo, hi = min(lo, s), max(hi, s)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: key(prefix, lo), UpperBound: key(prefix, hi+1)})
	if err != nil {
		return err
	}
	defer it.Close()
	valid := false
	for i, s := range seqs {
		want := key(prefix, s)
		if !valid || !bytes.Equal(it.Key(), want) {
			valid = it.SeekGE(want)
		}
		if !valid || !bytes.Equal(it.Key(), want) {
			if err := it.Error(); err != nil {
				return err
			}
			if err := fn(i, nil); err != nil {
				return err
			}
			continue
		}
		if err := fn(i, it.Value()); err != nil {
			return err
		}
		valid = it.Next()
	}
	return it.Error()
}

// scanMessages calls fn with the header of each stored message with
// seq > after, in queue order, until fn returns false. fn may modify the
// message it is given; the iterator is not affected.
func scanMessages(r pebble.Reader, prefix []byte, after uint64, fn func(*Message) (bool, error)) error {
	if after == ^uint64(0) {
		return nil
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: msgKey(prefix, after+1), UpperBound: prefixEnd(sub(prefix, subSeq))})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		var m Message
		if err := decodeHeader(it.Value(), &m); err != nil {
			return fmt.Errorf("%w at %x", err, it.Key())
		}
		more, err := fn(&m)
		if err != nil || !more {
			return err
		}
	}
	return it.Error()
}

// getClaim returns an unexpired claim and its live messages, or nil when
// the claim is unknown, expired or holds no message any more.
func getClaim(r pebble.Reader, prefix []byte, id string, now int64) (*Claim, []Message, error) {
	if !ValidID(id) {
		return nil, nil, nil
	}
	c, err := getRecord[Claim](r, claimKey(prefix, id))
	if err != nil || c == nil || now >= c.Expires {
		return nil, nil, err
	}
	var msgs []Message
	err = readSeqs(r, prefix, msgKey, c.Seqs, func(_ int, v []byte) error {
		if v == nil {
			return nil
		}
		var m Message
		if err := decodeHeader(v, &m); err != nil {
			return err
		}
		if m.ClaimID == id && m.Live(now) {
			msgs = append(msgs, m)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(msgs) == 0 {
		return nil, nil, nil
	}
	return c, msgs, nil
}

// --- queries for the API ---

// Queue returns the queue record, or nil if the queue does not exist.
func (s *Store) Queue(project, queue string) (*Queue, error) {
	return getQueue(s.db, project, queue)
}

// QueueFilter selects queues in ListQueues.
type QueueFilter struct {
	Marker string // names strictly after this
	Limit  int
	Name   string         // substring of the name
	Meta   map[string]any // exact-match metadata filters
	Topics bool           // list topics (without their prefix) instead of queues
}

// TopicPrefix starts the name of the queue that holds a topic. Topics are
// queues in a namespace of their own: '~' is no queue name character and
// sorts after all of them, so a project's topics follow its queues.
const TopicPrefix = "~"

// ListQueues returns up to f.Limit queues of the project in name order
// that pass the filter, and the project's total queue count.
func (s *Store) ListQueues(project string, f QueueFilter, withCount bool) ([]Queue, int, error) {
	prefix := projectQueuesPrefix(project)
	lo, hi := prefix, append(append([]byte(nil), prefix...), TopicPrefix...)
	ns := ""
	if f.Topics {
		lo, hi, ns = hi, prefixEnd(prefix), TopicPrefix
	}
	lo0 := lo
	if f.Marker != "" {
		lo = prefixEnd(queueKey(project, ns+f.Marker))
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	var out []Queue
	for ok := it.First(); ok && len(out) < f.Limit; ok = it.Next() {
		var q Queue
		if err := hlog.Unmarshal(it.Value(), &q); err != nil {
			return nil, 0, fmt.Errorf("projection: decode queue %x: %w", it.Key(), err)
		}
		q.Name = strings.TrimPrefix(q.Name, ns)
		if f.Name != "" && !strings.Contains(q.Name, f.Name) {
			continue
		}
		if len(f.Meta) > 0 && !matchMeta(q.Metadata, f.Meta) {
			continue
		}
		out = append(out, q)
	}
	if err := it.Error(); err != nil {
		return nil, 0, err
	}
	count := 0
	if withCount {
		cit, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo0, UpperBound: hi})
		if err != nil {
			return nil, 0, err
		}
		for ok := cit.First(); ok; ok = cit.Next() {
			count++
		}
		if err := cit.Close(); err != nil {
			return nil, 0, err
		}
	}
	return out, count, nil
}

func matchMeta(raw []byte, want map[string]any) bool {
	meta, err := DecodeObject(raw)
	if err != nil {
		return false
	}
	for k, v := range want {
		got, ok := meta[k]
		if !ok || !bytes.Equal(EncodeJSON(got), EncodeJSON(v)) {
			return false
		}
	}
	return true
}

// ListFilter selects messages in ListMessages.
type ListFilter struct {
	After          uint64 // seq marker: messages strictly after it
	Limit          int
	Echo           bool
	ClientID       string // normalised requester id, for echo=false
	IncludeClaimed bool
	IncludeDelayed bool
}

// ListMessages returns up to f.Limit visible messages in queue order.
func (s *Store) ListMessages(project, queue string, f ListFilter, now int64) ([]Message, error) {
	// Headers and bodies are separate keys: read both from one snapshot so
	// a message deleted meanwhile is either listed whole or not at all.
	snap := s.db.NewSnapshot()
	defer snap.Close()
	q, err := getQueue(snap, project, queue)
	if err != nil || q == nil {
		return nil, err
	}
	var out []Message
	err = scanMessages(snap, dataPrefix(project, queue), max(f.After, max(q.Head, 1)-1), func(m *Message) (bool, error) {
		switch {
		case !m.Live(now):
		case !f.Echo && m.ClientID == f.ClientID:
		case !f.IncludeClaimed && m.Claimed(now):
		case !f.IncludeDelayed && m.Delayed(now):
		default:
			out = append(out, *m)
		}
		return len(out) < f.Limit, nil
	})
	if err != nil {
		return nil, err
	}
	return out, loadBodies(snap, dataPrefix(project, queue), out)
}

// Messages returns the live messages among ids, in the order given.
func (s *Store) Messages(project, queue string, ids []string, now int64) ([]Message, error) {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	prefix := dataPrefix(project, queue)
	var out []Message
	for _, id := range ids {
		m, err := getMessageByID(snap, prefix, id)
		if err != nil {
			return nil, err
		}
		if m != nil && m.Live(now) {
			out = append(out, *m)
		}
	}
	return out, loadBodies(snap, prefix, out)
}

// Stats are the counts of GET /v2/queues/{q}/stats.
type Stats struct {
	Total, Claimed int
	Oldest, Newest *Message
}

// QueueStats counts the queue's live messages at now.
func (s *Store) QueueStats(project, queue string, now int64) (Stats, error) {
	var st Stats
	snap := s.db.NewSnapshot()
	defer snap.Close()
	q, err := getQueue(snap, project, queue)
	if err != nil || q == nil {
		return st, err
	}
	err = scanMessages(snap, dataPrefix(project, queue), max(q.Head, 1)-1, func(m *Message) (bool, error) {
		if !m.Live(now) {
			return true, nil
		}
		st.Total++
		if m.Claimed(now) {
			st.Claimed++
		}
		if st.Oldest == nil {
			st.Oldest = m
		}
		st.Newest = m
		return true, nil
	})
	return st, err
}

// Claim returns a live claim and the live messages it holds.
func (s *Store) Claim(project, queue, id string, now int64) (*Claim, []Message, error) {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	prefix := dataPrefix(project, queue)
	c, msgs, err := getClaim(snap, prefix, id, now)
	if err != nil || c == nil {
		return nil, nil, err
	}
	return c, msgs, loadBodies(snap, prefix, msgs)
}

// Outcome returns the outcome recorded for the event at (p, off), or nil.
func (s *Store) Outcome(p int32, off int64) (*Outcome, error) {
	return getRecord[Outcome](s.db, outcomeKey(p, off))
}

// Volume counts live messages.
type Volume struct{ Free, Claimed, Total int }

// MessageVolume counts the live messages of every queue at now. It reads
// every message header (not the bodies): an admin query, not a hot path.
func (s *Store) MessageVolume(now int64) (Volume, error) {
	var v Volume
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagMsgs}, UpperBound: []byte{tagMsgs + 1}})
	if err != nil {
		return v, err
	}
	defer it.Close()
	for ok := it.First(); ok; {
		_, r1, ok1 := readStr(it.Key()[1:])
		_, r2, ok2 := readStr(r1)
		if !ok1 || !ok2 {
			return v, fmt.Errorf("projection: corrupt message key %x", it.Key())
		}
		prefix := append([]byte(nil), it.Key()[:len(it.Key())-len(r2)]...)
		headers := sub(prefix, subSeq)
		for ok = it.SeekGE(headers); ok && bytes.HasPrefix(it.Key(), headers); ok = it.Next() {
			var m Message
			if err := decodeHeader(it.Value(), &m); err != nil {
				return v, err
			}
			if m.Live(now) {
				v.Total++
				if m.Claimed(now) {
					v.Claimed++
				}
			}
		}
		ok = it.SeekGE(prefixEnd(prefix))
	}
	v.Free = v.Total - v.Claimed
	return v, it.Error()
}

package projection

import (
	"bytes"

	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// idempotencyRecord remembers the first event of an Idempotency-Key in a
// queue until Expires (event time, ns).
type idempotencyRecord struct {
	Offset      int64    `msgpack:"offset"`
	Fingerprint []byte   `msgpack:"fp"`
	Expires     int64    `msgpack:"expires"`
	Outcome     *Outcome `msgpack:"outcome,omitempty"`
}

// repeat returns the outcome of an event that repeats an earlier request
// with the same key within its window, or nil when ev is new.
func (a *applier) repeat(b *pebble.Batch, ev *hlog.Event) (*Outcome, error) {
	k := idemKey(ev.Project, ev.Queue, ev.Idempotency.Key)
	rec, err := getRecord[idempotencyRecord](b, k)
	if err != nil || rec == nil || ev.Time >= rec.Expires {
		return nil, err
	}
	return repeatOutcome(rec, ev), nil
}

func repeatOutcome(rec *idempotencyRecord, ev *hlog.Event) *Outcome {
	if !bytes.Equal(rec.Fingerprint, ev.Idempotency.Fingerprint) {
		return &Outcome{Status: 422, Title: "Unprocessable request",
			Description: "The Idempotency-Key was used with another request."}
	}
	out := &Outcome{Status: 201}
	if rec.Outcome != nil {
		cp := *rec.Outcome
		out = &cp
	}
	out.Repeat, out.Offset = true, rec.Offset
	return out
}

// remember records the first event of an Idempotency-Key and its outcome.
func (a *applier) remember(b *pebble.Batch, off int64, ev *hlog.Event, out *Outcome) error {
	rec := &idempotencyRecord{Offset: off, Fingerprint: ev.Idempotency.Fingerprint,
		Expires: expiresAt(ev.Time, ev.Idempotency.Window), Outcome: out}
	k := idemKey(ev.Project, ev.Queue, ev.Idempotency.Key)
	if old, err := getRecord[idempotencyRecord](b, k); err != nil {
		return err
	} else if old != nil {
		if err := b.Delete(expiryKey(a.p, old.Expires, kindIdempotency, dataPrefix(ev.Project, ev.Queue), []byte(ev.Idempotency.Key)), nil); err != nil {
			return err
		}
	}
	if err := putRecord(b, k, rec); err != nil {
		return err
	}
	return a.index(b, rec.Expires, kindIdempotency, dataPrefix(ev.Project, ev.Queue), []byte(ev.Idempotency.Key))
}

// sweepIdempotency forgets a key whose window closed at or before now.
func sweepIdempotency(b *pebble.Batch, project, queue, key string, now int64) error {
	k := idemKey(project, queue, key)
	rec, err := getRecord[idempotencyRecord](b, k)
	if err != nil || rec == nil || now < rec.Expires {
		return err
	}
	return b.Delete(k, nil)
}

// Repeat returns what apply would answer for a repeat, at time now, of a
// request with idempotency key key and fingerprint fp in a queue: the
// first request's outcome, or nil when the key is unknown or expired. The
// API answers retries from it without appending; apply still catches the
// retries that race the first request.
func (s *Store) Repeat(project, queue, key string, fp []byte, now int64) (*Outcome, error) {
	ev := &hlog.Event{Project: project, Queue: queue, Time: now, Idempotency: &hlog.Idempotency{Key: key, Fingerprint: fp}}
	rec, err := getRecord[idempotencyRecord](s.db, idemKey(project, queue, key))
	if err != nil || rec == nil || now >= rec.Expires {
		return nil, err
	}
	return repeatOutcome(rec, ev), nil
}

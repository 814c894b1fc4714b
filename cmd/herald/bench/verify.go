package bench

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Every message body the bench posts is a JSON object carrying a token
// that names the run, the producer and the message's sequence number
// within that producer: {"token":"<run>-<producer>-<seq>","pad":"xx…"}.
// The pad brings the body to --body-size bytes.

// postState is what a producer knows about one of its messages.
type postState uint8

const (
	postUnsent   postState = iota
	postPending            // sent without an answer (transport error or timeout): stored or not
	postAcked              // the endpoint acknowledged it
	postRejected           // the endpoint answered with a failure: it must not be delivered
)

// postLog records what one producer sent, by sequence number. Guarded by
// a mutex because pipelined posts settle on the reader goroutine.
type postLog struct {
	run      string
	producer int
	bodySize int

	mu    sync.Mutex
	state []postState
}

// next builds the bodies of the next post and marks them pending.
func (p *postLog) next(n int) (bodies [][]byte, first int) {
	p.mu.Lock()
	first = len(p.state)
	for range n {
		p.state = append(p.state, postPending)
	}
	p.mu.Unlock()
	bodies = make([][]byte, n)
	for i := range bodies {
		bodies[i] = messageBody(p.run, p.producer, first+i, p.bodySize)
	}
	return bodies, first
}

// settle records the outcome of the post of messages first..first+n-1.
func (p *postLog) settle(first, n int, err error) {
	st := postAcked
	if err != nil {
		st = postPending
		var se *StatusError
		if errors.As(err, &se) && !errors.Is(err, errPartial) {
			st = postRejected
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := first; i < first+n; i++ {
		p.state[i] = st
	}
}

func messageBody(run string, producer, seq, size int) []byte {
	b := make([]byte, 0, max(size, 64))
	b = append(b, `{"token":"`...)
	b = append(b, run...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(producer), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, '"')
	const padField = `,"pad":""`
	if n := size - len(b) - len(padField) - 1; n >= 0 {
		b = append(b, padField[:len(padField)-1]...)
		for range n {
			b = append(b, 'x')
		}
		b = append(b, '"')
	} else {
		for len(b) < size-1 { // too short for a pad field: spaces
			b = append(b, ' ')
		}
	}
	return append(b, '}')
}

func bodyToken(body []byte) string {
	var v struct {
		Token string `json:"token"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.Token
}

// delivery is one message handed to a consumer.
type delivery struct {
	id, token string
	at        time.Time
	deleted   bool // its delete (ack) succeeded
}

// VerifyReport is the outcome of the correctness check. It covers the
// whole run, warm-up included.
type VerifyReport struct {
	// Produced counts messages whose post the endpoint acknowledged.
	Produced int64 `json:"produced"`
	// Consumed counts deliveries to consumers (claimed or fetched).
	Consumed int64 `json:"consumed"`
	// Deleted counts deliveries whose delete (ack) succeeded.
	Deleted int64 `json:"deleted"`
	// Duplicates counts deliveries of a message already delivered and
	// deleted, or still under an earlier claim (delivered less than the
	// claim TTL before), plus deliveries of a token stored under a second
	// message id.
	Duplicates int64 `json:"duplicates"`
	// Unknown counts deliveries whose body token this run never posted or
	// whose post the endpoint refused.
	Unknown int64 `json:"unknown"`
	// Unconfirmed counts deliveries of messages whose post got no answer
	// (timeout or transport error): stored after all, which is allowed.
	Unconfirmed int64 `json:"unconfirmed"`
	// Passed is Duplicates == 0 && Unknown == 0.
	Passed bool `json:"passed"`
}

// verify checks the deliveries of all consumers against the posts of all
// producers. Nothing may still be writing to posts or got.
func verify(run string, posts []*postLog, got [][]delivery, claimFor time.Duration) *VerifyReport {
	r := &VerifyReport{}
	for _, p := range posts {
		for _, st := range p.state {
			if st == postAcked {
				r.Produced++
			}
		}
	}
	var all []delivery
	for _, g := range got {
		all = append(all, g...)
	}
	r.Consumed = int64(len(all))
	slices.SortStableFunc(all, func(a, b delivery) int {
		if c := strings.Compare(a.id, b.id); c != 0 {
			return c
		}
		return a.at.Compare(b.at)
	})
	idOf := map[string]string{} // token → first id it was delivered under
	for i, d := range all {
		if d.deleted {
			r.Deleted++
		}
		if i > 0 && all[i-1].id == d.id {
			prev := all[i-1]
			if prev.deleted || d.at.Sub(prev.at) < claimFor {
				r.Duplicates++
			}
		} else if first, seen := idOf[d.token]; seen && d.token != "" && first != d.id {
			r.Duplicates++
		}
		if _, seen := idOf[d.token]; !seen {
			idOf[d.token] = d.id
		}
		switch tokenState(run, posts, d.token) {
		case postAcked:
		case postPending:
			r.Unconfirmed++
		default:
			r.Unknown++
		}
	}
	r.Passed = r.Duplicates == 0 && r.Unknown == 0
	return r
}

func tokenState(run string, posts []*postLog, token string) postState {
	rest, ok := strings.CutPrefix(token, run+"-")
	if !ok {
		return postUnsent
	}
	ps, ss, ok := strings.Cut(rest, "-")
	if !ok {
		return postUnsent
	}
	p, err1 := strconv.Atoi(ps)
	s, err2 := strconv.Atoi(ss)
	if err1 != nil || err2 != nil || p < 0 || p >= len(posts) || s < 0 || s >= len(posts[p].state) {
		return postUnsent
	}
	return posts[p].state[s]
}

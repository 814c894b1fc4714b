package projection

import (
	"encoding/binary"
	"fmt"
)

// Message is a stored message. Times are Unix nanoseconds of event time.
type Message struct {
	ID        string `msgpack:"id"`
	Seq       uint64 `msgpack:"seq"`
	Created   int64  `msgpack:"created"`
	TTL       int64  `msgpack:"ttl"` // reported ttl, seconds; raised by claims
	Expires   int64  `msgpack:"expires"`
	VisibleAt int64  `msgpack:"visible,omitempty"` // delay end
	ClientID  string `msgpack:"client,omitempty"`  // normalised (32 hex) Client-ID of the poster
	Body      []byte `msgpack:"body"`              // compact JSON

	// ClaimID is kept after the claim expires (a delete naming it still
	// succeeds); only a release or a new claim replaces it.
	ClaimID      string `msgpack:"claim,omitempty"`
	ClaimExpires int64  `msgpack:"claim_expires,omitempty"`
	ClaimCount   int    `msgpack:"claim_count,omitempty"`
}

// Live reports whether the message exists at time now.
func (m *Message) Live(now int64) bool { return now < m.Expires }

// Claimed reports whether an unexpired claim holds the message at now.
func (m *Message) Claimed(now int64) bool { return m.ClaimID != "" && now < m.ClaimExpires }

// Delayed reports whether the message is still delayed at now.
func (m *Message) Delayed(now int64) bool { return now < m.VisibleAt }

// Queue is a stored queue record.
type Queue struct {
	Name     string `msgpack:"name"`
	Metadata []byte `msgpack:"metadata"` // compact JSON object, as stored (no defaults)
	Created  int64  `msgpack:"created"`
	NextSeq  uint64 `msgpack:"next_seq"`
	// Head is a seq at or below the queue's first stored message: every
	// seq before it is deleted. Scans start there instead of wading
	// through the deletion tombstones of consumed messages.
	Head uint64 `msgpack:"head,omitempty"`
}

// Claim is a stored claim. It exists only while unexpired and holding at
// least one live message.
type Claim struct {
	ID      string   `msgpack:"id"`
	TTL     int64    `msgpack:"ttl"`
	Updated int64    `msgpack:"updated"` // creation or last renewal
	Expires int64    `msgpack:"expires"`
	Seqs    []uint64 `msgpack:"seqs"`
}

// Subscription is a stored subscription of a queue.
type Subscription struct {
	ID         string `msgpack:"id"`
	Source     string `msgpack:"source"` // the queue
	Subscriber string `msgpack:"subscriber"`
	TTL        int64  `msgpack:"ttl"`     // seconds, as configured
	Created    int64  `msgpack:"created"` // ns; age counts from here
	Expires    int64  `msgpack:"expires"` // ns
	Options    []byte `msgpack:"options"` // compact JSON object
	Confirmed  bool   `msgpack:"confirmed"`

	// Set at creation by the API node (log.SubscriptionCreatedV1).
	Socket  bool   `msgpack:"socket,omitempty"`
	Secret  string `msgpack:"secret,omitempty"`
	Confirm bool   `msgpack:"confirm,omitempty"`

	Delivery DeliveryStatus `msgpack:"delivery,omitempty"`
}

// Live reports whether the subscription exists at time now.
func (s *Subscription) Live(now int64) bool { return now < s.Expires }

// Outcome is what apply decided for one event, for the API node that
// appended it to answer with. Status is HTTP-like: 200, 201 and 204 are
// successes; 400, 403, 404 and 409 are rejections with Title/Description.
type Outcome struct {
	Status      int       `msgpack:"status"`
	Title       string    `msgpack:"title,omitempty"`
	Description string    `msgpack:"desc,omitempty"`
	Metadata    []byte    `msgpack:"metadata,omitempty"`
	ClaimID     string    `msgpack:"claim,omitempty"`
	Messages    []Message `msgpack:"messages,omitempty"` // popped messages, with bodies
	// ID names what the event created or found (a subscription).
	ID string `msgpack:"id,omitempty"`
	// DeadLettered counts the messages a claim moved to its dead-letter
	// queue; the follow-up event is in the log once the claim is applied.
	DeadLettered int `msgpack:"dead,omitempty"`
	// Repeat is set when the event repeated an earlier request with the
	// same Idempotency-Key: the outcome is the first one's, and Offset is
	// the first event's position in the partition.
	Repeat bool  `msgpack:"repeat,omitempty"`
	Offset int64 `msgpack:"offset,omitempty"`
}

// A stored message is two keys: its header (everything but the body, in
// the fixed binary layout below) and its body. Scans, claims and renewals
// read and rewrite only headers, which are small and decode without
// reflection.
//
//	version u8 (1) | seq u64 | created i64 | ttl i64 | expires i64 |
//	visible i64 | claim_expires i64 | claim_count u32 |
//	len u8 + id | len u8 + client | len u8 + claim
const headerVersion = 1

func encodeHeader(m *Message) []byte {
	b := make([]byte, 0, 1+8*6+4+3+len(m.ID)+len(m.ClientID)+len(m.ClaimID))
	b = append(b, headerVersion)
	b = appendU64(b, m.Seq)
	for _, v := range []int64{m.Created, m.TTL, m.Expires, m.VisibleAt, m.ClaimExpires} {
		b = appendU64(b, uint64(v))
	}
	b = appendU32(b, uint32(m.ClaimCount))
	for _, s := range []string{m.ID, m.ClientID, m.ClaimID} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeHeader(b []byte, m *Message) error {
	const fixed = 1 + 8*6 + 4
	if len(b) < fixed || b[0] != headerVersion {
		return fmt.Errorf("projection: bad message header (%d bytes)", len(b))
	}
	u := func(i int) int64 { return int64(binary.BigEndian.Uint64(b[1+8*i:])) }
	m.Seq = uint64(u(0))
	m.Created, m.TTL, m.Expires, m.VisibleAt, m.ClaimExpires = u(1), u(2), u(3), u(4), u(5)
	m.ClaimCount = int(binary.BigEndian.Uint32(b[1+8*6:]))
	rest := b[fixed:]
	for _, dst := range []*string{&m.ID, &m.ClientID, &m.ClaimID} {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return fmt.Errorf("projection: truncated message header")
		}
		*dst = string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
	}
	return nil
}

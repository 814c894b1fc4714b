package projection

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

// Outcome is what apply decided for one event, for the API node that
// appended it to answer with. Status is HTTP-like: 200, 201 and 204 are
// successes; 400, 403, 404 and 409 are rejections with Title/Description.
type Outcome struct {
	Status      int       `msgpack:"status"`
	Title       string    `msgpack:"title,omitempty"`
	Description string    `msgpack:"desc,omitempty"`
	Metadata    []byte    `msgpack:"metadata,omitempty"`
	ClaimID     string    `msgpack:"claim,omitempty"`
	Messages    []Message `msgpack:"messages,omitempty"`
}

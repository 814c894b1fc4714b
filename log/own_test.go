package log

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Timing of the Kafka ownership tests: short enough for a quick suite,
// and within what the test cluster allows (see newOwnKfake).
const (
	ownSession    = 3 * time.Second
	ownRebalance  = 10 * time.Second
	ownPartitions = 6
)

// ownRecorder is what every member of one test reports to. At every
// callback it checks that no partition has two owners at that moment and
// that a member's callbacks never overlap; a breach is recorded and fails
// the test in check.
type ownRecorder struct {
	t *testing.T
	// revokeDelay is how long onRevoke "works" before returning: a group
	// that handed a partition on before onRevoke returned would show it.
	revokeDelay time.Duration

	mu       sync.Mutex
	owner    map[int32]string
	inCall   map[string]bool
	events   int
	breaches []string
}

func newOwnRecorder(t *testing.T, revokeDelay time.Duration) *ownRecorder {
	r := &ownRecorder{t: t, revokeDelay: revokeDelay, owner: map[int32]string{}, inCall: map[string]bool{}}
	t.Cleanup(r.check)
	return r
}

func (r *ownRecorder) breach(format string, args ...any) {
	r.breaches = append(r.breaches, fmt.Sprintf(format, args...))
}

func (r *ownRecorder) enter(member string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inCall[member] {
		r.breach("%s: callbacks overlap", member)
	}
	r.inCall[member] = true
	r.events++
}

func (r *ownRecorder) leave(member string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inCall[member] = false
}

func (r *ownRecorder) callbacks(member string) (onAssign, onRevoke func([]int32)) {
	onAssign = func(ps []int32) {
		r.enter(member)
		defer r.leave(member)
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(ps) == 0 || !slices.IsSorted(ps) {
			r.breach("%s: onAssign(%v): empty or unsorted", member, ps)
		}
		for _, p := range ps {
			if o, ok := r.owner[p]; ok {
				r.breach("%s: assigned partition %d, still owned by %s", member, p, o)
			}
			r.owner[p] = member
		}
	}
	onRevoke = func(ps []int32) {
		r.enter(member)
		defer r.leave(member)
		if len(ps) == 0 || !slices.IsSorted(ps) {
			r.mu.Lock()
			r.breach("%s: onRevoke(%v): empty or unsorted", member, ps)
			r.mu.Unlock()
		}
		time.Sleep(r.revokeDelay) // stopping work on ps
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, p := range ps {
			if o := r.owner[p]; o != member {
				r.breach("%s: revoked partition %d owned by %q", member, p, o)
				continue
			}
			delete(r.owner, p)
		}
	}
	return onAssign, onRevoke
}

// owned returns each member's partitions, sorted.
func (r *ownRecorder) owned() map[string][]int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string][]int32{}
	for p, o := range r.owner {
		m[o] = append(m[o], p)
	}
	for _, ps := range m {
		slices.Sort(ps)
	}
	return m
}

func (r *ownRecorder) eventCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events
}

func (r *ownRecorder) check() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.breaches {
		r.t.Error(b)
	}
	r.breaches = nil
}

// split reports whether all n partitions are owned, each member of members
// owns some, and nobody else owns any.
func split(m map[string][]int32, n int, members ...string) bool {
	total := 0
	for o, ps := range m {
		if !slices.Contains(members, o) {
			return false
		}
		total += len(ps)
	}
	for _, o := range members {
		if len(m[o]) == 0 {
			return false
		}
	}
	return total == n
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting until %s", waitFor, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newOwnKfake starts a one-broker cluster like newKfake, allowing session
// timeouts down to 1s (kfake's default minimum, like Kafka's, is 6s).
func newOwnKfake(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// ownKafkaLog opens a log on a new topic of c with ownPartitions partitions.
func ownKafkaLog(t *testing.T, c *kfake.Cluster) Log {
	t.Helper()
	l := openKafkaForTest(t, KafkaOptions{Brokers: c.ListenAddrs(), Topic: "herald-own", Partitions: ownPartitions})
	t.Cleanup(func() { l.Close() })
	return l
}

// ownMember joins group as member, reporting to r; the test closes it
// at the end unless it did already.
func ownMember(t *testing.T, l Log, group, member string, r *ownRecorder) *kafkaOwnership {
	t.Helper()
	onAssign, onRevoke := r.callbacks(member)
	o, err := Own(l, group, OwnOptions{SessionTimeout: ownSession, RebalanceTimeout: ownRebalance, ClientID: member}, onAssign, onRevoke)
	if err != nil {
		t.Fatalf("Own(%s): %v", member, err)
	}
	t.Cleanup(func() { o.Close() })
	return o.(*kafkaOwnership)
}

func memberID(o *kafkaOwnership) string {
	id, _ := o.cl.GroupMetadata()
	return id
}

// requestCounter counts, on the cluster, the requests of one key by member
// ID ("" for requests without one) without interfering with them.
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func countRequests(c *kfake.Cluster, key kmsg.Key) *requestCounter {
	rc := &requestCounter{n: map[string]int{}}
	c.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
		id := ""
		if hb, ok := req.(*kmsg.HeartbeatRequest); ok {
			id = hb.MemberID
		}
		rc.mu.Lock()
		rc.n[id]++
		rc.mu.Unlock()
		return nil, nil, false // not handled: the cluster answers as usual
	})
	return rc
}

func (rc *requestCounter) get(id string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.n[id]
}

func (rc *requestCounter) total() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, v := range rc.n {
		n += v
	}
	return n
}

func groupMembers(c *kfake.Cluster, group string) map[string]string {
	m := map[string]string{} // member ID → client ID
	if gi := c.GroupInfo(group); gi != nil {
		for _, mem := range gi.Members {
			m[mem.MemberID] = mem.ClientID
		}
	}
	return m
}

// The embedded log is one node: it owns every partition from Own to Close.
func TestOwnPebble(t *testing.T) {
	l, err := OpenPebble(PebbleOptions{Dir: t.TempDir(), Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var calls [][]int32
	var revoked []int32
	o, err := Own(l, "notifier", OwnOptions{},
		func(ps []int32) { calls = append(calls, ps) },
		func(ps []int32) { revoked = append(revoked, ps...) })
	if err != nil {
		t.Fatal(err)
	}
	all := []int32{0, 1, 2, 3}
	if len(calls) != 1 || !slices.Equal(calls[0], all) {
		t.Fatalf("onAssign calls by the time Own returned: %v, want one with %v", calls, all)
	}
	if got := o.Owned(); !slices.Equal(got, all) {
		t.Fatalf("Owned() = %v, want %v", got, all)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(revoked, all) {
		t.Fatalf("Close revoked %v, want %v", revoked, all)
	}
	if got := o.Owned(); len(got) != 0 {
		t.Fatalf("Owned() after Close = %v", got)
	}
	if err := o.Close(); err != nil || len(revoked) != 4 || len(calls) != 1 {
		t.Fatalf("second Close: %v, revoked %v, assigned %v", err, revoked, calls)
	}
}

func TestOwnBadArguments(t *testing.T) {
	l, err := OpenPebble(PebbleOptions{Dir: t.TempDir(), Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f := func([]int32) {}
	for name, call := range map[string]func() (Ownership, error){
		"nil log":          func() (Ownership, error) { return Own(nil, "g", OwnOptions{}, f, f) },
		"no group":         func() (Ownership, error) { return Own(l, "", OwnOptions{}, f, f) },
		"no onAssign":      func() (Ownership, error) { return Own(l, "g", OwnOptions{}, nil, f) },
		"no onRevoke":      func() (Ownership, error) { return Own(l, "g", OwnOptions{}, f, nil) },
		"negative timeout": func() (Ownership, error) { return Own(l, "g", OwnOptions{SessionTimeout: -1}, f, f) },
	} {
		if o, err := call(); err == nil {
			o.Close()
			t.Errorf("%s: Own succeeded", name)
		}
	}
	kl := openKafkaForTest(t, KafkaOptions{Brokers: newKfake(t), Topic: "herald-own-closed", Partitions: 1})
	kl.Close()
	if _, err := Own(kl, "g", OwnOptions{}, f, f); !errors.Is(err, ErrClosed) {
		t.Errorf("Own on a closed Kafka log: %v, want ErrClosed", err)
	}
}

// Members split the partitions, never owning one twice at the same
// moment, keep them while nothing is polled or fetched, and a member that
// closes hands its partitions over at once.
func TestOwnKafkaMembers(t *testing.T) {
	t.Parallel()
	c := newOwnKfake(t)
	l := ownKafkaLog(t, c)
	fetches := countRequests(c, kmsg.Fetch)
	heartbeats := countRequests(c, kmsg.Heartbeat)
	r := newOwnRecorder(t, 100*time.Millisecond)
	const group = "herald-notifier"

	a := ownMember(t, l, group, "a", r)
	b := ownMember(t, l, group, "b", r)
	waitUntil(t, "a and b split the partitions", func() bool { return split(r.owned(), ownPartitions, "a", "b") })
	r.check()
	if got := groupMembers(c, group); len(got) != 2 || got[memberID(a)] != "a" || got[memberID(b)] != "b" {
		t.Errorf("group members (member ID → client ID) = %v", got)
	}

	// Stable: for more than a session timeout, both keep heartbeating and
	// nothing moves, though nobody polls.
	before := r.owned()
	events := r.eventCount()
	idA, idB := memberID(a), memberID(b)
	hbA, hbB := heartbeats.get(idA), heartbeats.get(idB)
	// Heartbeats come every ownSession/3; four of each span a session.
	waitUntil(t, "four more heartbeats of each member", func() bool {
		return heartbeats.get(idA) >= hbA+4 && heartbeats.get(idB) >= hbB+4
	})
	if n := r.eventCount(); n != events {
		t.Errorf("%d callbacks while the group was stable (owned before %v, now %v)", n-events, before, r.owned())
	}
	for member, o := range map[string]*kafkaOwnership{"a": a, "b": b} {
		if got := o.Owned(); !slices.Equal(got, before[member]) {
			t.Errorf("%s.Owned() = %v, recorder says %v", member, got, before[member])
		}
	}

	// a leaves: its onRevoke is done when Close returns, the group
	// knows at once, and b takes everything.
	if err := a.Close(); err != nil {
		t.Fatalf("a.Close: %v", err)
	}
	if got := r.owned()["a"]; len(got) != 0 {
		t.Fatalf("a still owns %v after Close", got)
	}
	if got := a.Owned(); len(got) != 0 {
		t.Fatalf("a.Owned() after Close = %v", got)
	}
	if _, ok := groupMembers(c, group)[idA]; ok {
		t.Fatal("a is still in the group after Close")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second a.Close: %v", err)
	}
	waitUntil(t, "b owns every partition", func() bool { return split(r.owned(), ownPartitions, "b") })
	r.check()

	// A third member joins: b and c split the partitions.
	ownMember(t, l, group, "c", r)
	waitUntil(t, "b and c split the partitions", func() bool { return split(r.owned(), ownPartitions, "b", "c") })
	r.check()

	if n := fetches.total(); n != 0 {
		t.Errorf("members sent %d fetch requests, want none", n)
	}
}

// A member that dies without leaving keeps its partitions until its
// session times out; then the others take them over.
func TestOwnKafkaMemberKilled(t *testing.T) {
	t.Parallel()
	c := newOwnKfake(t)
	l := ownKafkaLog(t, c)
	r := newOwnRecorder(t, 0)
	const group = "herald-notifier"

	a := ownMember(t, l, group, "a", r)
	ownMember(t, l, group, "b", r)
	waitUntil(t, "a and b split the partitions", func() bool { return split(r.owned(), ownPartitions, "a", "b") })

	// A killed process sends no LeaveGroup: drop a's, so that closing a
	// only stops its heartbeats.
	idA := memberID(a)
	c.ControlKey(int16(kmsg.LeaveGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		lg := req.(*kmsg.LeaveGroupRequest)
		if lg.MemberID != idA && !slices.ContainsFunc(lg.Members, func(m kmsg.LeaveGroupRequestMember) bool { return m.MemberID == idA }) {
			return nil, nil, false
		}
		resp := lg.ResponseKind().(*kmsg.LeaveGroupResponse)
		for _, m := range lg.Members {
			rm := kmsg.NewLeaveGroupResponseMember()
			rm.MemberID = m.MemberID
			resp.Members = append(resp.Members, rm)
		}
		return resp, nil, true // answered as if done; the group never hears of it
	})
	killed := time.Now()
	a.Close() // a's own bookkeeping runs; the group is not told
	if _, ok := groupMembers(c, group)[idA]; !ok {
		t.Fatal("the group dropped a at once; the kill was not silent")
	}
	waitUntil(t, "b owns every partition", func() bool { return split(r.owned(), ownPartitions, "b") })
	took := time.Since(killed)
	if _, ok := groupMembers(c, group)[idA]; ok {
		t.Error("b owns everything while a is still in the group")
	}
	// a's last heartbeat was at most a heartbeat interval before the kill.
	hb, _ := ownTimings(ownSession)
	if took < ownSession-hb-100*time.Millisecond {
		t.Errorf("b took over %v after the kill, before a's session (%v) could expire", took, ownSession)
	}
	t.Logf("b took over %v after a was killed (session timeout %v)", took, ownSession)
}

// A member cut off from the cluster while still running gives its
// partitions up (onRevoke) before the group, which no longer hears from it,
// hands them to another member.
func TestOwnKafkaMemberCutOff(t *testing.T) {
	t.Parallel()
	c := newOwnKfake(t)
	l := ownKafkaLog(t, c)
	r := newOwnRecorder(t, 50*time.Millisecond)
	const group = "herald-notifier"

	a := ownMember(t, l, group, "a", r)
	ownMember(t, l, group, "b", r)
	waitUntil(t, "a and b split the partitions", func() bool { return split(r.owned(), ownPartitions, "a", "b") })

	// Every group request of a's now goes unanswered, as if the network
	// between a and the cluster dropped everything.
	idA := memberID(a)
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		var id string
		switch req := req.(type) {
		case *kmsg.HeartbeatRequest:
			id = req.MemberID
		case *kmsg.JoinGroupRequest:
			id = req.MemberID
		case *kmsg.SyncGroupRequest:
			id = req.MemberID
		case *kmsg.LeaveGroupRequest:
			id = req.MemberID
			for _, m := range req.Members {
				id = m.MemberID
			}
		}
		if id != idA {
			return nil, nil, false
		}
		c.KeepControl()
		return nil, nil, true // no answer: a times out
	})
	waitUntil(t, "b owns every partition", func() bool { return split(r.owned(), ownPartitions, "b") })
	if got := a.Owned(); len(got) != 0 {
		t.Errorf("a still owns %v", got)
	}

	// Closing a member that cannot reach the cluster gives up leaving
	// after about a session timeout.
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	select {
	case err := <-closed:
		if err == nil {
			t.Error("Close of a cut-off member reported no error")
		}
	case <-time.After(ownSession + waitFor/2):
		t.Fatal("Close of a cut-off member hangs")
	}
	// The recorder's check (at cleanup) fails the test if b got any
	// partition before a's onRevoke for it returned.
}

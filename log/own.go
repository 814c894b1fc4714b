package log

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OwnOptions tunes group membership (Kafka only).
type OwnOptions struct {
	// SessionTimeout is how long the group waits for a silent member (a
	// killed node, or one cut off from the cluster) before moving its
	// partitions to the others. 0 means 10s. The cluster bounds it
	// (group.min.session.timeout.ms, 6s by default, and
	// group.max.session.timeout.ms); a member whose timeout is out of
	// bounds never joins, which is logged.
	SessionTimeout time.Duration
	// RebalanceTimeout is how long members get to give partitions up
	// (onRevoke) and rejoin when the group rebalances. 0 means 30s.
	RebalanceTimeout time.Duration
	// ClientID is the Kafka client ID of the membership, which names the
	// member in the group (its member ID starts with it), e.g. the node's
	// host name. Empty means the log's ClientID.
	ClientID string
}

// Ownership is a membership in an ownership group; Close leaves it.
type Ownership interface {
	// Owned returns the partitions currently owned, sorted. A partition is
	// owned from just before onAssign is called with it until onRevoke
	// with it returns.
	Owned() []int32
	// Close revokes every owned partition (calling onRevoke, waiting for
	// it) and leaves the group, so another member takes them over at once.
	// Close is idempotent. It must not be called from onAssign or
	// onRevoke.
	Close() error
}

// Own joins group on l. onAssign is called with partitions this member now
// owns; onRevoke with partitions it must give up (rebalance, lost session,
// Close) and must return only once the caller has stopped working on them —
// the group hands them to another member only after onRevoke returns (or,
// for a member that died, after its session timeout). Calls to
// onAssign/onRevoke are serialized (never concurrent with each other). For
// the embedded Pebble log (single node) every partition is assigned at once
// and revoked on Close.
//
// Own returns at once; on Kafka the first onAssign comes once the group
// has (re)balanced. onAssign and onRevoke are never called with an empty
// list, and every partition passed to onRevoke was passed to onAssign
// before and not revoked since.
//
// # Kafka
//
// The group is a Kafka consumer group named group, subscribed to the log's
// topic, on a client of its own. Use a group name for this purpose only:
// consumers in the same group with other subscriptions would take part in
// the assignment. The membership never reads records (its topic is paused,
// so it never fetches) and never commits offsets. Its client is separate
// from l's: closing l does not end the membership, only Close does.
//
// The balancer is cooperative-sticky, with Kafka's two-phase cooperative
// rebalance: a partition that moves is first revoked by its owner, which
// then rejoins, and only the rebalance after that assigns it to its new
// owner. So a partition never has two owners at once, as with an eager
// balancer, but a rebalance takes from each member only the partitions
// that move: the others keep being worked on throughout, and a member
// joining or leaving moves as few partitions as it can.
//
// A partition is never owned by two members at once as long as every
// member's onRevoke returns within RebalanceTimeout: the group drops a
// member that does not rejoin in time and gives its partitions to the
// others while its onRevoke still runs.
//
// A member that is cut off from the cluster (or whose heartbeats fail
// otherwise) gives its partitions up, through onRevoke, about two thirds of
// SessionTimeout after its last successful heartbeat: it heartbeats every
// SessionTimeout/3 (3s at most), retries a failing heartbeat for at most
// SessionTimeout/3 and times out each connection attempt and request after
// SessionTimeout/3. The group moves the partitions of a silent member only
// after SessionTimeout, so the cut-off member has the last third of it to
// finish onRevoke. The cost is that a coordinator that fails over more
// slowly than that makes the member give up its partitions and rejoin.
//
// At Close, onRevoke runs while the member still heartbeats, and the
// member leaves the group only after it returns, so it may take as long
// as it needs unless a rebalance starts meanwhile (then the
// RebalanceTimeout bound above applies).
func Own(l Log, group string, opts OwnOptions, onAssign, onRevoke func(ps []int32)) (Ownership, error) {
	switch {
	case l == nil:
		return nil, errors.New("log: own: nil log")
	case group == "":
		return nil, errors.New("log: own: no group")
	case onAssign == nil || onRevoke == nil:
		return nil, errors.New("log: own: onAssign and onRevoke are required")
	case opts.SessionTimeout < 0 || opts.RebalanceTimeout < 0:
		return nil, errors.New("log: own: negative timeout")
	}
	o := &owner{onAssign: onAssign, onRevoke: onRevoke, owned: make(map[int32]struct{})}
	kl, ok := l.(*kafkaLog)
	if !ok {
		// One node: it owns everything.
		all := make([]int32, l.Partitions())
		for i := range all {
			all[i] = int32(i)
		}
		o.assign(all)
		return &localOwnership{owner: o}, nil
	}
	return ownKafka(kl, group, opts, o)
}

// owner keeps a member's owned partitions and calls the callbacks, one
// at a time.
type owner struct {
	onAssign, onRevoke func([]int32)

	cb      sync.Mutex // held while a callback runs: serializes them
	closing bool       // guarded by cb; set by Close, nothing is assigned after

	mu    sync.Mutex // guards owned
	owned map[int32]struct{}
}

// assign calls onAssign with those of ps not owned yet.
func (o *owner) assign(ps []int32) {
	o.cb.Lock()
	defer o.cb.Unlock()
	if o.closing {
		return
	}
	o.mu.Lock()
	var add []int32
	for _, p := range ps {
		if _, ok := o.owned[p]; !ok {
			o.owned[p] = struct{}{}
			add = append(add, p)
		}
	}
	o.mu.Unlock()
	if len(add) > 0 {
		slices.Sort(add)
		o.onAssign(add)
	}
}

// revoke calls onRevoke with those of ps that are owned.
func (o *owner) revoke(ps []int32) {
	o.cb.Lock()
	defer o.cb.Unlock()
	o.revokeLocked(ps)
}

func (o *owner) revokeLocked(ps []int32) {
	var drop []int32
	o.mu.Lock()
	for _, p := range ps {
		if _, ok := o.owned[p]; ok {
			drop = append(drop, p)
		}
	}
	o.mu.Unlock()
	if len(drop) == 0 {
		return
	}
	slices.Sort(drop)
	o.onRevoke(drop)
	o.mu.Lock()
	for _, p := range drop {
		delete(o.owned, p)
	}
	o.mu.Unlock()
}

// close revokes everything owned, once; nothing is assigned afterwards.
func (o *owner) close() {
	o.cb.Lock()
	defer o.cb.Unlock()
	o.closing = true
	o.mu.Lock()
	all := slices.Collect(maps.Keys(o.owned))
	o.mu.Unlock()
	o.revokeLocked(all)
}

func (o *owner) Owned() []int32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Sorted(maps.Keys(o.owned))
}

// localOwnership is the single-node membership: it owns every partition
// from Own to Close.
type localOwnership struct {
	*owner
	once sync.Once
}

func (lo *localOwnership) Close() error {
	lo.once.Do(lo.owner.close)
	return nil
}

// kafkaOwnership is a member of a Kafka consumer group; see Own.
type kafkaOwnership struct {
	*owner
	cl       *kgo.Client
	stop     context.CancelFunc // cancels cl's context
	group    string
	session  time.Duration
	once     sync.Once
	closeErr error
}

// ownTimings derives the client's timing from the session timeout s; see
// Own for why.
func ownTimings(s time.Duration) (heartbeat, attempt time.Duration) {
	return min(s/3, 3*time.Second), s / 3
}

func ownKafka(l *kafkaLog, group string, opts OwnOptions, o *owner) (Ownership, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	if opts.SessionTimeout == 0 {
		opts.SessionTimeout = 10 * time.Second
	}
	if opts.RebalanceTimeout == 0 {
		opts.RebalanceTimeout = 30 * time.Second
	}
	if opts.ClientID == "" {
		opts.ClientID = l.opts.ClientID
	}
	topic := l.opts.Topic
	session := opts.SessionTimeout
	heartbeat, attempt := ownTimings(session)
	ctx, stop := context.WithCancel(context.Background())
	ko := &kafkaOwnership{owner: o, stop: stop, group: group, session: session}
	partitions := func(m map[string][]int32) []int32 { return m[topic] }
	cl, err := kgo.NewClient(
		kgo.WithContext(ctx),
		kgo.SeedBrokers(l.opts.Brokers...),
		kgo.ClientID(opts.ClientID),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(session),
		kgo.RebalanceTimeout(opts.RebalanceTimeout),
		kgo.HeartbeatInterval(heartbeat),
		kgo.DialTimeout(attempt),
		kgo.RequestTimeoutOverhead(attempt),
		kgo.RetryTimeoutFn(func(key int16) time.Duration {
			switch kmsg.Key(key) {
			case kmsg.Heartbeat:
				return attempt
			case kmsg.JoinGroup, kmsg.SyncGroup, kmsg.LeaveGroup:
				return session
			}
			return 30 * time.Second
		}),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			o.assign(partitions(m))
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			o.revoke(partitions(m))
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			o.revoke(partitions(m))
		}),
		kgo.WithHooks(ownHook{group: group, topic: topic}),
	)
	if err != nil {
		stop()
		return nil, fmt.Errorf("log: kafka: ownership client: %w", err)
	}
	// Group management (join, heartbeats, callbacks) runs on the client's
	// own goroutines whether or not anyone polls; fetching does not, once
	// the topic is paused. Pausing before the first join completes means
	// no fetch request is ever sent.
	cl.PauseFetchTopics(topic)
	ko.cl = cl
	return ko, nil
}

// Close revokes what is owned while the member still heartbeats, then
// leaves the group, which hands the partitions to the others at once.
//
// Leaving first waits for a join or sync in flight to finish. When that
// takes longer than the session timeout (the cluster is unreachable), Close
// gives up leaving: the group then moves the partitions once the session
// times out.
func (ko *kafkaOwnership) Close() error {
	ko.once.Do(func() {
		ko.owner.close()
		// franz-go's own revoke, when the session ends, finds nothing
		// owned any more.
		ctx, cancel := context.WithTimeout(context.Background(), ko.session)
		err := ko.cl.LeaveGroupContext(ctx)
		cancel()
		if err != nil {
			ko.closeErr = fmt.Errorf("log: kafka: leave group %q (the group moves the partitions after the session timeout): %w", ko.group, err)
		}
		ko.stop() // ends a join still waiting for an answer
		ko.cl.Close()
	})
	return ko.closeErr
}

// ownHook logs what ends a group session abnormally; without it a
// member that can never join (a session timeout the cluster refuses, no
// permission on the group) would fail silently.
type ownHook struct{ group, topic string }

func (h ownHook) OnGroupManageError(err error) {
	slog.Warn("log: ownership group session failed; retrying", "group", h.group, "topic", h.topic, "err", err)
}

package log

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaOptions configures the Kafka log.
type KafkaOptions struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Topic holds the whole log, one Kafka partition per log partition.
	Topic string
	// Partitions is the partition count. A missing topic is created with
	// it; an existing topic must have exactly this many partitions.
	Partitions int32
	// ReplicationFactor of a newly created topic. -1 (or 0) means the
	// broker default.
	ReplicationFactor int16
	// ClientID is sent to the brokers; "herald" if empty.
	ClientID string
}

// Topic configs set on a topic created by [OpenKafka]: the log is the
// source of truth and must replay from offset 0 forever, so nothing may
// ever delete or compact it.
var kafkaTopicConfigs = map[string]*string{
	"retention.ms":   kadm.StringPtr("-1"),
	"cleanup.policy": kadm.StringPtr("delete"),
}

// topicReadyTimeout bounds how long OpenKafka waits for a topic's
// partitions to get leaders when the caller's ctx has no earlier deadline.
const topicReadyTimeout = 30 * time.Second

// kafkaLog is the [Log] on a Kafka-compatible cluster; see [OpenKafka].
type kafkaLog struct {
	opts   KafkaOptions
	cl     *kgo.Client // producer, and the admin client's connection
	adm    *kadm.Client
	closed atomic.Bool
	once   sync.Once
}

// OpenKafka connects to the cluster, creates opts.Topic if it does not exist
// (retention.ms=-1, cleanup.policy=delete) and returns the log on it,
// through franz-go.
//
// What is guaranteed, and by what:
//
//   - Durability at ack: records are produced with acks=all, so Append
//     returns nil only once every in-sync replica has the record. How many
//     copies that is depends on the topic's replication factor and the
//     cluster's min.insync.replicas: with min.insync.replicas=1 the leader
//     alone may be "all". Brokers do not fsync per record; durability comes
//     from replication (replication factor 3 and min.insync.replicas=2 is
//     the usual production setting).
//   - No duplicates from retries: the producer is idempotent (franz-go's
//     default, kept on), so the client's internal retries of a batch
//     within one producer session never write a record twice. An Append
//     that returned an error (including ctx cancellation and Close) may
//     still have been written, and appending it again may write a second
//     copy. Nothing deduplicates across producer sessions or processes.
//   - Placement: the partition is chosen by [PartitionFor] and set on the
//     record (franz-go's ManualPartitioner), so the Kafka log, the
//     embedded log and any producer using Kafka's default key partitioner
//     put every key on the same partition.
//   - Density: offsets are dense only while nobody writes to the topic
//     with transactions (control records take offsets) and nothing
//     compacts or deletes its records. A cursor that finds a gap reports
//     an error rather than skipping it.
//   - Visibility: cursors read only up to the high watermark, which covers
//     only records replicated to all in-sync replicas; End is the high
//     watermark.
//
// An existing topic is adopted only if it has exactly opts.Partitions
// partitions: a different count would move keys to other partitions and
// break per-queue ordering, so OpenKafka fails instead; change the count
// only by migrating to a new topic. An existing topic with
// cleanup.policy=compact is refused; finite retention is logged as a
// warning, because it makes rebuilding projections from the log
// impossible once records age out.
func OpenKafka(ctx context.Context, opts KafkaOptions) (Log, error) {
	switch {
	case len(opts.Brokers) == 0:
		return nil, errors.New("log: kafka: no brokers")
	case opts.Topic == "":
		return nil, errors.New("log: kafka: no topic")
	case opts.Partitions <= 0:
		return nil, fmt.Errorf("log: kafka: partitions must be positive, got %d", opts.Partitions)
	}
	if opts.ReplicationFactor == 0 {
		opts.ReplicationFactor = -1
	}
	if opts.ClientID == "" {
		opts.ClientID = "herald"
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(opts.Brokers...),
		kgo.ClientID(opts.ClientID),
		kgo.DefaultProduceTopic(opts.Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// franz-go lingers 10ms by default; appends are synchronous and on
		// the request path, so send at once. Concurrent appends still share
		// batches while a produce request is in flight.
		kgo.ProducerLinger(0),
	)
	if err != nil {
		return nil, fmt.Errorf("log: kafka client: %w", err)
	}
	l := &kafkaLog{opts: opts, cl: cl, adm: kadm.NewClient(cl)}
	if err := l.ensureTopic(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	return l, nil
}

func (l *kafkaLog) ensureTopic(ctx context.Context) error {
	topic := l.opts.Topic
	existed := false
	resp, err := l.adm.CreateTopic(ctx, l.opts.Partitions, l.opts.ReplicationFactor, kafkaTopicConfigs, topic)
	switch {
	case err == nil:
	case errors.Is(err, kerr.TopicAlreadyExists):
		existed = true
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
		// Clusters that pre-provision topics often deny CREATE; the topic
		// may still exist and be usable.
		existed = true
		slog.Debug("log: not allowed to create topic, using it if it exists", "topic", topic, "err", err)
	default:
		if resp.ErrMessage != "" {
			return fmt.Errorf("log: kafka: create topic %q: %w: %s", topic, err, resp.ErrMessage)
		}
		return fmt.Errorf("log: kafka: create topic %q: %w", topic, err)
	}

	n, err := l.waitTopic(ctx)
	if err != nil {
		return err
	}
	if n != l.opts.Partitions {
		return fmt.Errorf("log: kafka: topic %q has %d partitions, configured %d; "+
			"changing the count would move queues to other partitions, use a new topic instead",
			topic, n, l.opts.Partitions)
	}
	if existed {
		return l.checkTopicConfigs(ctx)
	}
	return nil
}

// waitTopic waits until the topic's metadata lists every partition with a
// leader (a new topic takes a moment to propagate) and returns the count.
func (l *kafkaLog) waitTopic(ctx context.Context) (int32, error) {
	ctx, cancel := context.WithTimeout(ctx, topicReadyTimeout)
	defer cancel()
	topic := l.opts.Topic
	backoff := 20 * time.Millisecond
	for {
		var lastErr error
		tds, err := l.adm.ListTopics(ctx, topic)
		if err != nil {
			lastErr = err
		} else if td, ok := tds[topic]; !ok {
			lastErr = kerr.UnknownTopicOrPartition
		} else if td.Err != nil {
			if !kerr.IsRetriable(td.Err) {
				return 0, fmt.Errorf("log: kafka: topic %q: %w", topic, td.Err)
			}
			lastErr = td.Err
		} else if len(td.Partitions) > 0 {
			ready := true
			for _, pd := range td.Partitions {
				if pd.Err != nil || pd.Leader < 0 {
					ready = false
					lastErr = pd.Err
				}
			}
			if ready {
				return int32(len(td.Partitions)), nil
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("log: kafka: topic %q not ready: %w (last error: %v)", topic, ctx.Err(), lastErr)
		}
		backoff = min(2*backoff, time.Second)
	}
}

// checkTopicConfigs refuses a compacted topic and warns about finite
// retention on a topic Herald did not create.
func (l *kafkaLog) checkTopicConfigs(ctx context.Context) error {
	topic := l.opts.Topic
	rcs, err := l.adm.DescribeTopicConfigs(ctx, topic)
	if err == nil {
		var rc kadm.ResourceConfig
		if rc, err = rcs.On(topic, nil); err == nil {
			err = rc.Err
		}
		if err == nil {
			cfg := make(map[string]string, len(rc.Configs))
			for _, c := range rc.Configs {
				cfg[c.Key] = c.MaybeValue()
			}
			if v := cfg["cleanup.policy"]; strings.Contains(v, "compact") {
				return fmt.Errorf("log: kafka: topic %q has cleanup.policy=%s; compaction deletes events, the log needs cleanup.policy=delete", topic, v)
			}
			for _, k := range []string{"retention.ms", "retention.bytes"} {
				if v := cfg[k]; v != "" && v != "-1" {
					slog.Warn("log: topic has finite retention; events that age out can no longer be replayed",
						"topic", topic, "config", k, "value", v)
				}
			}
			return nil
		}
	}
	slog.Warn("log: could not verify topic configs", "topic", topic, "err", err)
	return nil
}

func (l *kafkaLog) Partitions() int32 { return l.opts.Partitions }

// Append produces rec to partition PartitionFor(rec.Key) and waits for the
// acks of all in-sync replicas. See kafkaLog for what a failure means.
func (l *kafkaLog) Append(ctx context.Context, rec *Record) error {
	ch := make(chan error, 1)
	l.AppendAsync(ctx, rec, func(err error) { ch <- err })
	return <-ch
}

// AppendAsync hands rec to the producer. The idempotent producer keeps a
// partition's records in the order they were produced, retries included.
func (l *kafkaLog) AppendAsync(ctx context.Context, rec *Record, done func(error)) {
	if l.closed.Load() {
		done(ErrClosed)
		return
	}
	kr := &kgo.Record{
		Topic:     l.opts.Topic,
		Partition: PartitionFor(rec.Key, l.opts.Partitions),
		Key:       rec.Key,
		Value:     rec.Value,
	}
	if len(rec.Headers) > 0 {
		kr.Headers = make([]kgo.RecordHeader, len(rec.Headers))
		for i, h := range rec.Headers {
			kr.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	l.cl.Produce(ctx, kr, func(kr *kgo.Record, err error) {
		switch {
		case errors.Is(err, kgo.ErrClientClosed):
			err = fmt.Errorf("%w: %v", ErrClosed, err)
		case err != nil:
			err = fmt.Errorf("log: kafka: append to %s/%d: %w", l.opts.Topic, kr.Partition, err)
		default:
			rec.Partition, rec.Offset = kr.Partition, kr.Offset
		}
		done(err)
	})
}

// End returns the partition's high watermark.
func (l *kafkaLog) End(ctx context.Context, p int32) (int64, error) {
	if p < 0 || p >= l.opts.Partitions {
		return 0, fmt.Errorf("log: no partition %d", p)
	}
	if l.closed.Load() {
		return 0, ErrClosed
	}
	offs, err := l.adm.ListEndOffsets(ctx, l.opts.Topic)
	// The listing may fail for some partitions and still answer ours.
	if o, ok := offs.Lookup(l.opts.Topic, p); ok && o.Err == nil {
		return o.Offset, nil
	} else if ok && err == nil {
		err = o.Err
	}
	if err == nil {
		err = errors.New("partition not in listing")
	}
	if l.closed.Load() {
		return 0, ErrClosed
	}
	return 0, fmt.Errorf("log: kafka: end of %s/%d: %w", l.opts.Topic, p, err)
}

func (l *kafkaLog) Ends(ctx context.Context) ([]int64, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	offs, err := l.adm.ListEndOffsets(ctx, l.opts.Topic)
	if err != nil {
		return nil, fmt.Errorf("log: kafka: ends of %s: %w", l.opts.Topic, err)
	}
	ends := make([]int64, l.opts.Partitions)
	for p := range ends {
		o, ok := offs.Lookup(l.opts.Topic, int32(p))
		if !ok {
			return nil, fmt.Errorf("log: kafka: ends of %s: partition %d not in listing", l.opts.Topic, p)
		}
		if o.Err != nil {
			return nil, fmt.Errorf("log: kafka: end of %s/%d: %w", l.opts.Topic, p, o.Err)
		}
		ends[p] = o.Offset
	}
	return ends, nil
}

// OpenCursor starts a consumer client of its own that fetches only
// partition p from offset.
//
// Unlike the embedded log, which waits, a cursor opened past the
// partition's log end fails: Next returns an OffsetOutOfRange error, and
// keeps returning it. In Kafka that position means records the caller
// already saw are gone (a recreated topic, an unclean leader election), so
// the caller must not carry on as if they were coming.
func (l *kafkaLog) OpenCursor(p int32, offset int64) (Cursor, error) {
	if p < 0 || p >= l.opts.Partitions {
		return nil, fmt.Errorf("log: no partition %d", p)
	}
	if offset < 0 {
		return nil, fmt.Errorf("log: negative offset %d", offset)
	}
	if l.closed.Load() {
		return nil, ErrClosed
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(l.opts.Brokers...),
		kgo.ClientID(l.opts.ClientID),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			l.opts.Topic: {p: kgo.NewOffset().At(offset)},
		}),
		// Never silently jump after losing our place: records the broker
		// lost or deleted must surface as an error, not as a skip.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
	)
	if err != nil {
		return nil, fmt.Errorf("log: kafka: cursor client: %w", err)
	}
	return &kafkaCursor{cl: cl, topic: l.opts.Topic, p: p, pos: offset}, nil
}

// Close closes the producer. Appends still in flight fail with ErrClosed
// and may or may not have been written. Close is idempotent.
func (l *kafkaLog) Close() error {
	l.once.Do(func() {
		l.closed.Store(true)
		l.cl.Close()
	})
	return nil
}

// kafkaCursor reads one partition through its own consumer client.
type kafkaCursor struct {
	cl     *kgo.Client
	topic  string
	p      int32
	pos    int64 // offset of the next record to return
	closed atomic.Bool

	// pending is an error seen in the same poll as records that were
	// returned; it is reported by the next call. fatal errors stay.
	pending error
	fatal   error
}

func (c *kafkaCursor) Next(ctx context.Context, max int) ([]Record, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if c.fatal != nil {
		return nil, c.fatal
	}
	if err := c.pending; err != nil {
		c.pending = nil
		return nil, err
	}
	if max <= 0 {
		max = 1
	}
	for {
		fs := c.cl.PollRecords(ctx, max)
		var out []Record
		fs.EachRecord(func(r *kgo.Record) {
			if c.fatal != nil {
				return
			}
			switch {
			case r.Offset < c.pos:
				// A batch can start before the offset asked for.
				return
			case r.Offset > c.pos:
				c.fatal = fmt.Errorf("log: kafka: %s/%d: offset %d missing (next record is %d); records were deleted, compacted or lost",
					c.topic, c.p, c.pos, r.Offset)
				return
			}
			out = append(out, fromKgo(r))
			c.pos++
		})
		err := c.fetchErr(ctx, fs)
		if len(out) > 0 {
			// Never drop records the consumer has moved past; report the
			// error on the next call instead.
			if err != nil && !isCtxErr(err) {
				c.pending = err
			}
			return out, nil
		}
		if c.fatal != nil {
			return nil, c.fatal
		}
		if err != nil {
			return nil, err
		}
		// A poll that only held records before our position: poll again.
	}
}

// fetchErr returns the first error in fs, mapped to Herald's errors: ctx's
// own error on cancellation, ErrClosed on a closed client. Data loss is
// fatal for the cursor.
func (c *kafkaCursor) fetchErr(ctx context.Context, fs kgo.Fetches) error {
	errs := fs.Errors()
	if len(errs) == 0 {
		return nil
	}
	// One partition per cursor: the first error is the one that matters.
	fe := errs[0]
	switch {
	case isCtxErr(fe.Err) && ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(fe.Err, kgo.ErrClientClosed):
		return ErrClosed
	}
	// With NoResetOffset the consumer stops fetching the partition after
	// these; nothing more will come.
	var loss *kgo.ErrDataLoss
	if errors.As(fe.Err, &loss) || errors.Is(fe.Err, kerr.OffsetOutOfRange) {
		c.fatal = fmt.Errorf("log: kafka: %s/%d at offset %d: %w", c.topic, c.p, c.pos, fe.Err)
		return c.fatal
	}
	return fmt.Errorf("log: kafka: read %s/%d: %w", c.topic, c.p, fe.Err)
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func fromKgo(r *kgo.Record) Record {
	rec := Record{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value}
	if len(r.Headers) > 0 {
		rec.Headers = make([]Header, len(r.Headers))
		for i, h := range r.Headers {
			rec.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	return rec
}

// Close stops the cursor's consumer client. Close is idempotent.
func (c *kafkaCursor) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.cl.Close()
	}
	return nil
}

package log

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newKfake starts an in-memory single-broker cluster on loopback; the log
// reaches it over real sockets, speaking the Kafka protocol.
func newKfake(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func openKafkaForTest(t *testing.T, opts KafkaOptions) Log {
	t.Helper()
	l, err := OpenKafka(ctxFor(t), opts)
	if err != nil {
		t.Fatalf("OpenKafka: %v", err)
	}
	return l
}

func TestKafkaContract(t *testing.T) {
	brokers := newKfake(t)
	var n atomic.Int64
	runLogContract(t, func(t *testing.T, partitions int32) (Log, func() Log) {
		// One cluster for the suite, a topic per test.
		opts := KafkaOptions{
			Brokers:    brokers,
			Topic:      fmt.Sprintf("herald-contract-%d", n.Add(1)),
			Partitions: partitions,
			ClientID:   "herald-test",
		}
		return openKafkaForTest(t, opts), func() Log { return openKafkaForTest(t, opts) }
	})
}

func TestKafkaTopicSetup(t *testing.T) {
	brokers := newKfake(t)
	opts := KafkaOptions{Brokers: brokers, Topic: "herald-setup", Partitions: 3}
	l := openKafkaForTest(t, opts)
	defer l.Close()

	adm, err := kadm.NewOptClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx := ctxFor(t)
	rcs, err := adm.DescribeTopicConfigs(ctx, opts.Topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(opts.Topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range rc.Configs {
		got[c.Key] = c.MaybeValue()
	}
	for k, want := range map[string]string{"retention.ms": "-1", "cleanup.policy": "delete"} {
		if got[k] != want {
			t.Errorf("topic config %s = %q, want %q", k, got[k], want)
		}
	}

	t.Run("PartitionMismatch", func(t *testing.T) {
		bad := opts
		bad.Partitions = 4
		l, err := OpenKafka(ctxFor(t), bad)
		if err == nil {
			l.Close()
			t.Fatal("OpenKafka adopted a topic with 3 partitions as 4")
		}
		if !strings.Contains(err.Error(), "has 3 partitions, configured 4") {
			t.Fatalf("unclear error: %v", err)
		}
	})

	t.Run("CompactedTopicRefused", func(t *testing.T) {
		if _, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, "herald-compacted"); err != nil {
			t.Fatal(err)
		}
		l, err := OpenKafka(ctxFor(t), KafkaOptions{Brokers: brokers, Topic: "herald-compacted", Partitions: 1})
		if err == nil {
			l.Close()
			t.Fatal("OpenKafka accepted a compacted topic")
		}
		if !strings.Contains(err.Error(), "cleanup.policy=compact") {
			t.Fatalf("unclear error: %v", err)
		}
	})

	t.Run("BadOptions", func(t *testing.T) {
		for _, o := range []KafkaOptions{
			{Topic: "t", Partitions: 1},
			{Brokers: brokers, Partitions: 1},
			{Brokers: brokers, Topic: "t"},
		} {
			if l, err := OpenKafka(ctxFor(t), o); err == nil {
				l.Close()
				t.Errorf("OpenKafka(%+v) succeeded", o)
			}
		}
	})
}

// A record produced by a plain Kafka producer with the default (Java
// compatible) key partitioner lands where the log's Append puts the same key.
func TestKafkaPlacementMatchesDefaultProducer(t *testing.T) {
	brokers := newKfake(t)
	const parts = 7
	l := openKafkaForTest(t, KafkaOptions{Brokers: brokers, Topic: "herald-placement", Partitions: parts})
	defer l.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("herald-placement"),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 50 {
		key := fmt.Sprintf("project-%d/queue-%d", i, i*i)
		kr := &kgo.Record{Key: []byte(key), Value: []byte("x")}
		if err := cl.ProduceSync(ctxFor(t), kr).FirstErr(); err != nil {
			t.Fatal(err)
		}
		rec := appendOK(t, l, key, "x")
		if rec.Partition != kr.Partition {
			t.Fatalf("key %q: log put it on %d, default producer on %d", key, rec.Partition, kr.Partition)
		}
	}
}

// A cursor past the log end means the log lost records the caller saw;
// the Kafka cursor reports it, and keeps reporting it, instead of waiting.
func TestKafkaCursorPastEnd(t *testing.T) {
	brokers := newKfake(t)
	l := openKafkaForTest(t, KafkaOptions{Brokers: brokers, Topic: "herald-past-end", Partitions: 1})
	defer l.Close()
	appendOK(t, l, "a/b", "0")
	c := openCursor(t, l, 0, 3)
	for range 2 {
		recs, err := c.Next(ctxFor(t), 10)
		if !errors.Is(err, kerr.OffsetOutOfRange) || len(recs) != 0 {
			t.Fatalf("Next past the end = %d records, %v; want OffsetOutOfRange", len(recs), err)
		}
	}
}

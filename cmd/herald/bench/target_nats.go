package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsTarget drives NATS JetStream the way the bench drives Zaqar, as a
// point of comparison. It sticks to what nats-server 2.9 supports:
//
//   - a queue is a file-storage stream with work-queue retention (an
//     acknowledged message is removed, like a deleted Zaqar message) on
//     one subject, both named after the project and the queue;
//   - a producer publishes synchronously, waiting for the PubAck; a
//     request of several messages is published asynchronously and waits
//     for every PubAck, JetStream's durable batch (not atomic: a failure
//     leaves the rest stored);
//   - consumers share one durable pull consumer per queue (explicit
//     acks, AckWait = the claim TTL): a claim is a no-wait Fetch of up to
//     --claim-limit messages, a delete an AckSync (acknowledgement
//     confirmed by the server); bulk deletes Ack all but the last message
//     and AckSync the last, one round trip, as the server handles one
//     connection's acks in order;
//   - there are no observers.
type natsTarget struct {
	url     string
	project string
	timeout time.Duration
}

func newNATSTarget(c *Config) *natsTarget {
	return &natsTarget{url: c.NATSURL, project: c.Project, timeout: c.Timeout}
}

// natsDurable is the name of the consumer every consumer worker pulls from.
const natsDurable = "bench"

// names maps a queue to its stream and subject. Stream names cannot hold
// dots; subjects use them as separators.
func (t *natsTarget) names(queue string) (stream, subject string) {
	p := strings.ReplaceAll(t.project, ".", "_")
	q := strings.ReplaceAll(queue, ".", "_")
	return p + "_" + q, p + "." + q
}

func (t *natsTarget) connect(name string) (*nats.Conn, jetstream.JetStream, error) {
	// IgnoreDiscoveredServers: talk to --nats-url only, not to the cluster
	// peers a server advertises.
	nc, err := nats.Connect(t.url, nats.Name(name), nats.Timeout(t.timeout), nats.IgnoreDiscoveredServers())
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(t.timeout))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func (t *natsTarget) Setup(ctx context.Context, queues []string) error {
	nc, js, err := t.connect("herald-bench setup")
	if err != nil {
		return err
	}
	defer nc.Close()
	for _, q := range queues {
		stream, subject := t.names(q)
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: stream, Subjects: []string{subject},
			Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy,
		})
		if err != nil {
			return fmt.Errorf("stream %s: %w", stream, err)
		}
	}
	return nil
}

func (t *natsTarget) Clean(ctx context.Context, queues []string) error {
	nc, js, err := t.connect("herald-bench clean")
	if err != nil {
		return err
	}
	defer nc.Close()
	for _, q := range queues {
		stream, _ := t.names(q)
		if err := js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream %s: %w", stream, err)
		}
	}
	return nil
}

func (t *natsTarget) Dial(_ context.Context, clientID string) (Conn, error) {
	nc, js, err := t.connect("herald-bench " + clientID)
	if err != nil {
		return nil, err
	}
	return &natsConn{t: t, nc: nc, js: js, consumers: map[string]jetstream.Consumer{}}, nil
}

// natsConn is one worker's NATS connection.
type natsConn struct {
	t         *natsTarget
	nc        *nats.Conn
	js        jetstream.JetStream
	consumers map[string]jetstream.Consumer // by queue
}

func (c *natsConn) Close() error {
	c.nc.Close()
	return nil
}

func (c *natsConn) Post(ctx context.Context, queue string, bodies [][]byte) error {
	_, subject := c.t.names(queue)
	if len(bodies) == 1 {
		_, err := c.js.Publish(ctx, subject, bodies[0])
		return err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(bodies))
	var first error
	for _, b := range bodies {
		f, err := c.js.PublishAsync(subject, b)
		if err != nil {
			first = err
			break
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = err
			}
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", errPartial, ctx.Err())
		}
	}
	if first != nil {
		return fmt.Errorf("%w: %w", errPartial, first)
	}
	return nil
}

func (c *natsConn) consumer(ctx context.Context, queue string) (jetstream.Consumer, error) {
	if cons, ok := c.consumers[queue]; ok {
		return cons, nil
	}
	stream, _ := c.t.names(queue)
	cons, err := c.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: natsDurable, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: claimTTL * time.Second, MaxAckPending: -1,
	})
	if err != nil {
		return nil, err
	}
	c.consumers[queue] = cons
	return cons, nil
}

// Claim fetches without waiting; the client bounds a fetch that gets no
// end-of-batch answer to one second.
func (c *natsConn) Claim(ctx context.Context, queue string, limit int) ([]Delivery, error) {
	cons, err := c.consumer(ctx, queue)
	if err != nil {
		return nil, err
	}
	batch, err := cons.FetchNoWait(limit)
	if err != nil {
		return nil, err
	}
	var ds []Delivery
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			return ds, fmt.Errorf("%w: %w", errBadAnswer, err)
		}
		ds = append(ds, Delivery{ID: fmt.Sprintf("%s:%d", md.Stream, md.Sequence.Stream), Body: m.Data(), ack: m})
	}
	if err := batch.Error(); err != nil && len(ds) == 0 {
		return nil, err
	}
	return ds, nil
}

func (c *natsConn) Delete(ctx context.Context, _ string, d Delivery) error {
	return d.ack.(jetstream.Msg).DoubleAck(ctx)
}

func (c *natsConn) DeleteMany(ctx context.Context, _ string, ds []Delivery) error {
	for _, d := range ds[:len(ds)-1] {
		if err := d.ack.(jetstream.Msg).Ack(); err != nil {
			return err
		}
	}
	return ds[len(ds)-1].ack.(jetstream.Msg).DoubleAck(ctx)
}

func (c *natsConn) List(context.Context, string, string) (int, string, error) {
	return 0, "", errors.New("observers are not supported with --target nats")
}

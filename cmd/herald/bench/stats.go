package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// opStats holds the figures of one operation (post, claim, delete, list)
// of one worker. A mutex guards it because pipelined WebSocket posts are
// recorded from the connection's reader goroutine.
type opStats struct {
	mu    sync.Mutex
	hist  *hdrhistogram.Histogram // latency of successful requests, µs
	ok    int64                   // successful requests
	msgs  int64                   // messages they carried
	empty int64                   // successful requests that carried none
	errs  map[string]int64        // failed requests by errorKind
}

func newOpStats(maxLatency time.Duration) *opStats {
	return &opStats{
		hist: hdrhistogram.New(1, maxLatency.Microseconds(), 3),
		errs: map[string]int64{},
	}
}

func (s *opStats) add(latency time.Duration, msgs int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs[errorKind(err)]++
		return
	}
	us := max(latency.Microseconds(), 1)
	if us > s.hist.HighestTrackableValue() {
		us = s.hist.HighestTrackableValue()
	}
	_ = s.hist.RecordValue(us) // in range by construction
	s.ok++
	s.msgs += int64(msgs)
	if msgs == 0 {
		s.empty++
	}
}

func (s *opStats) merge(from *opStats) {
	from.mu.Lock()
	defer from.mu.Unlock()
	s.hist.Merge(from.hist)
	s.ok += from.ok
	s.msgs += from.msgs
	s.empty += from.empty
	for k, v := range from.errs {
		s.errs[k] += v
	}
}

// errorKind names the failure of a request for the error counts:
// "status_<N>" for an answer with a failure status, otherwise the kind of
// transport error.
func errorKind(err error) string {
	var se *StatusError
	var api *jetstream.APIError
	var ne net.Error
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &se):
		return "status_" + strconv.Itoa(se.Status)
	case errors.As(err, &api):
		return "status_" + strconv.Itoa(api.Code)
	case errors.Is(err, errBadAnswer):
		return "bad_answer"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, errTimeout), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &ce):
		return "ws_closed"
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		return "no_responders"
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionReconnecting):
		return "disconnected"
	}
	return "other"
}

// errTimeout is the failure of requests abandoned because the connection
// stopped answering.
var errTimeout = errors.New("no answer in time")

// isTransport tells whether err is a transport error (no answer), after
// which a worker pauses briefly so that a dead endpoint is not hammered.
func isTransport(err error) bool {
	var se *StatusError
	var api *jetstream.APIError
	return err != nil && !errors.As(err, &se) && !errors.As(err, &api) && !errors.Is(err, errBadAnswer)
}

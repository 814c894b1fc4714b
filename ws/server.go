// Package ws is Herald's WebSocket transport: Zaqar's v2 WebSocket API
// (contract §4) on gorilla/websocket. Every request frame is one
// operation of package api, answered in order in the frame's own encoding
// (JSON text or MessagePack binary); subscriptions made over a socket, and
// Herald's resumable streams, push messages to it as the projector applies
// them.
//
// Each connection has one reader (its handler goroutine, which also runs
// the requests, so answers keep their order) and one writer goroutine,
// which alone writes to the socket. Everything bound for a socket goes
// through a bounded queue; a socket that does not keep up is closed
// rather than allowed to grow memory.
package ws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldmq/herald/api"
	"github.com/heraldmq/herald/projection"
)

// Config configures the WebSocket transport. Zero values take defaults.
type Config struct {
	Logger *slog.Logger
	// MaxFrame is the largest request frame in bytes (1 MiB); a larger
	// one closes the connection with 1009.
	MaxFrame int64
	// SendQueue bounds the frames waiting for a socket (256); a socket
	// whose queue is full when a notification arrives is closed with
	// 1008 as a slow consumer.
	SendQueue int
	// Pipeline bounds the requests of one connection read and not yet
	// answered (64): message_post frames sent without waiting for their
	// answers are written to the log together, in order.
	Pipeline int
	// MaxConns bounds the open connections of the process (10000); past
	// it upgrades are refused with 503.
	MaxConns int
	// PingInterval is how often the server pings (30 s); a peer silent
	// for two intervals is dropped.
	PingInterval time.Duration
	// WriteTimeout bounds one frame write (10 s).
	WriteTimeout time.Duration
	// NotifyHost names this node in the subscriber URL of WebSocket
	// subscriptions (http://host:port/connection-id); the hostname when
	// empty.
	NotifyHost string
	// Keystone, when set, requires the authenticate action first.
	Keystone *api.Keystone
}

func (c *Config) withDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = 1 << 20
	}
	if c.SendQueue == 0 {
		c.SendQueue = 256
	}
	if c.Pipeline == 0 {
		c.Pipeline = 64
	}
	if c.MaxConns == 0 {
		c.MaxConns = 10000
	}
	if c.PingInterval == 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.NotifyHost == "" {
		c.NotifyHost, _ = os.Hostname()
	}
}

// Server serves WebSocket connections. It is an http.Handler: mount it on
// its own listener and/or on a path of the REST listener.
type Server struct {
	svc      *api.Service
	cfg      Config
	hub      *hub
	auth     *api.KeystoneValidator
	upgrader websocket.Upgrader
	unfeed   func()

	open    atomic.Int64
	mu      sync.Mutex
	conns   map[*conn]struct{}
	closing bool
	wg      sync.WaitGroup
}

// New returns a server over svc that follows feed for notifications.
func New(svc *api.Service, feed *projection.Feed, cfg Config) *Server {
	cfg.withDefaults()
	s := &Server{svc: svc, cfg: cfg, conns: map[*conn]struct{}{}}
	s.hub = newHub(s)
	if cfg.Keystone != nil {
		s.auth = api.NewKeystoneValidator(*cfg.Keystone)
	}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize: 4096, WriteBufferSize: 4096,
		// Browsers from any origin may connect, as to Zaqar: requests
		// carry their project in every frame, not in cookies.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	s.unfeed = feed.Subscribe(s.hub.applied)
	return s
}

// ServeHTTP upgrades the request to a WebSocket connection and serves it
// until it closes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	if s.open.Load() >= int64(s.cfg.MaxConns) {
		s.mu.Unlock()
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	s.open.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer s.open.Add(-1)

	wsc, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	c := newConn(s, wsc, r)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.serve()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Open is the number of open connections.
func (s *Server) Open() int64 { return s.open.Load() }

// Shutdown refuses new connections, closes open ones with 1001 (going
// away) and waits for them, bounded by ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		c.close(websocket.CloseGoingAway, "Server shutting down.")
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer s.unfeed()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newConnID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

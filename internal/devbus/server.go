package devbus

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"wbagent/internal/devbus/amqp"
	"wbagent/internal/logging"
	"wbagent/internal/secret"
)

// Server is a running devbus: a listener, its connections and its queues.
// All methods are safe for concurrent use.
type Server struct {
	log            *zap.Logger
	clock          Clock
	key            *secret.Secret
	keyName        string
	ln             net.Listener
	host           string
	tlsLn, wsLn    net.Listener // nil unless Options.TLSAddr, Options.WSAddr
	tlsMat         *tlsMaterial
	tlsConf        *tls.Config
	httpSrv        *http.Server
	httpConns      *connQueue // HTTP requests that reached the TLS listener
	entra          *entraIdP  // nil without Options.Entra
	stateFile      string
	maxFrameSize   uint32
	maxMessageSize uint64
	idleTimeout    time.Duration
	acceptTimeout  time.Duration
	stopCtx        func() bool

	mu     sync.Mutex
	queues map[string]*queue // by lower-case name
	conns  map[uint64]*conn
	nextID uint64
	closed bool
	faults faults
	// pending are TLS connections still in their handshake.
	pending map[net.Conn]struct{}

	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// faults is the injected misbehaviour, guarded by Server.mu.
type faults struct {
	responseDelay time.Duration // <0: withhold responses
	cbsFailures   int
	cbsStatus     int32
}

// Start listens on opts.Addr and serves until Close or until ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	s := &Server{
		log:            opts.Logger,
		clock:          opts.Clock,
		keyName:        opts.KeyName,
		stateFile:      opts.StateFile,
		maxFrameSize:   opts.MaxFrameSize,
		maxMessageSize: opts.MaxMessageSize,
		idleTimeout:    opts.IdleTimeout,
		acceptTimeout:  opts.AcceptSessionTimeout,
		queues:         map[string]*queue{},
		conns:          map[uint64]*conn{},
		pending:        map[net.Conn]struct{}{},
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.log = s.log.With(zap.String(logging.FieldComponent, "devbus"))
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.keyName == "" {
		s.keyName = DefaultKeyName
	}
	if opts.Key.IsEmpty() {
		raw := make([]byte, 32)
		_, _ = rand.Read(raw)
		s.key = secret.FromString(base64.StdEncoding.EncodeToString(raw))
		clear(raw)
	} else {
		s.key = secret.New(opts.Key.Bytes())
	}
	if s.maxFrameSize == 0 {
		s.maxFrameSize = 65536
	}
	if s.maxFrameSize < amqp.MinMaxFrameSize {
		return nil, fmt.Errorf("start devbus: max frame size %d is below the AMQP minimum of %d", s.maxFrameSize, amqp.MinMaxFrameSize)
	}
	if s.maxMessageSize == 0 {
		s.maxMessageSize = 1 << 20
	}
	switch {
	case s.idleTimeout == 0:
		s.idleTimeout = 2 * time.Minute
	case s.idleTimeout < 0:
		s.idleTimeout = 0
	}
	if s.acceptTimeout <= 0 {
		s.acceptTimeout = time.Minute
	}
	for _, qc := range opts.Queues {
		if err := s.addQueue(qc); err != nil {
			return nil, fmt.Errorf("start devbus: %w", err)
		}
	}
	if s.stateFile != "" {
		if err := s.loadState(s.stateFile); err != nil {
			return nil, fmt.Errorf("start devbus: %w", err)
		}
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start devbus: listen on %s: %w", addr, err)
	}
	s.ln = ln
	s.host = connectHost(ln.Addr().(*net.TCPAddr))
	if err := s.listenSecure(ctx, opts); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("start devbus: %w", err)
	}
	s.wg.Add(1)
	go s.accept(s.ln, func(nc net.Conn) {
		if c := s.addConn(nc); c != nil {
			go c.serve()
		}
	})
	s.startSecure()
	// Registered last: Close, when ctx has already ended, must find every
	// goroutine counted.
	s.stopCtx = context.AfterFunc(ctx, func() { _ = s.Close() })
	s.log.Info("devbus listening", zap.String(logging.FieldAddr, s.host), zap.Int("queues", len(s.queues)))
	return s, nil
}

// connectHost is the host:port clients dial: the listen address, or
// loopback when listening on every interface.
func connectHost(a *net.TCPAddr) string {
	ip := a.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(a.Port))
}

// accept hands every connection ln accepts to handoff until ln closes.
func (s *Server) accept(ln net.Listener, handoff func(net.Conn)) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("accept failed", zap.Error(err))
			time.Sleep(10 * time.Millisecond)
			continue
		}
		handoff(nc)
	}
}

// addConn registers a broker connection over nc, whose serve the caller
// runs; it returns nil (and closes nc) once the server is closed.
func (s *Server) addConn(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = nc.Close()
		return nil
	}
	s.nextID++
	c := newConn(s, s.nextID, nc)
	s.conns[c.id] = c
	s.wg.Add(1)
	return c
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return s.host }

// ConnectionString returns the connection string for the SDKs:
// Endpoint=sb://HOST:PORT;SharedAccessKeyName=NAME;SharedAccessKey=KEY;UseDevelopmentEmulator=true.
// It holds the key, so it comes as a Secret; Reveal it where an SDK needs
// the string.
func (s *Server) ConnectionString() *secret.Secret {
	return secret.FromString(fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=%s;SharedAccessKey=%s;UseDevelopmentEmulator=true",
		s.host, s.keyName, s.key.Reveal()))
}

// Close stops listening, drops every connection, writes the state file
// when one is configured, and waits for the connection goroutines. It is
// safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopCtx()
		s.mu.Lock()
		s.closed = true
		conns := slices.Collect(maps.Values(s.conns))
		for nc := range s.pending {
			_ = nc.Close()
		}
		s.mu.Unlock()
		_ = s.ln.Close()
		s.closeSecure()
		for _, c := range conns {
			c.shutdown()
		}
		s.wg.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stateFile != "" {
			if err := s.saveState(s.stateFile); err != nil {
				s.closeErr = err
				s.log.Error("save devbus state", zap.Error(err))
			}
		}
		for _, q := range s.queues {
			q.stopTimers()
			q.dlq.stopTimers()
		}
		s.log.Info("devbus stopped")
	})
	return s.closeErr
}

// AddQueue creates a queue (and its dead-letter queue) at run time.
func (s *Server) AddQueue(cfg QueueConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addQueue(cfg)
}

func (s *Server) addQueue(cfg QueueConfig) error {
	if err := cfg.normalize(); err != nil {
		return err
	}
	key := strings.ToLower(cfg.Name)
	if _, dup := s.queues[key]; dup {
		return fmt.Errorf("queue %q is defined twice", cfg.Name)
	}
	s.queues[key] = newQueue(s, cfg)
	return nil
}

// entity resolves a lower-case entity path to its queue or dead-letter
// queue.
func (s *Server) entity(path string) *queue {
	name, dlq := entityName(path)
	q := s.queues[name]
	if q == nil {
		return nil
	}
	if dlq {
		return q.dlq
	}
	return q
}

// confirm sends a settlement disposition, now or after the injected
// response delay.
func (s *Server) confirm(sess *session, d *amqp.Disposition) {
	s.afterResponseDelay(func() bool {
		return !sess.ending && !sess.c.gone && !sess.c.closing && sess.c.sessions[sess.ch] == sess
	}, func() { sess.send(d) })
}

// afterResponseDelay runs send now, later (re-checking alive under the
// lock), or never, as the injected response delay says. s.mu is held.
func (s *Server) afterResponseDelay(alive func() bool, send func()) {
	d := s.faults.responseDelay
	switch {
	case d == 0:
		send()
	case d < 0:
		// withheld
	default:
		s.clock.AfterFunc(d, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if alive() {
				send()
			}
		})
	}
}

func (q *queue) stopTimers() {
	for _, m := range q.bySeq {
		stop(m.lockTimer)
		stop(m.expiry)
	}
	for _, g := range q.groups {
		stop(g.lockTimer)
	}
	for _, w := range q.waiters {
		stop(w.timer)
	}
}

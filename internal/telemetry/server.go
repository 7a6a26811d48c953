package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Check reports whether one dependency is usable; /readyz runs it with a
// deadline.
type Check func(ctx context.Context) error

// ServerOptions configure a Server.
type ServerOptions struct {
	// Addr is http.listen, e.g. 127.0.0.1:9469 (port 0 picks a free one).
	Addr string
	// Gatherer serves /metrics; nil serves an empty registry.
	Gatherer prometheus.Gatherer
	// CheckTimeout bounds each readiness check; required (the config owns
	// the value).
	CheckTimeout time.Duration
	// ReadyDetails (http.readyDetails) shows every /readyz caller why each
	// check fails. Without it only loopback callers see that; others get
	// the status alone, since failure texts name servers, paths and
	// accounts an outsider has no business learning.
	ReadyDetails bool
	// Logger receives serving errors; nil logs nothing.
	Logger *zap.Logger
	// OnError, when set, is told that serving stopped on an error (not on
	// Shutdown), so the agent can stop instead of running without its
	// health endpoints.
	OnError func(error)
}

// Server serves /healthz, /readyz and /metrics.
type Server struct {
	opts ServerOptions
	log  *zap.Logger
	srv  *http.Server

	mu     sync.Mutex
	checks map[string]Check
	ln     net.Listener
	done   chan struct{}
}

// NewServer returns a server; it listens only once Start is called.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.CheckTimeout <= 0 {
		return nil, fmt.Errorf("http: readiness check timeout %s: give a positive duration", opts.CheckTimeout)
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	s := &Server{opts: opts, log: opts.Logger, checks: map[string]Check{}}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      opts.CheckTimeout + 10*time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          zap.NewStdLog(opts.Logger),
	}
	return s, nil
}

// AddCheck registers (or replaces) the readiness check called name. Checks
// may be added while the server runs, as dependencies come up.
func (s *Server) AddCheck(name string, check Check) {
	s.mu.Lock()
	s.checks[name] = check
	s.mu.Unlock()
}

// Handler returns the server's routes, for tests and for embedding.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	return mux
}

// ReadyReport is the outcome of the readiness checks, and /readyz's JSON body.
type ReadyReport struct {
	Status string `json:"status"` // "ready" or "not ready"
	// Checks maps every check to "ok" or why it failed; left out for a
	// caller that may see the status only.
	Checks map[string]string `json:"checks,omitempty"`
	// Failing lists the failing checks' names, sorted.
	Failing []string `json:"failing,omitempty"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rep := s.Ready(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if len(rep.Failing) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	if !s.opts.ReadyDetails && !fromLoopback(r) {
		rep = ReadyReport{Status: rep.Status}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rep)
}

// fromLoopback reports whether the request came from this host's loopback
// interface. A reverse proxy on the same host makes every caller look
// local: put http.listen behind one only if its callers may see details.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Ready runs every check at once, each within CheckTimeout, and reports
// the outcome as /readyz does.
func (s *Server) Ready(ctx context.Context) ReadyReport {
	s.mu.Lock()
	checks := make(map[string]Check, len(s.checks))
	for n, c := range s.checks {
		checks[n] = c
	}
	s.mu.Unlock()

	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(checks))
	for name, check := range checks {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, s.opts.CheckTimeout)
			defer cancel()
			done := make(chan error, 1) // a check that ignores ctx is abandoned, not waited for
			go func() { done <- check(cctx) }()
			select {
			case err := <-done:
				results <- result{name, err}
			case <-cctx.Done():
				results <- result{name, fmt.Errorf("no answer within %v", s.opts.CheckTimeout)}
			}
		}()
	}
	rep := ReadyReport{Status: "ready", Checks: map[string]string{}}
	for range checks {
		r := <-results
		if r.err != nil {
			rep.Checks[r.name] = r.err.Error()
			rep.Failing = append(rep.Failing, r.name)
		} else {
			rep.Checks[r.name] = "ok"
		}
	}
	if len(rep.Failing) > 0 {
		rep.Status = "not ready"
		sort.Strings(rep.Failing)
	}
	return rep
}

// Start listens on Addr and serves in the background; it returns at once,
// with an error if the address cannot be bound.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on http.listen %s: %w (is another process using the port?)", s.opts.Addr, err)
	}
	s.mu.Lock()
	s.ln, s.done = ln, make(chan struct{})
	s.mu.Unlock()
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics and health server stopped", zap.Error(err))
			if s.opts.OnError != nil {
				s.opts.OnError(err)
			}
		}
	}()
	return nil
}

// Addr returns the address the server listens on (with the port chosen
// when Addr had port 0); empty before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting connections and waits, until ctx ends, for
// requests being served.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop metrics and health server: %w", err)
	}
	<-done
	return nil
}

package devbus

import (
	"strings"

	"go.uber.org/zap"
)

// StallConnections silences every open connection the way a receiver of
// the Go SDK can stop receiving: no detach, no close, no error. The broker
// keeps the socket open, keeps reading the client's frames and keeps
// sending heartbeats (so no idle timeout fires on either side), but
// processes nothing more and sends nothing else: no messages, no
// settlement confirmations, no $cbs or $management responses, no attach
// or detach answers. Messages already locked to a stalled receiver stay
// locked until their locks expire. Connections opened afterwards are
// served normally, so a client that rebuilds its connection recovers. It
// returns how many connections it stalled.
func (s *Server) StallConnections() int {
	return s.stallWhere(func(*conn) bool { return true })
}

// StallConnection stalls one connection, as StallConnections does; it
// reports whether the connection existed.
func (s *Server) StallConnection(id uint64) bool {
	return s.stallWhere(func(c *conn) bool { return c.id == id }) == 1
}

// StallReceivers stalls, as StallConnections does, every connection that
// has a link receiving from queue name (its dead-letter queue aside), and
// leaves the others (such as a test's sender) alone. It returns how many
// connections it stalled.
func (s *Server) StallReceivers(name string) (int, error) {
	q, err := onQueue(s, name, func(q *queue) *queue { return q })
	if err != nil {
		return 0, err
	}
	return s.stallWhere(func(c *conn) bool {
		for _, sess := range c.sessions {
			for _, l := range sess.links {
				if l.q == q && l.kind == kindEntity && l.needs() == rightListen && !l.detaching {
					return true
				}
			}
		}
		return false
	}), nil
}

func (s *Server) stallWhere(match func(*conn) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		if c.closing || c.stalled.Load() || !match(c) {
			continue
		}
		c.stalled.Store(true)
		n++
		// A next-available session receiver waiting on this connection
		// waits for ever: its "no session" answer would be a response.
		for _, q := range s.queues {
			for _, w := range append([]*acceptWaiter(nil), q.waiters...) {
				if w.l.s.c == c {
					q.removeWaiter(w.l)
				}
			}
		}
		s.log.Info("connection stalled (fault injected)", zap.Uint64("conn", c.id), zap.String("remote", c.remote),
			zap.String("links", strings.Join(c.linkAddrs(), " ")))
	}
	return n
}

// linkAddrs lists the connection's link addresses; srv.mu is held.
func (c *conn) linkAddrs() []string {
	var out []string
	for _, sess := range c.sessions {
		for _, l := range sess.links {
			out = append(out, l.addr)
		}
	}
	return out
}

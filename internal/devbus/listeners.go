package devbus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"wbagent/internal/logging"
	"wbagent/internal/secret"
)

// listenSecure opens the TLS and WebSocket listeners opts asks for, with
// the certificate material from opts.TLSDir.
func (s *Server) listenSecure(ctx context.Context, opts Options) error {
	if opts.TLSAddr == "" && opts.WSAddr == "" {
		if opts.Entra != nil {
			return errors.New("the Entra ID stand-in serves HTTPS on the TLS listeners: set TLSAddr or WSAddr too")
		}
		return nil
	}
	mat, err := loadOrCreateTLS(opts.TLSDir, time.Now())
	if err != nil {
		return fmt.Errorf("TLS certificates: %w", err)
	}
	s.tlsMat, s.tlsConf = mat, mat.config()
	lc := &net.ListenConfig{}
	if opts.TLSAddr != "" {
		if s.tlsLn, err = lc.Listen(ctx, "tcp", opts.TLSAddr); err != nil {
			return fmt.Errorf("listen for TLS on %s: %w", opts.TLSAddr, err)
		}
	}
	if opts.WSAddr != "" {
		if s.wsLn, err = lc.Listen(ctx, "tcp", opts.WSAddr); err != nil {
			s.closeListeners()
			return fmt.Errorf("listen for WebSockets on %s: %w", opts.WSAddr, err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc(WebSocketPath, s.serveWebSocket)
	if opts.Entra != nil {
		if s.entra, err = newEntra(s, opts.Entra, opts.TLSDir); err != nil {
			s.closeListeners()
			return err
		}
		s.entra.register(mux)
	}
	// TLS handshake failures of clients that do not trust the CA are
	// routine in tests: debug level.
	errLog, err := zap.NewStdLogAt(s.log, zap.DebugLevel)
	if err != nil {
		s.closeListeners()
		return fmt.Errorf("HTTP server log: %w", err)
	}
	s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: handshakeTimeout, ErrorLog: errLog}
	return nil
}

func (s *Server) closeListeners() {
	for _, ln := range []net.Listener{s.tlsLn, s.wsLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// startSecure starts serving the TLS and WebSocket listeners.
func (s *Server) startSecure() {
	if s.tlsLn != nil {
		s.httpConns = newConnQueue(s.tlsLn.Addr())
		s.wg.Add(2)
		go s.accept(s.tlsLn, func(nc net.Conn) {
			if s.pend(nc) {
				go s.sniffTLS(nc)
			} else {
				_ = nc.Close()
			}
		})
		go func() {
			defer s.wg.Done()
			_ = s.httpSrv.Serve(s.httpConns)
		}()
		s.log.Info("devbus listening for AMQP over TLS", zap.String(logging.FieldAddr, s.tlsLn.Addr().String()))
	}
	if s.wsLn != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = s.httpSrv.Serve(tls.NewListener(s.wsLn, s.tlsConf))
		}()
		s.log.Info("devbus listening for AMQP over WebSockets", zap.String(logging.FieldAddr, s.wsLn.Addr().String()),
			zap.String("path", WebSocketPath))
	}
}

// closeSecure stops the TLS and WebSocket listeners and the HTTP server;
// the broker connections over them are closed with the others.
func (s *Server) closeSecure() {
	if s.tlsLn != nil {
		_ = s.tlsLn.Close()
	}
	if s.httpConns != nil {
		_ = s.httpConns.Close()
	}
	if s.httpSrv != nil {
		if err := s.httpSrv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("close the HTTP server", zap.Error(err))
		}
	}
}

func portOf(ln net.Listener) string {
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// secureConnectionString is the connection string of a TLS listener, as
// for a Service Bus namespace: no UseDevelopmentEmulator, so the SDK
// takes its production path (amqps://, or wss:// with NewWebSocketConn).
func (s *Server) secureConnectionString(ln net.Listener) *secret.Secret {
	return secret.FromString(fmt.Sprintf("Endpoint=sb://localhost:%s/;SharedAccessKeyName=%s;SharedAccessKey=%s",
		portOf(ln), s.keyName, s.key.Reveal()))
}

// TLSConnectionString is the connection string of the TLS listener
// (Endpoint=sb://localhost:PORT/), or nil without Options.TLSAddr.
// Clients must trust CACertPEM.
func (s *Server) TLSConnectionString() *secret.Secret {
	if s.tlsLn == nil {
		return nil
	}
	return s.secureConnectionString(s.tlsLn)
}

// WebSocketConnectionString is the connection string of the WebSocket
// listener (Endpoint=sb://localhost:PORT/), or nil without
// Options.WSAddr. Clients connect to wss://localhost:PORT/$servicebus/websocket
// and must trust CACertPEM.
func (s *Server) WebSocketConnectionString() *secret.Secret {
	if s.wsLn == nil {
		return nil
	}
	return s.secureConnectionString(s.wsLn)
}

// ConnectionStrings returns one connection string per listener, in the
// order plain, TLS, WebSockets.
func (s *Server) ConnectionStrings() []*secret.Secret {
	out := []*secret.Secret{s.ConnectionString()}
	if cs := s.TLSConnectionString(); cs != nil {
		out = append(out, cs)
	}
	if cs := s.WebSocketConnectionString(); cs != nil {
		out = append(out, cs)
	}
	return out
}

// TLSAddr is the host:port of the TLS listener; empty without one.
func (s *Server) TLSAddr() string {
	if s.tlsLn == nil {
		return ""
	}
	return connectHost(s.tlsLn.Addr().(*net.TCPAddr))
}

// WebSocketAddr is the host:port of the WebSocket listener; empty
// without one.
func (s *Server) WebSocketAddr() string {
	if s.wsLn == nil {
		return ""
	}
	return connectHost(s.wsLn.Addr().(*net.TCPAddr))
}

// CACertPEM is the CA certificate (PEM) that issued the TLS listeners'
// certificate; nil without TLS listeners.
func (s *Server) CACertPEM() []byte {
	if s.tlsMat == nil {
		return nil
	}
	return append([]byte(nil), s.tlsMat.caPEM...)
}

// CertPool holds the CA of CACertPEM, ready for tls.Config.RootCAs; nil
// without TLS listeners.
func (s *Server) CertPool() *x509.CertPool {
	if s.tlsMat == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.tlsMat.ca)
	return pool
}

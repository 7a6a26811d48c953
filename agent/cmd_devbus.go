package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"wbagent/internal/devbus"
	"wbagent/internal/logging"
	"wbagent/internal/secret"
)

// devbusKeyEnv supplies the shared access key without putting it on the
// command line, where other users can read it.
const devbusKeyEnv = "WBAGENT_DEVBUS_KEY"

func init() {
	register(&command{
		name:    "devbus",
		summary: "run a local Service Bus (AMQP 1.0) for tests and demos; prints its connection string",
		run:     runDevbus,
	})
}

const queueSpecHelp = "NAME[,sessions][,lock=30s][,maxdelivery=10][,ttl=15m][,dlexpired][,dedup=10m|off]"

// parseQueueSpec reads one --queue value: a name, then options.
func parseQueueSpec(spec string) (devbus.QueueConfig, error) {
	parts := strings.Split(spec, ",")
	c := devbus.QueueConfig{Name: strings.TrimSpace(parts[0])}
	if c.Name == "" {
		return c, fmt.Errorf("queue %q has no name; write %s", spec, queueSpecHelp)
	}
	dur := func(key, v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("queue %s: %s=%q is not a duration like 30s or 15m", c.Name, key, v)
		}
		return d, nil
	}
	for _, p := range parts[1:] {
		key, val, hasVal := strings.Cut(strings.TrimSpace(p), "=")
		var err error
		switch {
		case (key == "sessions" || key == "session") && !hasVal:
			c.RequiresSession = true
		case key == "dlexpired" && !hasVal:
			c.DeadLetterOnExpiration = true
		case key == "lock" && hasVal:
			c.LockDuration, err = dur(key, val)
		case key == "ttl" && hasVal:
			c.DefaultTTL, err = dur(key, val)
		case key == "dedup" && hasVal:
			if val == "off" || val == "0" {
				c.DuplicateDetection = 0
			} else {
				c.DuplicateDetection, err = dur(key, val)
			}
		case key == "maxdelivery" && hasVal:
			n, perr := strconv.Atoi(val)
			if perr != nil || n < 1 {
				err = fmt.Errorf("queue %s: maxdelivery=%q is not a positive number", c.Name, val)
			}
			c.MaxDeliveryCount = n
		default:
			err = fmt.Errorf("queue %s: unknown option %q; options are %s", c.Name, p, queueSpecHelp)
		}
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

func runDevbus(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "devbus", "devbus [--listen 127.0.0.1:5672] --queue "+queueSpecHelp+" ... [--key KEY] [--state FILE] [--tls-listen ADDR] [--ws-listen ADDR] [--tls-dir DIR] [--entra-tenant ID --entra-client "+entraClientHelp+" ...]")
	listen := fs.String("listen", "127.0.0.1:5672", "TCP address to listen on; port 0 picks a free port")
	queues := repeatedFlag[devbus.QueueConfig]{parse: parseQueueSpec, name: func(c devbus.QueueConfig) string { return c.Name }}
	fs.Var(&queues, "queue", "a queue to create, repeatable: "+queueSpecHelp)
	key := fs.String("key", "", "shared access key clients sign with (default: $"+devbusKeyEnv+", else random)")
	keyName := fs.String("key-name", devbus.DefaultKeyName, "shared access key name")
	state := fs.String("state", "", "file to load queues from at start and save them to at shutdown")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	tlsListen := fs.String("tls-listen", "", "also serve AMQP over TLS on this address (Service Bus uses 5671); port 0 picks a free port")
	wsListen := fs.String("ws-listen", "", "also serve AMQP over WebSockets over TLS on this address, at "+devbus.WebSocketPath+" (Service Bus uses 443)")
	entraTenant := fs.String("entra-tenant", "", "serve an Entra ID stand-in for this tenant id on the TLS listeners (authority https://localhost:TLSPORT/)")
	entraClients := repeatedFlag[devbus.EntraClient]{parse: parseEntraClient, name: func(c devbus.EntraClient) string { return c.ID }}
	fs.Var(&entraClients, "entra-client", "an app registered with the stand-in, repeatable: "+entraClientHelp)
	entraLifetime := fs.Duration("entra-token-lifetime", devbus.DefaultEntraTokenLifetime, "lifetime of the stand-in's access tokens")
	tlsDir := fs.String("tls-dir", "", "directory for the CA devbus issues itself ("+devbus.CAFile+", which clients trust) and its server certificate; reused when present")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(queues.list) == 0 && *state == "" {
		return withCode(exitUsage, fmt.Errorf("devbus: give at least one --queue %s (or a --state file that has queues)", queueSpecHelp))
	}
	if (*tlsListen != "" || *wsListen != "") && *tlsDir == "" {
		return withCode(exitUsage, errors.New("devbus: --tls-listen and --ws-listen need --tls-dir DIR, where devbus writes "+devbus.CAFile+" for clients to trust"))
	}
	if *tlsDir != "" && *tlsListen == "" && *wsListen == "" {
		return withCode(exitUsage, errors.New("devbus: --tls-dir is used only with --tls-listen or --ws-listen; add one of them or drop --tls-dir"))
	}
	var entra *devbus.EntraOptions
	switch {
	case *entraTenant != "":
		if *tlsListen == "" && *wsListen == "" {
			return withCode(exitUsage, errors.New("devbus: --entra-tenant serves HTTPS on the TLS listeners: add --tls-listen or --ws-listen"))
		}
		if *entraLifetime <= 0 {
			return withCode(exitUsage, fmt.Errorf("devbus: --entra-token-lifetime %s must be positive", *entraLifetime))
		}
		entra = &devbus.EntraOptions{Tenant: *entraTenant, Clients: entraClients.list, TokenLifetime: *entraLifetime}
	case len(entraClients.list) > 0:
		return withCode(exitUsage, errors.New("devbus: --entra-client needs --entra-tenant ID, the tenant the app is registered in"))
	}
	log, err := logging.New(logging.Options{Level: *level}, env.stderr)
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("devbus: %w", err))
	}
	defer log.Close()
	k := *key
	if k == "" && env.getenv != nil {
		k = env.getenv(devbusKeyEnv)
	}
	var keySecret *secret.Secret
	if k != "" {
		keySecret = secret.FromString(k)
	}
	srv, err := devbus.Start(ctx, devbus.Options{
		Addr: *listen, Key: keySecret, KeyName: *keyName, Queues: queues.list, StateFile: *state, Logger: log.Logger,
		TLSAddr: *tlsListen, WSAddr: *wsListen, TLSDir: *tlsDir, Entra: entra,
	})
	if err != nil {
		return fmt.Errorf("devbus: %w", err)
	}
	// The connection strings are the command's output, by design: tests
	// and demos read them, one per listener, one per line, in the order
	// plain, TLS, WebSockets.
	for _, cs := range srv.ConnectionStrings() {
		fmt.Fprintln(env.stdout, cs.Reveal())
		cs.Destroy()
	}
	if *tlsDir != "" {
		log.Info("clients trust this CA", zap.String("caFile", filepath.Join(*tlsDir, devbus.CAFile)))
	}
	if entra != nil {
		log.Info("Entra ID stand-in", zap.String("authorityHost", srv.AuthorityHost()), zap.String("tenant", entra.Tenant),
			zap.Int("clients", len(entra.Clients)), zap.Duration("tokenLifetime", entra.TokenLifetime))
	}
	for _, q := range srv.Queues() {
		log.Info("queue", zap.String(logging.FieldQueue, q.Name), zap.Bool("sessions", q.RequiresSession),
			zap.Duration("lock", q.LockDuration), zap.Int("maxDelivery", q.MaxDeliveryCount),
			zap.Duration("ttl", q.DefaultTTL), zap.Duration("dedup", q.DuplicateDetection))
	}
	<-ctx.Done()
	if err := srv.Close(); err != nil {
		return fmt.Errorf("devbus: %w", err)
	}
	return nil
}

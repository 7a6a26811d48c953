package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"wbagent/internal/config"
	"wbagent/internal/devbus"
	"wbagent/internal/logging"
	"wbagent/internal/protocol"
)

func init() {
	register(&command{
		name:    "dev",
		summary: "run the agent against a local Service Bus with throwaway keys, for trying it out (not for production)",
		run:     runDev,
	})
}

const devUsage = `dev --config FILE [--listen 127.0.0.1:5672] [--reply-queue results]

Starts a local Service Bus (devbus) in this process with the config's request
queue and a reply queue, generates throwaway keys in a temporary folder (the
config's agent keys are used when their files exist; a throwaway sender is
always added to the trusted senders), prints the connection string and a
ready-to-paste 'wbagent send' command, and runs the agent against the
configured directory until SIGINT or SIGTERM. servicebus.connectionString and
servicebus.namespace of the config are ignored. The temporary folder is
removed at exit.`

// devSetup is what dev mode adds around the configured agent.
type devSetup struct {
	dir        string // the temporary folder
	senderKey  string
	agentPub   string
	agentSign  string
	ownKeys    bool // the config's agent keys are used
	replyQueue string
}

func runDev(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "dev", devUsage)
	cfgPath := fs.String("config", defaultConfigPath(), "config file (its directory section is used as is)")
	listen := fs.String("listen", "127.0.0.1:5672", "address of the local Service Bus; port 0 picks a free one")
	replyQueue := fs.String("reply-queue", "results", "name of the queue results are sent to")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if strings.EqualFold(*replyQueue, cfg.ServiceBus.Queue) {
		return withCode(exitUsage, fmt.Errorf("dev: --reply-queue %q is the request queue; pick another name", *replyQueue))
	}
	log, err := newLogger(cfg, env)
	if err != nil {
		return withCode(exitConfigInvalid, err)
	}
	defer log.Close()
	tmp, err := os.MkdirTemp("", "wbagent-dev-")
	if err != nil {
		return fmt.Errorf("dev: create a folder for throwaway keys: %w", err)
	}
	defer os.RemoveAll(tmp)
	setup := &devSetup{dir: tmp, replyQueue: *replyQueue}
	if err := setup.keys(cfg); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	srv, err := devbus.Start(ctx, devbus.Options{
		Addr: *listen,
		Queues: []devbus.QueueConfig{
			{Name: cfg.ServiceBus.Queue, RequiresSession: cfg.ServiceBus.Sessions},
			// `wbagent send --session` waits on a reply session.
			{Name: *replyQueue, RequiresSession: cfg.ServiceBus.Sessions},
		},
		Logger: log.With(zap.String(logging.FieldComponent, "devbus")),
	})
	if err != nil {
		return fmt.Errorf("dev: start the local Service Bus on %s: %w", *listen, err)
	}
	defer srv.Close()
	conn := srv.ConnectionString()
	// The effective config: the local bus instead of the configured one.
	cfg.ServiceBus.ConnectionString = &config.SecretRef{Value: conn}
	cfg.ServiceBus.Namespace, cfg.ServiceBus.Credential = "", nil
	logStartup(log, cfg)
	log.Warn("dev mode: local Service Bus and throwaway keys; do not use in production", zap.String(logging.FieldPath, tmp))
	p := newProgram(cfg, log, env.getenv, buildAgent)
	if err := p.prepare(ctx); err != nil {
		log.Error("wbagent cannot start", zap.Error(err))
		return err
	}
	_ = p.Start(nil)
	setup.print(env.stdout, cfg, conn.Reveal())
	select {
	case err = <-p.fatal:
	case <-ctx.Done():
	}
	_ = p.Stop(nil)
	conn.Destroy()
	return err
}

// keys makes the key files dev mode runs with: the config's agent keys
// when they all exist, else a throwaway set; and always a throwaway sender,
// added to the trusted senders.
func (s *devSetup) keys(cfg *config.Config) error {
	s.ownKeys = len(cfg.Agent.DecryptionKeys) > 0 && exists(cfg.Agent.SigningKey)
	for _, k := range cfg.Agent.DecryptionKeys {
		s.ownKeys = s.ownKeys && exists(k)
	}
	if s.ownKeys {
		if err := s.publishOwnKeys(cfg); err != nil {
			return err
		}
	} else {
		agentDir := filepath.Join(s.dir, "agent")
		if _, err := protocol.WriteAgentKeys(agentDir, protocol.SuiteXWing); err != nil {
			return fmt.Errorf("create throwaway agent keys: %w", err)
		}
		cfg.Agent.DecryptionKeys = []string{filepath.Join(agentDir, protocol.AgentHPKEKeyFile)}
		cfg.Agent.SigningKey = filepath.Join(agentDir, protocol.AgentSignKeyFile)
		s.agentPub = filepath.Join(agentDir, protocol.AgentHPKEPubFile)
		s.agentSign = filepath.Join(agentDir, protocol.AgentSignPubFile)
	}
	senderDir := filepath.Join(s.dir, "sender")
	if _, err := protocol.WriteSenderKeys(senderDir); err != nil {
		return fmt.Errorf("create a throwaway sender key: %w", err)
	}
	s.senderKey = filepath.Join(senderDir, protocol.SenderKeyFile)
	// Senders whose key file is missing would stop the agent from starting;
	// in dev mode they are left out instead.
	var senders []config.Sender
	for _, t := range cfg.Agent.TrustedSenders {
		if exists(t.PublicKey) && t.Name != "dev" {
			senders = append(senders, t)
		}
	}
	cfg.Agent.TrustedSenders = append(senders, config.Sender{Name: "dev", PublicKey: filepath.Join(senderDir, protocol.SenderPubFile)})
	return nil
}

// publishOwnKeys writes the public halves of the config's current agent
// keys, which senders need, into the temporary folder.
func (s *devSetup) publishOwnKeys(cfg *config.Config) error {
	hk, err := protocol.LoadDecryptionKey(cfg.Agent.DecryptionKeys[0])
	if err != nil {
		return fmt.Errorf("agent.decryptionKeys[0]: %w", err)
	}
	doc, err := json.MarshalIndent(hk.Public(), "", "  ")
	if err != nil {
		return fmt.Errorf("encode the agent public key: %w", err)
	}
	sk, err := protocol.LoadSigningKey(cfg.Agent.SigningKey)
	if err != nil {
		return fmt.Errorf("agent.signingKey: %w", err)
	}
	defer sk.Destroy()
	signPub, err := protocol.MarshalPublicKeyPEM(sk.Public())
	if err != nil {
		return err
	}
	s.agentPub = filepath.Join(s.dir, protocol.AgentHPKEPubFile)
	s.agentSign = filepath.Join(s.dir, protocol.AgentSignPubFile)
	if err := os.WriteFile(s.agentPub, append(doc, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the agent public key: %w", err)
	}
	if err := os.WriteFile(s.agentSign, signPub, 0o644); err != nil {
		return fmt.Errorf("write the agent result key: %w", err)
	}
	return nil
}

func exists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// print tells the user how to talk to the running agent.
func (s *devSetup) print(w io.Writer, cfg *config.Config, conn string) {
	self, err := os.Executable()
	if err != nil {
		self = "wbagent"
	}
	keys := "throwaway agent keys (new at every start)"
	if s.ownKeys {
		keys = "the config's agent keys"
	}
	target := "userPrincipalName=USER"
	if len(cfg.Directory.Domains) > 0 {
		target += "@" + cfg.Directory.Domains[0].Name
	}
	session := ""
	if cfg.ServiceBus.Sessions {
		session = " --session"
	}
	fmt.Fprintf(w, `wbagent dev: agent %s is running against a local Service Bus, with %s.
Requests go to queue %q, results come back on %q. Stop with Ctrl-C.

Connection string:
  %s

Try a password reset (replace USER and the password):
  export WBAGENT_SB_CONNECTION='%s'
  echo 'New-Passw0rd!' | %s send --connection-string-env WBAGENT_SB_CONNECTION --queue %s --reply-queue %s%s --sender-key %s --agent-key %s --agent-signing-key %s --op reset --target %s --password-stdin
`, cfg.Agent.Name, keys, cfg.ServiceBus.Queue, s.replyQueue, conn, conn, shellWord(self), shellWord(cfg.ServiceBus.Queue),
		shellWord(s.replyQueue), session, shellWord(s.senderKey), shellWord(s.agentPub), shellWord(s.agentSign), target)
}

// shellWord quotes w for a POSIX shell when it holds anything but safe
// characters.
func shellWord(w string) string {
	for _, r := range w {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./-:=@+,", r)) {
			return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
	}
	return w
}

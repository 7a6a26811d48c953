package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"

	"wbagent/internal/protocol"
)

func init() {
	register(&command{
		name:    "keygen",
		summary: "create the agent's key set, or a sender's key pair (never overwrites a key)",
		run:     runKeygen,
	})
}

func runKeygen(_ context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "keygen", "keygen --dir DIR [--suite x-wing|x25519] | keygen --sender --dir DIR")
	dir := fs.String("dir", "", "directory for the key files (created with mode 0700 if missing)")
	suiteName := fs.String("suite", string(protocol.SuiteXWing), "HPKE suite of the agent decryption key: x-wing or x25519")
	sender := fs.Bool("sender", false, "create a sender signing key pair (sender.key, sender.pub) instead of the agent's keys")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return withCode(exitUsage, errors.New("keygen: --dir is required"))
	}
	if *sender {
		suiteSet := false
		fs.Visit(func(f *flag.Flag) { suiteSet = suiteSet || f.Name == "suite" })
		if suiteSet {
			return withCode(exitUsage, errors.New("keygen: --suite applies to the agent's keys, not to --sender"))
		}
		kid, err := protocol.WriteSenderKeys(*dir)
		if err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
		fmt.Fprintf(env.stdout, "sender signing key    kid %s  %s (private, keep on the sender)\n", kid, filepath.Join(*dir, protocol.SenderKeyFile))
		fmt.Fprintf(env.stdout, "sender public key     kid %s  %s (list it in the agent's trusted senders)\n", kid, filepath.Join(*dir, protocol.SenderPubFile))
		return nil
	}
	suite, err := protocol.ParseSuite(*suiteName)
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("keygen: --suite: %w", err))
	}
	ids, err := protocol.WriteAgentKeys(*dir, suite)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(env.stdout, "agent decryption key  kid %s  %s (%s, private, keep on the agent)\n", ids.HPKE, filepath.Join(*dir, protocol.AgentHPKEKeyFile), suite)
	fmt.Fprintf(env.stdout, "agent public key      kid %s  %s (hand to senders)\n", ids.HPKE, filepath.Join(*dir, protocol.AgentHPKEPubFile))
	fmt.Fprintf(env.stdout, "agent signing key     kid %s  %s (private, keep on the agent)\n", ids.Signing, filepath.Join(*dir, protocol.AgentSignKeyFile))
	fmt.Fprintf(env.stdout, "agent result key      kid %s  %s (hand to senders to verify results)\n", ids.Signing, filepath.Join(*dir, protocol.AgentSignPubFile))
	return nil
}

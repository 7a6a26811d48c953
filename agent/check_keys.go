package main

import (
	"fmt"

	"wbagent/internal/config"
	"wbagent/internal/protocol"
)

// keyChecks loads every key file the config names, as the agent would at
// start, so a wrong path, a bad mode or a broken file shows up in `check`.
func keyChecks(cfg *config.Config) []checkRow {
	var rows []checkRow
	for i, path := range cfg.Agent.DecryptionKeys {
		name := fmt.Sprintf("decryption key %d", i+1)
		k, err := protocol.LoadDecryptionKey(path)
		if err != nil {
			rows = append(rows, checkRow{Name: name, Detail: err.Error(), Fix: "create it with `wbagent keygen --dir DIR` and list its agent-hpke.key in agent.decryptionKeys"})
			continue
		}
		role := "older key kept for rotation"
		if i == 0 {
			role = "current"
		}
		rows = append(rows, checkRow{Name: name, OK: true, Detail: fmt.Sprintf("%s kid %s, %s (%s)", k.Suite(), k.KID(), role, path)})
	}
	if k, err := protocol.LoadSigningKey(cfg.Agent.SigningKey); err != nil {
		rows = append(rows, checkRow{Name: "signing key", Detail: err.Error(), Fix: "create it with `wbagent keygen --dir DIR` and point agent.signingKey at agent-sign.key"})
	} else {
		rows = append(rows, checkRow{Name: "signing key", OK: true, Detail: fmt.Sprintf("kid %s (%s)", k.KID(), cfg.Agent.SigningKey)})
		k.Destroy()
	}
	for _, s := range cfg.Agent.TrustedSenders {
		name := "sender " + s.Name
		pub, err := protocol.LoadPublicKey(s.PublicKey)
		if err != nil {
			rows = append(rows, checkRow{Name: name, Detail: err.Error(), Fix: "put the sender's Ed25519 public key (PEM) at " + s.PublicKey})
			continue
		}
		rows = append(rows, checkRow{Name: name, OK: true, Detail: "kid " + protocol.KID(pub)})
	}
	return rows
}

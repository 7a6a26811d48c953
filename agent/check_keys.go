package main

import (
	"errors"
	"fmt"
	"io/fs"

	"wbagent/internal/config"
	"wbagent/internal/fileperm"
	"wbagent/internal/protocol"
)

// keyChecks loads every key file the config names, as the agent would at
// start, so a wrong path, a bad mode or owner, the wrong kind of key or a
// broken file shows up in `check` (also with --offline: it reads files
// only).
func keyChecks(cfg *config.Config) []checkRow {
	var rows []checkRow
	for i, path := range cfg.Agent.DecryptionKeys {
		name := fmt.Sprintf("decryption key %d", i+1)
		k, err := protocol.LoadDecryptionKey(path)
		if err != nil {
			rows = append(rows, checkRow{Name: name, Detail: err.Error(), Fix: keyFix(err, path, true,
				"create it with `wbagent keygen --dir DIR` and list its agent-hpke.key in agent.decryptionKeys")})
			continue
		}
		role := "older key kept for rotation"
		if i == 0 {
			role = "current"
		}
		rows = append(rows, checkRow{Name: name, OK: true, Detail: fmt.Sprintf("%s kid %s, %s (%s)", k.Suite(), k.KID(), role, path)})
	}
	if k, err := protocol.LoadSigningKey(cfg.Agent.SigningKey); err != nil {
		rows = append(rows, checkRow{Name: "signing key", Detail: err.Error(), Fix: keyFix(err, cfg.Agent.SigningKey, true,
			"create it with `wbagent keygen --dir DIR` and point agent.signingKey at agent-sign.key")})
	} else {
		rows = append(rows, checkRow{Name: "signing key", OK: true, Detail: fmt.Sprintf("kid %s (%s)", k.KID(), cfg.Agent.SigningKey)})
		k.Destroy()
	}
	for _, s := range cfg.Agent.TrustedSenders {
		name := "sender " + s.Name
		pub, err := protocol.LoadPublicKey(s.PublicKey)
		if err != nil {
			rows = append(rows, checkRow{Name: name, Detail: err.Error(), Fix: keyFix(err, s.PublicKey, false,
				"put the sender's Ed25519 public key (PEM) at "+s.PublicKey)})
			continue
		}
		rows = append(rows, checkRow{Name: name, OK: true, Detail: "kid " + protocol.KID(pub)})
	}
	return rows
}

// keyFix is the fix for a key file that failed to load. Only a missing
// file is made with keygen: a key that exists but cannot be read needs its
// ownership or permissions fixed (a new key would break trust with every
// sender), and a key of the wrong kind needs the right path.
func keyFix(err error, path string, private bool, missing string) string {
	var wk *protocol.WrongKindError
	var fe *fileperm.Error
	switch {
	case errors.As(err, &wk) && private:
		return "point this setting at the private key file (agent-hpke.key for agent.decryptionKeys, agent-sign.key for agent.signingKey); the .pub files are for senders"
	case errors.As(err, &wk):
		return "point publicKey at the sender's public key (its sender.pub); keep the sender's private key off this machine and make a new pair if it was copied"
	case errors.As(err, &fe):
		return fe.Fix
	case errors.Is(err, fs.ErrNotExist):
		return missing
	case errors.Is(err, fs.ErrPermission):
		return fileperm.UnreadableFix(path, private)
	}
	return "the file is not a key wbagent reads: restore it from your backup, or point the setting at the right file"
}

// secretFix is the fix for a secret reference that did not resolve.
func secretFix(err error, ref *config.SecretRef) string {
	var fe *fileperm.Error
	switch {
	case errors.As(err, &fe):
		return fe.Fix
	case ref.File != "" && errors.Is(err, fs.ErrPermission):
		return fileperm.UnreadableFix(ref.File, true)
	}
	return "make " + ref.Source() + " available to the service"
}

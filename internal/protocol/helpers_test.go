package protocol

import (
	"crypto/ed25519"

	"wbagent/internal/secret"
)

type ed25519PublicKey = ed25519.PublicKey

func secretOf(s string) *secret.Secret { return secret.FromString(s) }

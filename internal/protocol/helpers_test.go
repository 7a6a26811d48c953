package protocol

import (
	"crypto/ed25519"
	"encoding/base64"
	"testing"

	"wbagent/internal/secret"
)

type ed25519PublicKey = ed25519.PublicKey

func secretOf(s string) *secret.Secret { return secret.FromString(s) }

func decodeSig(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package protocol

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// DeriveSecret derives n bytes from the private key with HKDF-SHA-256
// (RFC 5869): IKM is the key's SerializePrivateKey bytes (RFC 9180), salt
// is empty and info is label. Every agent of one deployment holds the same
// decryption keys, so each derives the same secret without any further key
// to distribute, and no one without the private key can. Each use takes its
// own label, so one derived secret says nothing about another.
func (k *DecryptionKey) DeriveSecret(label string, n int) ([]byte, error) {
	if label == "" {
		return nil, errors.New("derive secret: empty label")
	}
	ikm, err := k.priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("derive secret from key %s: %w", k.kid, err)
	}
	defer clear(ikm)
	out, err := hkdf.Key(sha256.New, ikm, nil, label, n)
	if err != nil {
		return nil, fmt.Errorf("derive secret from key %s: %w", k.kid, err)
	}
	return out, nil
}

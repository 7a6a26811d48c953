package devbus

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// jwtParts is a compact JWT split and decoded, its signature not yet
// checked.
type jwtParts struct {
	header    map[string]any
	claims    map[string]any
	signed    []byte // header.payload, what the signature covers
	signature []byte
}

// parseJWT splits and decodes a compact JWS. Errors describe the shape,
// never the token.
func parseJWT(token string) (*jwtParts, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("the token is not a JWT (it must have three dot-separated parts)")
	}
	var p jwtParts
	for i, dst := range []*map[string]any{&p.header, &p.claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, fmt.Errorf("the JWT's %s is not base64url", []string{"header", "payload"}[i])
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		if err := dec.Decode(dst); err != nil {
			return nil, fmt.Errorf("the JWT's %s is not a JSON object", []string{"header", "payload"}[i])
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, errors.New("the JWT's signature is not base64url")
	}
	p.signed, p.signature = []byte(parts[0]+"."+parts[1]), sig
	return &p, nil
}

// verify checks the signature with an RSA public key: RS256 (PKCS #1
// v1.5), as Entra ID signs its tokens, or PS256, as MSAL signs client
// assertions.
func (p *jwtParts) verify(pub *rsa.PublicKey) error {
	sum := sha256.Sum256(p.signed)
	switch alg, _ := p.header["alg"].(string); alg {
	case "RS256":
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], p.signature) != nil {
			return errors.New("the signature does not verify")
		}
	case "PS256":
		if rsa.VerifyPSS(pub, crypto.SHA256, sum[:], p.signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) != nil {
			return errors.New("the signature does not verify")
		}
	default:
		return fmt.Errorf("the signing algorithm %q is not supported (RS256 or PS256)", alg)
	}
	return nil
}

func (p *jwtParts) str(name string) string {
	s, _ := p.claims[name].(string)
	return s
}

// num reads a NumericDate claim; ok is false when it is absent or not a
// number.
func (p *jwtParts) num(name string) (int64, bool) {
	n, ok := p.claims[name].(json.Number)
	if !ok {
		return 0, false
	}
	v, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil {
			return 0, false
		}
		v = int64(f)
	}
	return v, true
}

// strs reads a claim that is a string or a list of strings.
func (p *jwtParts) strs(name string) []string {
	switch v := p.claims[name].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// signJWT issues a compact JWS signed RS256 with key.
func signJWT(key *rsa.PrivateKey, header, claims map[string]any) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("encode JWT header: %w", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode JWT claims: %w", err)
	}
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

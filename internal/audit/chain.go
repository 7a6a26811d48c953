package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"wbagent/internal/wire"
)

// Genesis is the prev of the first line of a file.
var Genesis = strings.Repeat("0", 64)

// MaxLineBytes bounds one line; Verify calls a longer line broken.
const MaxLineBytes = 1 << 20

const (
	hashPrefix = `,"hash":"`
	hashSuffix = `"}`
	// hashFieldLen is the length of `,"hash":"<64 hex>"}`.
	hashFieldLen = len(hashPrefix) + 64 + len(hashSuffix)
)

// encodeLine returns the line for rec linked to prev (without the newline)
// and its hash.
//
// The body is rec as compact JSON with prev set and no hash member; the hash
// is lowercase hex SHA-256 of the body; the line is the body with
// `,"hash":"<hash>"` inserted before its closing brace. A verifier undoes
// the insertion and rehashes the exact bytes, so it needs no knowledge of
// field order or JSON canonicalisation.
func encodeLine(rec Record, prev string) ([]byte, string, error) {
	rec = rec.clamped()
	rec.Prev, rec.Hash = prev, ""
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep DNs and actor ids readable
	if err := enc.Encode(rec); err != nil {
		return nil, "", fmt.Errorf("encode audit record: %w", err)
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	line := make([]byte, 0, len(body)+hashFieldLen)
	line = append(line, body[:len(body)-1]...)
	line = append(line, hashPrefix...)
	line = append(line, hash...)
	line = append(line, hashSuffix...)
	return line, hash, nil
}

// checkLine checks one line (without its newline) on its own: its hash
// matches its content. It returns the line's hash and its prev.
func checkLine(line []byte) (hash, prev string, err error) {
	if len(line) < hashFieldLen+2 || !bytes.HasSuffix(line, []byte(hashSuffix)) ||
		!bytes.HasPrefix(line[len(line)-hashFieldLen:], []byte(hashPrefix)) {
		return "", "", errors.New(`the line does not end with a "hash" member`)
	}
	hash = string(line[len(line)-hashFieldLen+len(hashPrefix) : len(line)-len(hashSuffix)])
	if !wire.IsLowerHex(hash, 64) {
		return "", "", errors.New("the hash is not 64 lowercase hex characters")
	}
	body := make([]byte, 0, len(line)-hashFieldLen+1)
	body = append(body, line[:len(line)-hashFieldLen]...)
	body = append(body, '}')
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return "", "", fmt.Errorf("the line is not a JSON object: %v", err)
	}
	if _, dup := fields["hash"]; dup {
		return "", "", errors.New(`the line has a second "hash" member`)
	}
	if err := json.Unmarshal(fields["prev"], &prev); err != nil || !wire.IsLowerHex(prev, 64) {
		return "", "", errors.New(`the line has no valid "prev" member`)
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != hash {
		return "", "", errors.New("the hash does not match the line's content: the line was changed after it was written")
	}
	return hash, prev, nil
}

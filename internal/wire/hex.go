package wire

// KIDLength is the length of a key id (§2): the first 8 bytes of the
// key's SHA-256 as lowercase hex.
const KIDLength = 16

// IsKID reports whether s has the form of a key id: KIDLength lowercase
// hex digits. Every reader of a kid (the request parser, the audit
// aggregation, the session-state seal) checks the same form with it.
func IsKID(s string) bool { return IsLowerHex(s, KIDLength) }

// IsLowerHex reports whether s is exactly n lowercase hex digits, the form
// the protocol and the audit chain write hashes and key ids in.
func IsLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !IsLowerHexDigit(s[i]) {
			return false
		}
	}
	return true
}

// IsLowerHexDigit reports whether c is 0-9 or a-f.
func IsLowerHexDigit(c byte) bool { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') }

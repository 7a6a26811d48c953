package devbus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// validateSAS checks a shared access signature the way Service Bus does:
// the key name is known, the expiry is in the future, the signature is the
// HMAC-SHA256 of the URL-encoded resource and the expiry under the key, and
// the resource covers the audience the token is put for. It returns the
// entity path the token authorizes ("" for the whole namespace) and when
// the authorization ends. Errors never contain the token or the key.
func (s *Server) validateSAS(token, audience string, now time.Time) (string, time.Time, error) {
	rest, ok := strings.CutPrefix(token, "SharedAccessSignature ")
	if !ok {
		return "", time.Time{}, errors.New("the token is not a shared access signature (it must start with \"SharedAccessSignature \")")
	}
	var sr, sig, se, skn string
	for part := range strings.SplitSeq(rest, "&") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "sr":
			sr = v
		case "sig":
			sig = v
		case "se":
			se = v
		case "skn":
			skn = v
		}
	}
	if sr == "" || sig == "" || se == "" || skn == "" {
		return "", time.Time{}, errors.New("the shared access signature lacks one of sr, sig, se, skn")
	}
	if skn != s.keyName {
		return "", time.Time{}, fmt.Errorf("the key name %q is not known to this namespace", skn)
	}
	exp, err := strconv.ParseInt(se, 10, 64)
	if err != nil {
		return "", time.Time{}, errors.New("the expiry (se) of the shared access signature is not a number")
	}
	expires := time.Unix(exp, 0)
	if !now.Before(expires) {
		return "", time.Time{}, fmt.Errorf("the shared access signature expired at %s", expires.UTC().Format(time.RFC3339))
	}
	rawSig, err := url.QueryUnescape(sig)
	if err != nil {
		return "", time.Time{}, errors.New("the signature (sig) is not URL-encoded")
	}
	got, err := base64.StdEncoding.DecodeString(rawSig)
	if err != nil {
		return "", time.Time{}, errors.New("the signature (sig) is not base64")
	}
	mac := hmac.New(sha256.New, s.key.Bytes())
	mac.Write([]byte(sr + "\n" + se))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return "", time.Time{}, errors.New("the signature does not match: the token was not signed with this namespace's key")
	}
	resource, err := url.QueryUnescape(sr)
	if err != nil {
		return "", time.Time{}, errors.New("the resource (sr) is not URL-encoded")
	}
	res, aud := normalizeAudience(resource), normalizeAudience(audience)
	if aud != res && !strings.HasPrefix(aud, res+"/") {
		return "", time.Time{}, fmt.Errorf("the token's resource %q does not cover the audience %q", resource, audience)
	}
	_, path, _ := strings.Cut(aud, "/")
	return path, expires, nil
}

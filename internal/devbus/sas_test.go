package devbus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"wbagent/internal/secret"
)

// sign builds a token the way the Service Bus SDKs do: the lower-cased,
// URL-encoded resource and the expiry, signed with HMAC-SHA256.
func sign(key, keyName, resource string, expiry time.Time) string {
	sr := strings.ToLower(url.QueryEscape(resource))
	se := fmt.Sprint(expiry.Unix())
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(sr + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return fmt.Sprintf("SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s", sr, sig, se, keyName)
}

func TestValidateSAS(t *testing.T) {
	s := &Server{key: secret.FromString("k3y"), keyName: DefaultKeyName}
	now := time.Now()
	later := now.Add(time.Hour)
	const aud = "amqp://127.0.0.1:5672/Requests"
	cases := []struct {
		name, token, audience string
		path, err             string
	}{
		{"entity token", sign("k3y", DefaultKeyName, aud, later), aud, "requests", ""},
		{"management under entity token", sign("k3y", DefaultKeyName, aud, later), aud + "/$management", "requests/$management", ""},
		{"namespace token", sign("k3y", DefaultKeyName, "sb://127.0.0.1:5672", later), aud, "requests", ""},
		{"other entity", sign("k3y", DefaultKeyName, "amqp://127.0.0.1:5672/results", later), aud, "", "does not cover"},
		{"prefix is not a parent", sign("k3y", DefaultKeyName, "amqp://127.0.0.1:5672/req", later), aud, "", "does not cover"},
		{"wrong key", sign("other", DefaultKeyName, aud, later), aud, "", "signature does not match"},
		{"wrong key name", sign("k3y", "Listen", aud, later), aud, "", "key name"},
		{"expired", sign("k3y", DefaultKeyName, aud, now.Add(-time.Second)), aud, "", "expired"},
		{"not SAS", "Bearer abc", aud, "", "not a shared access signature"},
		{"missing fields", "SharedAccessSignature sr=a&se=1", aud, "", "lacks"},
		{"bad expiry", "SharedAccessSignature sr=a&sig=b&se=soon&skn=" + DefaultKeyName, aud, "", "not a number"},
	}
	for _, c := range cases {
		path, exp, err := s.validateSAS(c.token, c.audience, now)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "k3y") {
				t.Errorf("%s: the error shows the key", c.name)
			}
			continue
		}
		if err != nil || path != c.path || exp.Unix() != later.Unix() {
			t.Errorf("%s: %q %v %v, want %q", c.name, path, exp, err, c.path)
		}
	}
}

func TestClaimsCoverSubpaths(t *testing.T) {
	now := time.Now()
	c := &conn{claims: []claim{{path: "requests", expires: now.Add(time.Hour)}, {path: "old", expires: now}}}
	for path, want := range map[string]bool{
		"requests": true, "requests/$management": true, "requests/$deadletterqueue": true,
		"requestsx": false, "results": false, "old": false,
	} {
		if got := c.authorized(path, now); got != want {
			t.Errorf("authorized(%q) = %v", path, got)
		}
	}
}

package devbus

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // x5t is defined as a SHA-1 thumbprint
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"wbagent/internal/secret"
)

// ServiceBusAudience is the audience of Entra ID tokens for Service Bus,
// the resource of the scope https://servicebus.azure.net//.default.
const ServiceBusAudience = "https://servicebus.azure.net"

// DefaultEntraTokenLifetime is how long the stand-in's access tokens
// last unless EntraOptions.TokenLifetime says otherwise, about what Entra
// ID issues.
const DefaultEntraTokenLifetime = time.Hour

// Rights a token (or a shared access key) grants on an entity, as the
// Service Bus claims Listen and Send. Entra ID tokens of the stand-in
// carry them as roles.
const (
	RoleListen = "Listen"
	RoleSend   = "Send"
)

// jwtTokenType is the CBS token type of Entra ID access tokens.
const jwtTokenType = "jwt"

const entraSigningKeyFile = "entra-signing-key.pem"

// EntraOptions turn on the Entra ID stand-in: a token endpoint on the TLS
// listeners for one tenant, whose tokens CBS put-token accepts.
type EntraOptions struct {
	// Tenant is the directory (tenant) id clients name.
	Tenant string
	// Clients are the registered applications.
	Clients []EntraClient
	// TokenLifetime is how long access tokens last; DefaultEntraTokenLifetime
	// when zero. Short lifetimes show token refresh.
	TokenLifetime time.Duration
}

// EntraClient is an application registered with the stand-in, with its
// credential and its rights on every queue.
type EntraClient struct {
	// ID is the application (client) id.
	ID string
	// Secret is the client secret; nil when the client authenticates
	// with Certificate.
	Secret *secret.Secret
	// Certificate is the client's certificate, whose public key verifies
	// the client assertions it signs.
	Certificate *x509.Certificate
	// Listen and Send are the rights its tokens carry, as the roles
	// Azure Service Bus Data Receiver and Data Sender grant.
	Listen, Send bool
}

// rights are what a claim allows; SAS claims allow everything.
type rights uint8

const (
	rightListen rights = 1 << iota
	rightSend
	rightManage
	rightsAll = rightListen | rightSend | rightManage
)

func (r rights) String() string {
	var names []string
	if r&rightListen != 0 {
		names = append(names, RoleListen)
	}
	if r&rightSend != 0 {
		names = append(names, RoleSend)
	}
	if r&rightManage != 0 {
		names = append(names, "Manage")
	}
	return strings.Join(names, ",")
}

// entraIdP is the Entra ID stand-in.
type entraIdP struct {
	srv      *Server
	tenant   string
	clients  map[string]*entraClient // by lower-case id
	lifetime time.Duration
	key      *rsa.PrivateKey
	kid      string
	// issued counts tokens issued per client id; srv.mu.
	issued map[string]int
}

type entraClient struct {
	EntraClient
	oid        string
	thumbSHA1  []byte
	thumbS256  []byte
	certPubKey *rsa.PublicKey
}

// newEntra validates opts and loads (or creates) the signing key.
func newEntra(srv *Server, opts *EntraOptions, dir string) (*entraIdP, error) {
	if opts.Tenant == "" || strings.ContainsAny(opts.Tenant, "/?#% \t") {
		return nil, fmt.Errorf("entra tenant %q: give a tenant id of letters, digits, '-' and '.'", opts.Tenant)
	}
	e := &entraIdP{srv: srv, tenant: opts.Tenant, clients: map[string]*entraClient{}, lifetime: opts.TokenLifetime, issued: map[string]int{}}
	if e.lifetime <= 0 {
		e.lifetime = DefaultEntraTokenLifetime
	}
	for _, c := range opts.Clients {
		if c.ID == "" {
			return nil, errors.New("an entra client has no id: give every client an application id")
		}
		if (c.Secret == nil) == (c.Certificate == nil) {
			return nil, fmt.Errorf("entra client %s: give it either a secret or a certificate", c.ID)
		}
		key := strings.ToLower(c.ID)
		if _, dup := e.clients[key]; dup {
			return nil, fmt.Errorf("entra client %s is registered twice", c.ID)
		}
		ec := &entraClient{EntraClient: c,
			oid: uuid.NewSHA1(uuid.NameSpaceURL, []byte("devbus-entra:"+opts.Tenant+":"+key)).String()}
		if c.Certificate != nil {
			pub, ok := c.Certificate.PublicKey.(*rsa.PublicKey)
			if !ok {
				return nil, fmt.Errorf("entra client %s: the certificate's key is %T; Entra ID client assertions need an RSA key", c.ID, c.Certificate.PublicKey)
			}
			s1 := sha1.Sum(c.Certificate.Raw)
			s256 := sha256.Sum256(c.Certificate.Raw)
			ec.thumbSHA1, ec.thumbS256, ec.certPubKey = s1[:], s256[:], pub
		}
		e.clients[key] = ec
	}
	var err error
	if e.key, err = loadOrCreateSigningKey(dir); err != nil {
		return nil, err
	}
	der, _ := x509.MarshalPKIXPublicKey(&e.key.PublicKey)
	sum := sha256.Sum256(der)
	e.kid = base64.RawURLEncoding.EncodeToString(sum[:12])
	return e, nil
}

// loadOrCreateSigningKey keeps the token signing key in dir, so tokens
// stay valid across a restart of devbus; an empty dir keeps it in memory.
func loadOrCreateSigningKey(dir string) (*rsa.PrivateKey, error) {
	path := filepath.Join(dir, entraSigningKeyFile)
	if dir != "" {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			blk, _ := pem.Decode(b)
			if blk == nil {
				return nil, fmt.Errorf("%s holds no PEM key; delete it to have devbus create a new one", path)
			}
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			rk, ok := k.(*rsa.PrivateKey)
			if err != nil || !ok {
				return nil, fmt.Errorf("%s is not an RSA key; delete it to have devbus create a new one", path)
			}
			return rk, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("read the token signing key: %w", err)
		}
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate the token signing key: %w", err)
	}
	if dir != "" {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("encode the token signing key: %w", err)
		}
		if err := writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// register adds the stand-in's endpoints to mux. Paths are those of
// https://login.microsoftonline.com.
func (e *entraIdP) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", e.openIDConfiguration)
	mux.HandleFunc("GET /{tenant}/.well-known/openid-configuration", e.openIDConfiguration)
	mux.HandleFunc("GET /common/discovery/instance", e.instanceDiscovery)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", e.keys)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", e.token)
}

// knownHost reports whether host (from a request or a URL) names one of
// the TLS listeners by a loopback name: the names its certificate holds.
func (e *entraIdP) knownHost(host string) bool {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return false
	}
	if !slices.Contains(serverNames, strings.ToLower(strings.Trim(h, "[]"))) {
		return false
	}
	for _, ln := range []net.Listener{e.srv.tlsLn, e.srv.wsLn} {
		if ln != nil && portOf(ln) == port {
			return true
		}
	}
	return false
}

// base is the authority URL a request reached, "https://HOST:PORT".
func (e *entraIdP) base(r *http.Request) (string, bool) {
	if !e.knownHost(r.Host) {
		return "", false
	}
	return "https://" + strings.ToLower(r.Host), true
}

func (e *entraIdP) issuer(base string) string { return base + "/" + e.tenant + "/v2.0" }

// AuthorityHost is the URL azidentity takes as
// ClientOptions.Cloud.ActiveDirectoryAuthorityHost for the stand-in:
// https://localhost:PORT/ of the TLS listener (or of the WebSocket one
// when there is no TLS listener); empty without Options.Entra.
func (s *Server) AuthorityHost() string {
	if s.entra == nil {
		return ""
	}
	ln := s.tlsLn
	if ln == nil {
		ln = s.wsLn
	}
	return "https://localhost:" + portOf(ln) + "/"
}

// EntraTokensIssued counts the access tokens the stand-in issued to a
// client, so a test can see a credential refresh its token.
func (s *Server) EntraTokensIssued(clientID string) int {
	if s.entra == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.entra.clients[strings.ToLower(clientID)]; c != nil {
		return s.entra.issued[c.ID]
	}
	return 0
}

// EntraObjectID is the object id (oid) of a registered client's service
// principal, as its tokens carry it; empty for an unknown client.
func (s *Server) EntraObjectID(clientID string) string {
	if s.entra == nil {
		return ""
	}
	if c := s.entra.clients[strings.ToLower(clientID)]; c != nil {
		return c.oid
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// oauthError answers as Entra ID does: an OAuth error with the AADSTS
// code first in the description and in error_codes.
func (e *entraIdP) oauthError(w http.ResponseWriter, status int, oauthErr string, code int, format string, args ...any) {
	now := time.Now().UTC()
	trace, corr := uuid.NewString(), uuid.NewString()
	desc := fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
		code, fmt.Sprintf(format, args...), trace, corr, now.Format("2006-01-02 15:04:05Z"))
	e.srv.log.Info("entra token request refused", zap.String("error", oauthErr), zap.Int("aadsts", code))
	writeJSON(w, status, map[string]any{
		"error": oauthErr, "error_description": desc, "error_codes": []int{code},
		"timestamp": now.Format("2006-01-02 15:04:05Z"), "trace_id": trace, "correlation_id": corr,
		"error_uri": fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", code),
	})
}

func (e *entraIdP) tenantOK(w http.ResponseWriter, r *http.Request) (string, bool) {
	base, ok := e.base(r)
	if !ok {
		e.oauthError(w, http.StatusBadRequest, "invalid_request", 50049,
			"Unknown or invalid instance %q: reach the stand-in as localhost, 127.0.0.1 or [::1] on a devbus TLS port.", r.Host)
		return "", false
	}
	if t := r.PathValue("tenant"); !strings.EqualFold(t, e.tenant) {
		e.oauthError(w, http.StatusBadRequest, "invalid_request", 90002,
			"Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", t)
		return "", false
	}
	return base, true
}

func (e *entraIdP) openIDConfiguration(w http.ResponseWriter, r *http.Request) {
	base, ok := e.tenantOK(w, r)
	if !ok {
		return
	}
	t := base + "/" + e.tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                e.issuer(base),
		"token_endpoint":                        t + "/oauth2/v2.0/token",
		"authorization_endpoint":                t + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         t + "/oauth2/v2.0/devicecode",
		"jwks_uri":                              t + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "devbus.local",
	})
}

// instanceDiscovery answers MSAL's instance discovery with the stand-in
// as its own only alias (MSAL asks only when instance discovery is on).
func (e *entraIdP) instanceDiscovery(w http.ResponseWriter, r *http.Request) {
	base, ok := e.base(r)
	if !ok {
		e.oauthError(w, http.StatusBadRequest, "invalid_instance", 50049, "Unknown or invalid instance %q.", r.Host)
		return
	}
	host := strings.TrimPrefix(base, "https://")
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": base + "/" + e.tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host, "preferred_cache": host, "aliases": []string{host},
		}},
	})
}

// keys publishes the token signing key (JWKS), so that anyone can verify
// the stand-in's tokens as Entra ID's.
func (e *entraIdP) keys(w http.ResponseWriter, r *http.Request) {
	if _, ok := e.tenantOK(w, r); !ok {
		return
	}
	pub := e.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
		"kty": "RSA", "use": "sig", "kid": e.kid, "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// token is the v2.0 token endpoint: the client credentials grant with a
// client secret or a certificate client assertion, for the Service Bus
// scope.
func (e *entraIdP) token(w http.ResponseWriter, r *http.Request) {
	base, ok := e.tenantOK(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		e.oauthError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must be a form (application/x-www-form-urlencoded) of at most 64 KiB.")
		return
	}
	f := r.PostForm
	if g := f.Get("grant_type"); g != "client_credentials" {
		e.oauthError(w, http.StatusBadRequest, "unsupported_grant_type", 70003,
			"The app requested an unsupported grant type '%s'. The stand-in supports client_credentials.", g)
		return
	}
	id := f.Get("client_id")
	if id == "" {
		e.oauthError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	}
	c := e.clients[strings.ToLower(id)]
	if c == nil {
		e.oauthError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			"Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", id, e.tenant)
		return
	}
	now := time.Now()
	switch {
	case f.Has("client_secret"):
		if c.Secret == nil || subtle.ConstantTimeCompare([]byte(f.Get("client_secret")), c.Secret.Bytes()) != 1 {
			e.oauthError(w, http.StatusUnauthorized, "invalid_client", 7000215,
				"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", c.ID)
			return
		}
	case f.Has("client_assertion"):
		if t := f.Get("client_assertion_type"); t != clientAssertionType {
			e.oauthError(w, http.StatusBadRequest, "invalid_request", 700021,
				"Client assertion type '%s' is invalid; it must be '%s'.", t, clientAssertionType)
			return
		}
		if code, reason := e.checkAssertion(c, f.Get("client_assertion"), base, now); code != 0 {
			e.oauthError(w, http.StatusUnauthorized, "invalid_client", code, "%s", reason)
			return
		}
	default:
		e.oauthError(w, http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	if !servicebusScope(f.Get("scope")) {
		e.oauthError(w, http.StatusBadRequest, "invalid_scope", 1002012,
			"The provided value for scope '%s' is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier; the stand-in issues tokens for %s/.default only.", f.Get("scope"), ServiceBusAudience)
		return
	}
	tok, err := e.issue(c, base, now)
	if err != nil {
		e.srv.log.Error("issue an entra token", zap.Error(err))
		e.oauthError(w, http.StatusInternalServerError, "temporarily_unavailable", 50000, "There was an error issuing a token.")
		return
	}
	e.srv.mu.Lock()
	e.issued[c.ID]++
	e.srv.mu.Unlock()
	secs := int(e.lifetime / time.Second)
	e.srv.log.Info("entra token issued", zap.String("clientId", c.ID), zap.String("roles", c.rights().String()),
		zap.Duration("lifetime", e.lifetime))
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok,
	})
}

// servicebusScope reports whether a scope list asks for the Service Bus
// resource's default scope (the OpenID scopes MSAL may add aside).
func servicebusScope(scope string) bool {
	found := false
	for s := range strings.FieldsSeq(scope) {
		switch s {
		case ServiceBusAudience + "//.default", ServiceBusAudience + "/.default":
			found = true
		case "openid", "profile", "offline_access":
		default:
			return false
		}
	}
	return found
}

func (c *entraClient) rights() rights {
	var r rights
	if c.Listen {
		r |= rightListen
	}
	if c.Send {
		r |= rightSend
	}
	return r
}

// checkAssertion verifies a certificate client assertion as Entra ID
// does; it returns the AADSTS code and reason of a failure, or 0.
func (e *entraIdP) checkAssertion(c *entraClient, assertion, base string, now time.Time) (int, string) {
	if c.Certificate == nil {
		return 700027, fmt.Sprintf("Client assertion contains an invalid signature. [Reason - The key was not found. Application '%s' has no certificate registered: it authenticates with a client secret.]", c.ID)
	}
	p, err := parseJWT(assertion)
	if err != nil {
		return 700027, "Client assertion failed signature validation: " + err.Error() + "."
	}
	var thumb []byte
	var want []byte
	for _, h := range []string{"x5t#S256", "x5t"} {
		if v, ok := p.header[h].(string); ok {
			thumb = decodeB64(v)
			want = c.thumbS256
			if h == "x5t" {
				want = c.thumbSHA1
			}
			break
		}
	}
	if thumb == nil {
		return 700027, "Client assertion contains an invalid signature. [Reason - The assertion has neither an x5t nor an x5t#S256 header naming the certificate.]"
	}
	if subtle.ConstantTimeCompare(thumb, want) != 1 {
		return 700027, fmt.Sprintf("Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '%X', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'.]", thumb, c.ID)
	}
	if now.After(c.Certificate.NotAfter) {
		return 700027, fmt.Sprintf("Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '%X', Found key 'Start=%s, End=%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'.]",
			thumb, c.Certificate.NotBefore.UTC().Format("01/02/2006 15:04:05"), c.Certificate.NotAfter.UTC().Format("01/02/2006 15:04:05"), c.ID)
	}
	if now.Before(c.Certificate.NotBefore) {
		return 700027, fmt.Sprintf("Client assertion contains an invalid signature. [Reason - The key is not yet valid; it starts %s.]", c.Certificate.NotBefore.UTC().Format(time.RFC3339))
	}
	if err := p.verify(c.certPubKey); err != nil {
		return 700027, "Client assertion contains an invalid signature. [Reason - " + err.Error() + " with the registered certificate's key.]"
	}
	if p.str("iss") != c.ID || p.str("sub") != c.ID {
		return 700021, fmt.Sprintf("Client assertion application identifier doesn't match 'client_id' parameter: iss and sub must both be '%s'.", c.ID)
	}
	auds := p.strs("aud")
	audOK := false
	for _, a := range auds {
		u, err := url.Parse(a)
		if err == nil && u.Scheme == "https" && e.knownHost(u.Host) && strings.EqualFold(strings.TrimSuffix(u.Path, "/"), "/"+e.tenant+"/oauth2/v2.0/token") {
			audOK = true
		}
	}
	if !audOK {
		return 700212, fmt.Sprintf("No matching federated identity record found for presented assertion audience %q: the audience must be the token endpoint %s/%s/oauth2/v2.0/token.", strings.Join(auds, " "), base, e.tenant)
	}
	exp, okExp := p.num("exp")
	if !okExp || now.Unix() >= exp {
		return 700024, "Client assertion is not within its valid time range: it has expired or has no exp claim."
	}
	if nbf, ok := p.num("nbf"); ok && now.Add(5*time.Minute).Unix() < nbf {
		return 700024, "Client assertion is not within its valid time range: its nbf is in the future."
	}
	return 0, ""
}

// decodeB64 reads base64 in any of its alphabets (MSAL writes x5t#S256
// in the standard one, RFC 7515 asks for base64url).
func decodeB64(s string) []byte {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return []byte{}
}

// issue signs an access token for Service Bus for client c.
func (e *entraIdP) issue(c *entraClient, base string, now time.Time) (string, error) {
	var roles []string
	if c.Listen {
		roles = append(roles, RoleListen)
	}
	if c.Send {
		roles = append(roles, RoleSend)
	}
	claims := map[string]any{
		"aud": ServiceBusAudience, "iss": e.issuer(base), "tid": e.tenant,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(e.lifetime).Unix(),
		"appid": c.ID, "azp": c.ID, "oid": c.oid, "sub": c.oid, "idtyp": "app", "ver": "2.0",
		"roles": roles, "uti": uuid.NewString(),
	}
	return signJWT(e.key, map[string]any{"typ": "JWT", "alg": "RS256", "kid": e.kid}, claims)
}

// validateJWT checks an access token put on $cbs: signed by the
// stand-in, unexpired, for Service Bus, from its issuer and tenant, for
// a registered client. It returns the entity path of the audience, when
// the authorization ends and the rights the token's roles grant. Errors
// never contain the token.
func (e *entraIdP) validateJWT(token, audience string, now time.Time) (string, time.Time, rights, error) {
	p, err := parseJWT(token)
	if err != nil {
		return "", time.Time{}, 0, err
	}
	if alg, _ := p.header["alg"].(string); alg != "RS256" {
		return "", time.Time{}, 0, fmt.Errorf("the token is signed with %q: Entra ID tokens are RS256", alg)
	}
	if kid, _ := p.header["kid"].(string); kid != e.kid || p.verify(&e.key.PublicKey) != nil {
		return "", time.Time{}, 0, errors.New("the token was not signed by this namespace's Entra ID tenant")
	}
	if !slices.Contains(p.strs("aud"), ServiceBusAudience) && !slices.Contains(p.strs("aud"), ServiceBusAudience+"/") {
		return "", time.Time{}, 0, fmt.Errorf("the token's audience %q is not %s: ask for the scope %s//.default", strings.Join(p.strs("aud"), " "), ServiceBusAudience, ServiceBusAudience)
	}
	iss, err := url.Parse(p.str("iss"))
	if err != nil || iss.Scheme != "https" || !e.knownHost(iss.Host) || iss.Path != "/"+e.tenant+"/v2.0" || p.str("tid") != e.tenant {
		return "", time.Time{}, 0, fmt.Errorf("the token's issuer %q or tenant is not this namespace's tenant %s", p.str("iss"), e.tenant)
	}
	exp, ok := p.num("exp")
	if !ok {
		return "", time.Time{}, 0, errors.New("the token has no expiry (exp)")
	}
	expires := time.Unix(exp, 0)
	if !now.Before(expires) {
		return "", time.Time{}, 0, fmt.Errorf("the token expired at %s", expires.UTC().Format(time.RFC3339))
	}
	if nbf, ok := p.num("nbf"); ok && now.Add(5*time.Minute).Before(time.Unix(nbf, 0)) {
		return "", time.Time{}, 0, errors.New("the token is not valid yet (nbf)")
	}
	c := e.clients[strings.ToLower(p.str("appid"))]
	if c == nil || p.str("oid") != c.oid {
		return "", time.Time{}, 0, fmt.Errorf("the token's application %q (object %q) is not registered in the tenant", p.str("appid"), p.str("oid"))
	}
	var r rights
	for _, role := range p.strs("roles") {
		switch role {
		case RoleListen:
			r |= rightListen
		case RoleSend:
			r |= rightSend
		}
	}
	aud := normalizeAudience(audience)
	_, path, _ := strings.Cut(aud, "/")
	return path, expires, r, nil
}

package directory

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"

	"wbagent/internal/config"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

func TestGUIDTextAndBytes(t *testing.T) {
	// protocol-v1 §4's example.
	stored, _ := hex.DecodeString("a29be33e355a3e4c944aaeb0a79c01d4")
	const text = "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"
	b, err := GUIDBytes(text)
	if err != nil || !bytes.Equal(b, stored) {
		t.Fatalf("GUIDBytes(%s) = %x, %v; want %x", text, b, err, stored)
	}
	if got := GUIDString(stored); got != text {
		t.Fatalf("GUIDString = %s, want %s", got, text)
	}
	if got, _ := GUIDBytes("{" + strings.ToUpper(text) + "}"); !bytes.Equal(got, stored) {
		t.Fatalf("braced upper-case GUID: %x", got)
	}
	for _, bad := range []string{"", "3ee39ba2", "3ee39ba2-5a35-4c3e-944a-aeb0a79c01dz", "3ee39ba25a354c3e944aaeb0a79c01d4xxxx",
		"3ee39ba2-5a35-4c3e-944a-aeb0a7-c01d4"} { // a fifth dash once dropped a byte silently
		if _, err := GUIDBytes(bad); err == nil {
			t.Errorf("GUIDBytes(%q) accepted", bad)
		}
	}
	if got := EscapeBinary(stored); got != `\a2\9b\e3\3e\35\5a\3e\4c\94\4a\ae\b0\a7\9c\01\d4` {
		t.Fatalf("EscapeBinary = %s", got)
	}
}

func TestImmutableID(t *testing.T) {
	b, err := ImmutableIDBytes("opvjPjVaPkyUSq6wp5wB1A==")
	if err != nil || GUIDString(b) != "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4" {
		t.Fatalf("ImmutableIDBytes = %x, %v", b, err)
	}
	if _, err := ImmutableIDBytes("AAAA"); err == nil {
		t.Fatal("3 bytes accepted")
	}
}

func TestTargetFilters(t *testing.T) {
	f, err := targetFilters(Target{UserPrincipalName: "a*)(b@x"})
	if err != nil || f[0] != "(&"+accountFilter+`(userPrincipalName=a\2a\29\28b@x))` {
		t.Fatalf("UPN filter %q %v", f, err)
	}
	f, _ = targetFilters(Target{ImmutableID: "opvjPjVaPkyUSq6wp5wB1A=="})
	if len(f) != 2 || !strings.Contains(f[0], "mS-DS-ConsistencyGuid=\\a2") || !strings.Contains(f[1], "objectGUID=\\a2") {
		t.Fatalf("immutableId filters %q", f)
	}
	for _, bad := range []Target{{}, {UserPrincipalName: "a", SAMAccountName: "b"}, {ObjectGUID: "nope"}} {
		if _, err := targetFilters(bad); err == nil {
			t.Errorf("target %+v accepted", bad)
		}
	}
}

func TestEncodePassword(t *testing.T) {
	pw := secret.FromString("Pässwörd-✓-Ωmega-2026-𝄞")
	b, err := encodePassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	want := utf16.Encode([]rune(`"Pässwörd-✓-Ωmega-2026-𝄞"`))
	if len(b) != 2*len(want) {
		t.Fatalf("length %d, want %d", len(b), 2*len(want))
	}
	for i, u := range want {
		if got := binary.LittleEndian.Uint16(b[2*i:]); got != u {
			t.Fatalf("unit %d = %04x, want %04x", i, got, u)
		}
	}
	for _, bad := range [][]byte{{}, {0xff, 0xfe}, []byte("a\x00b")} {
		if _, err := encodePassword(secret.New(bad)); err == nil {
			t.Errorf("password %q accepted", bad)
		}
	}
}

// The policy hints control's exact bytes: criticality TRUE must be 0xFF
// (Samba reads 0x01 as FALSE), value SEQUENCE { INTEGER 1 }.
func TestPolicyHintsBytes(t *testing.T) {
	for _, oid := range []string{OIDPolicyHints, OIDPolicyHintsDeprecated} {
		got := hex.EncodeToString(policyHints{oid: oid}.Encode().Bytes())
		want := "3023" + "0417" + hex.EncodeToString([]byte(oid)) + "0101ff" + "0405" + "3003020101"
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s", oid, got, want)
		}
	}
}

// Every row of the facts page's error table, and the transient classes.
func TestClassify(t *testing.T) {
	le := func(code uint16, msg string) error { return ldap.NewError(code, errors.New(msg)) }
	cases := []struct {
		name      string
		err       error
		code      string
		detail    string
		transient bool
		ad        string
	}{
		{"wrong old password", le(19, "00000056: Constraint violation - check_password_restrictions: the password is incorrect"), wire.CodeWrongOldPassword, "", false, "00000056"},
		{"too young", le(19, "0000052D: Constraint violation - check_password_restrictions: password is too young to change!"), wire.CodePasswordPolicy, wire.DetailTooYoung, false, "0000052D"},
		{"history", le(19, "0000052D: Constraint violation - check_password_restrictions: the password was already used (in history)!"), wire.CodePasswordPolicy, wire.DetailHistory, false, "0000052D"},
		{"too short", le(19, "0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal or longer than 7 characters!"), wire.CodePasswordPolicy, wire.DetailTooShort, false, "0000052D"},
		{"complexity", le(19, "0000052D: Constraint violation - check_password_restrictions: the password does not meet the complexity criteria!"), wire.CodePasswordPolicy, wire.DetailComplexity, false, "0000052D"},
		{"windows 52D", le(19, "0000052D: AtrErr: DSID-03191083, #1:\n\t0: 0000052D: DSID-03191083, problem 1005 (CONSTRAINT_ATT_TYPE), data 0, Att 9005a (unicodePwd)"), wire.CodePasswordPolicy, wire.DetailPolicy, false, "0000052D"},
		{"windows 52D as unwilling", le(53, "0000052D: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM), data 0"), wire.CodePasswordPolicy, wire.DetailPolicy, false, "0000052D"},
		{"locked", le(19, "00000775: Account locked out"), wire.CodeAccountLocked, "", false, "00000775"},
		{"no reset right", le(50, "insufficient access rights"), wire.CodeAccessDenied, "", false, ""},
		{"no write property", le(50, "00002098: Object CN=x has no write property access"), wire.CodeAccessDenied, "", false, "00002098"},
		{"windows access denied", le(50, "00000005: SecErr: DSID-031A11E5, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0"), wire.CodeAccessDenied, "", false, "00000005"},
		{"not over TLS", le(53, "00002077: SvcErr: DSID-03190F00, problem 5003 (WILL_NOT_PERFORM): encrypted connection required"), wire.CodeInternalError, "", false, "00002077"},
		{"confidentiality required", le(13, "confidentiality required"), wire.CodeInternalError, "", false, ""},
		{"bad pwdLastSet", le(80, "00000057: Only the value 0 or -1 can be set for pwdLastSet"), wire.CodeInternalError, "", false, "00000057"},
		{"modify on global catalog", le(53, "00002035: the global catalog is read only"), wire.CodeInternalError, "", false, "00002035"},
		{"critical control refused", errors.New("ldap: unexpected response: 24"), wire.CodePasswordPolicy, wire.DetailPolicy, false, ""},
		{"unavailable critical extension", le(12, "unavailable critical extension"), wire.CodePasswordPolicy, wire.DetailPolicy, false, ""},
		{"own bind refused", le(49, "80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 52e, v4563"), wire.CodeAccessDenied, "", false, "80090308"},
		{"object gone", le(32, "0000208D: NameErr: DSID-03100213, problem 2001 (NO_OBJECT)"), wire.CodeUserNotFound, "", false, "0000208D"},
		{"busy", le(51, "busy"), wire.CodeDirectoryUnavailable, "", true, ""},
		{"unavailable", le(52, "unavailable"), wire.CodeDirectoryUnavailable, "", true, ""},
		{"time limit", le(3, "time limit"), wire.CodeDirectoryUnavailable, "", true, ""},
		{"network", ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection closed")), wire.CodeDirectoryUnavailable, "", true, ""},
		{"client timeout", ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection timed out")), wire.CodeDirectoryUnavailable, "", true, ""},
		{"server down", le(ldap.LDAPResultServerDown, "down"), wire.CodeDirectoryUnavailable, "", true, ""},
		{"deadline", context.DeadlineExceeded, wire.CodeDirectoryUnavailable, "", true, ""},
		{"refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, wire.CodeDirectoryUnavailable, "", true, ""},
		{"connect wrapper", &connectError{stage: "tls", srv: "ldaps://x", err: errors.New("handshake")}, wire.CodeDirectoryUnavailable, "", true, ""},
		{"unknown", le(80, "something odd"), wire.CodeInternalError, "", false, ""},
		{"unknown constraint", le(19, "constraint"), wire.CodePasswordPolicy, wire.DetailPolicy, false, ""},
	}
	for _, c := range cases {
		o := Classify(fmt.Errorf("modify: %w", c.err))
		if o.Code != c.code || o.Detail != c.detail || o.Transient != c.transient || o.ADCode != c.ad {
			t.Errorf("%s: got (%s, %q, transient %v, ad %q), want (%s, %q, %v, %q)", c.name, o.Code, o.Detail, o.Transient, o.ADCode, c.code, c.detail, c.transient, c.ad)
		}
	}
	if o := Classify(nil); o.Code != wire.CodeOK {
		t.Fatalf("nil error: %s", o.Code)
	}
	for _, r := range Rules {
		if r.Why == "" || r.Code == "" {
			t.Errorf("rule %+v lacks a code or a reason", r)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	pw := secret.FromString("x")
	good := Domain{Name: "corp.example.test", Servers: []string{"ldaps://dc1"}, Bind: Bind{User: "svc@corp", Password: pw}}
	cases := map[string]func(o *Options){
		"no domains":        func(o *Options) { o.Domains = nil },
		"plain ldap":        func(o *Options) { o.Domains[0].Servers = []string{"ldap://dc1"} },
		"other scheme":      func(o *Options) { o.Domains[0].Servers = []string{"http://dc1"} },
		"no servers":        func(o *Options) { o.Domains[0].Servers = nil },
		"history mode":      func(o *Options) { o.HistoryOnReset = "sometimes" },
		"bind method":       func(o *Options) { o.Domains[0].Bind.Method = "ntlm" },
		"no password":       func(o *Options) { o.Domains[0].Bind.Password = nil },
		"kerberos, no tab":  func(o *Options) { o.Domains[0].Bind = Bind{Method: BindKerberos, User: "svc"} },
		"sspi off windows":  func(o *Options) { o.Domains[0].Bind = Bind{Method: BindSSPI} },
		"scope not a DN":    func(o *Options) { o.Scope.IncludeOUs = []string{"Staff"} },
		"base DN not a DN":  func(o *Options) { o.Domains[0].BaseDN = "corp" },
		"empty domain name": func(o *Options) { o.Domains[0].Name = "" },
		"no scope":          func(o *Options) { o.Scope.IncludeOUs = nil },
		"scope and entire":  func(o *Options) { o.Scope.EntireDomain = true },
		"unknown privilege": func(o *Options) { o.Scope.AllowPrivileged = []string{"Printer Operators"} },
		"discover, no CA":   func(o *Options) { o.Domains[0].Servers, o.Domains[0].Discover = nil, true },
		// The config owns these defaults: zero values are refused.
		"no timeout":       func(o *Options) { o.Timeout = 0 },
		"no pool size":     func(o *Options) { o.PoolSize = 0 },
		"no history":       func(o *Options) { o.HistoryOnReset = "" },
		"no dial timeout":  func(o *Options) { o.DialTimeout = 0 },
		"no idle check":    func(o *Options) { o.IdleCheck = 0 },
		"no discovery TTL": func(o *Options) { o.DiscoverTTL = 0 },
	}
	scope := Scope{IncludeOUs: []string{"OU=Staff,DC=corp,DC=example,DC=test"}}
	for name, mutate := range cases {
		o := Options{Domains: []Domain{good}, Scope: scope, HistoryOnReset: HistoryAuto, Timeout: 10 * time.Second, PoolSize: 4,
			DialTimeout: config.DirectoryDialTimeout, IdleCheck: config.DirectoryIdleCheck, DiscoverTTL: config.DirectoryDiscoverTTL}
		mutate(&o)
		if name == "sspi off windows" && sspiAvailable() == nil {
			continue
		}
		if _, err := New(o, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	o := Options{Domains: []Domain{good}, Scope: scope, HistoryOnReset: HistoryAuto, Timeout: 10 * time.Second, PoolSize: 4,
		DialTimeout: config.DirectoryDialTimeout, IdleCheck: config.DirectoryIdleCheck, DiscoverTTL: config.DirectoryDiscoverTTL}
	o.Domains[0].Servers = []string{"ldap://dc1"}
	o.Domains[0].TLS.StartTLS = true
	d, err := New(o, nil)
	if err != nil {
		t.Fatalf("ldap:// with StartTLS refused: %v", err)
	}
	d.Close()
	o = Options{Domains: []Domain{good}, Scope: Scope{EntireDomain: true, AllowPrivileged: []string{"print operators"}}, HistoryOnReset: HistoryAuto, Timeout: 10 * time.Second, PoolSize: 4,
		DialTimeout: config.DirectoryDialTimeout, IdleCheck: config.DirectoryIdleCheck, DiscoverTTL: config.DirectoryDiscoverTTL}
	o.Domains[0].Servers, o.Domains[0].Discover, o.Domains[0].TLS.CAFile = nil, true, "/etc/wbagent/ca.pem"
	d, err = New(o, nil)
	if err != nil {
		t.Fatalf("entire domain, an allowance and discovery with a CA refused: %v", err)
	}
	d.Close()
	if s, _ := parseServer("ldaps://dc1", false); s.port != "636" || !s.ldaps {
		t.Fatalf("default LDAPS port: %+v", s)
	}
}

type fakeResolver struct {
	srvs []*net.SRV
	err  error
}

func (f fakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	if service != "ldap" || proto != "tcp" || !strings.HasPrefix(name, "dc._msdcs.") {
		return "", nil, fmt.Errorf("unexpected lookup %s %s %s", service, proto, name)
	}
	return "", f.srvs, f.err
}

func (f fakeResolver) LookupHost(context.Context, string) ([]string, error) {
	return []string{"127.0.0.1"}, nil
}

func TestDiscoverOrder(t *testing.T) {
	r := fakeResolver{srvs: []*net.SRV{
		{Target: "dc3.corp.example.test.", Port: 389, Priority: 10, Weight: 100},
		{Target: "dc1.corp.example.test.", Port: 389, Priority: 0, Weight: 10},
		{Target: "dc2.corp.example.test.", Port: 389, Priority: 0, Weight: 50},
	}}
	urls, err := discoverServers(context.Background(), r, &Domain{Name: "corp.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	want := "ldaps://dc2.corp.example.test:636 ldaps://dc1.corp.example.test:636 ldaps://dc3.corp.example.test:636"
	if strings.Join(urls, " ") != want {
		t.Fatalf("got %v", urls)
	}
	urls, _ = discoverServers(context.Background(), r, &Domain{Name: "corp.example.test", TLS: TLS{StartTLS: true}})
	if urls[0] != "ldap://dc2.corp.example.test:389" {
		t.Fatalf("StartTLS discovery: %v", urls)
	}
	if _, err := discoverServers(context.Background(), fakeResolver{}, &Domain{Name: "x"}); err == nil {
		t.Fatal("empty SRV answer accepted")
	}
}

// SRV targets outside the domain's DNS name are refused unless they are
// configured servers: whoever answers DNS must not choose the DC.
func TestDiscoverRefusesForeignTargets(t *testing.T) {
	r := fakeResolver{srvs: []*net.SRV{
		{Target: "dc1.evil.example.", Port: 389, Priority: 0, Weight: 100},
		{Target: "dc1.corp.example.test.evil.example.", Port: 389, Priority: 0, Weight: 90},
		{Target: "xcorp.example.test.", Port: 389, Priority: 0, Weight: 80},
		{Target: "DC2.Corp.Example.Test.", Port: 389, Priority: 1, Weight: 10},
		{Target: "corp.example.test.", Port: 389, Priority: 2, Weight: 10},
		{Target: "dc9.branch.example.", Port: 389, Priority: 3, Weight: 10},
	}}
	d := &Domain{Name: "corp.example.test", Servers: []string{"ldaps://dc9.branch.example:636"}}
	urls, rejected, err := discoverTrusted(context.Background(), r, d)
	if err != nil {
		t.Fatal(err)
	}
	want := "ldaps://DC2.Corp.Example.Test:636 ldaps://corp.example.test:636 ldaps://dc9.branch.example:636"
	if strings.Join(urls, " ") != want {
		t.Fatalf("kept %v, want %s", urls, want)
	}
	if strings.Join(rejected, " ") != "dc1.evil.example dc1.corp.example.test.evil.example xcorp.example.test" {
		t.Fatalf("rejected %v", rejected)
	}
	only := fakeResolver{srvs: r.srvs[:1]}
	_, err = discoverServers(context.Background(), only, &Domain{Name: "corp.example.test"})
	if err == nil || !strings.Contains(err.Error(), "dc1.evil.example") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("only foreign targets: %v", err)
	}
}

// sd builds a self-relative security descriptor whose DACL holds aces.
func sd(aces ...[]byte) []byte {
	var acl []byte
	for _, a := range aces {
		acl = append(acl, a...)
	}
	head := make([]byte, 20)
	head[0] = 1
	binary.LittleEndian.PutUint32(head[16:], 20)
	aclHead := make([]byte, 8)
	aclHead[0] = 4
	binary.LittleEndian.PutUint16(aclHead[2:], uint16(8+len(acl)))
	binary.LittleEndian.PutUint16(aclHead[4:], uint16(len(aces)))
	return append(append(head, aclHead...), acl...)
}

func sidBytes(rid uint32) []byte {
	b := []byte{1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[24:], rid)
	return b
}

func objectACE(typ, flags byte, mask uint32, objType, inherited string, sid []byte) []byte {
	var body []byte
	body = binary.LittleEndian.AppendUint32(body, mask)
	var of uint32
	var guids []byte
	if objType != "" {
		of |= aceObjectTypePresent
		g, _ := GUIDBytes(objType)
		guids = append(guids, g...)
	}
	if inherited != "" {
		of |= aceInheritedObjectTypePresent
		g, _ := GUIDBytes(inherited)
		guids = append(guids, g...)
	}
	body = binary.LittleEndian.AppendUint32(body, of)
	body = append(append(body, guids...), sid...)
	h := []byte{typ, flags, 0, 0}
	binary.LittleEndian.PutUint16(h[2:], uint16(4+len(body)))
	return append(h, body...)
}

func TestRightsFromDACL(t *testing.T) {
	svc := sidBytes(1105)
	other := sidBytes(1106)
	sids := map[string]bool{sidString(svc): true}
	const ciio = 0x0a
	full := sd(
		objectACE(aceAllowedObject, ciio, rightControlAccess, guidResetPassword, guidUserClass, svc),
		objectACE(aceAllowedObject, ciio, rightWriteProperty, guidLockoutTime, guidUserClass, svc),
		objectACE(aceAllowedObject, ciio, rightWriteProperty, guidAcctRestriction, guidUserClass, svc),
	)
	aces, err := parseDACL(full)
	if err != nil || len(aces) != 3 {
		t.Fatalf("parse: %v %d", err, len(aces))
	}
	if aces[0].sid != "S-1-5-21-1-2-3-1105" {
		t.Fatalf("sid %s", aces[0].sid)
	}
	for _, w := range writebackRights {
		if !grantedToUsers(aces, sids, w) {
			t.Errorf("%s not granted", w.name)
		}
	}
	cases := map[string][]byte{
		"other trustee":          objectACE(aceAllowedObject, ciio, rightControlAccess, guidResetPassword, guidUserClass, other),
		"not inherited":          objectACE(aceAllowedObject, 0, rightControlAccess, guidResetPassword, guidUserClass, svc),
		"for computers only":     objectACE(aceAllowedObject, ciio, rightControlAccess, guidResetPassword, "bf967a86-0de6-11d0-a285-00aa003049e2", svc),
		"another extended right": objectACE(aceAllowedObject, ciio, rightControlAccess, "ab721a53-1e2f-11d0-9819-00aa0040529b", guidUserClass, svc),
	}
	for name, a := range cases {
		aces, err := parseDACL(sd(a))
		if err != nil {
			t.Fatal(err)
		}
		if grantedToUsers(aces, sids, writebackRights[0]) {
			t.Errorf("%s: reset password granted", name)
		}
	}
	// All extended rights, or full control, include Reset Password; a deny
	// wins.
	aces, _ = parseDACL(sd(objectACE(aceAllowedObject, ciio, rightControlAccess, "", guidUserClass, svc)))
	if !grantedToUsers(aces, sids, writebackRights[0]) {
		t.Error("all extended rights do not include reset password")
	}
	aces, _ = parseDACL(sd(objectACE(aceAllowedObject, ciio, rightGenericAll, "", "", svc),
		objectACE(aceDeniedObject, ciio, rightControlAccess, guidResetPassword, "", svc)))
	if grantedToUsers(aces, sids, writebackRights[0]) {
		t.Error("deny ignored")
	}
	if _, err := parseDACL([]byte{1, 2, 3}); err == nil {
		t.Error("short descriptor parsed")
	}
	bad := sd(objectACE(aceAllowedObject, ciio, rightControlAccess, guidResetPassword, guidUserClass, svc))
	if _, err := parseDACL(bad[:len(bad)-6]); err == nil {
		t.Error("truncated ACE parsed")
	}
}

func TestSIDHelpers(t *testing.T) {
	user := sidBytes(1105)
	g, err := sidWithRID(user, 512)
	if err != nil || sidString(g) != "S-1-5-21-1-2-3-512" || sidString(user) != "S-1-5-21-1-2-3-1105" {
		t.Fatalf("sidWithRID: %s %v", sidString(g), err)
	}
	if _, err := sidWithRID([]byte{1, 9, 0}, 1); err == nil {
		t.Fatal("malformed SID accepted")
	}
}

func TestIndeterminateOnlyWhenTheAnswerIsLost(t *testing.T) {
	lost := &sentError{err: ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection closed")), sent: true, dc: "ldaps://dc1"}
	if o := outcomeOf(lost); !o.Indeterminate || o.Code != wire.CodeDirectoryUnavailable || !o.Transient || o.DC != "ldaps://dc1" {
		t.Fatalf("lost answer: %+v", o)
	}
	busy := &sentError{err: ldap.NewError(ldap.LDAPResultBusy, errors.New("busy")), sent: true}
	if o := outcomeOf(busy); o.Indeterminate || o.Code != wire.CodeDirectoryUnavailable || !o.Transient {
		t.Fatalf("busy: %+v", o)
	}
	before := &sentError{err: ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection closed")), sent: false}
	if o := outcomeOf(before); o.Indeterminate || !o.Transient {
		t.Fatalf("lost before the write: %+v", o)
	}
}

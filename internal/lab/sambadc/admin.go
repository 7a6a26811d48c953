package sambadc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"

	"wbagent/internal/protocol"
	"wbagent/internal/secret"
)

// dialAdmin opens a new LDAPS connection bound as Administrator.
func (dc *DC) dialAdmin() (*ldap.Conn, error) {
	conn, err := ldap.DialURL(dc.LDAPSURL(), ldap.DialWithTLSConfig(dc.TLSConfig()),
		ldap.DialWithDialer(dialer()))
	if err != nil {
		return nil, err
	}
	conn.SetTimeout(30 * time.Second)
	if err := conn.Bind(dc.AdminUPN(), dc.adminPass.Reveal()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("bind as Administrator: %w", err)
	}
	return conn, nil
}

// withAdmin runs f on the shared Administrator connection, redialling once
// when the connection has died (after Kill and Restart).
func (dc *DC) withAdmin(ctx context.Context, f func(*ldap.Conn) error) error {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.stopped {
		return errStopped
	}
	for attempt := 0; ; attempt++ {
		if dc.admin == nil || dc.admin.IsClosing() {
			c, err := dc.dialAdmin()
			if err != nil {
				return err
			}
			dc.admin = c
		}
		c := dc.admin
		stop := context.AfterFunc(ctx, func() { c.Close() })
		err := f(c)
		stop()
		if err == nil || attempt > 0 || !ldap.IsErrorWithCode(err, ldap.ErrorNetwork) || ctx.Err() != nil {
			return err
		}
		dc.admin.Close()
		dc.admin = nil
	}
}

// CreateOU creates OU=name under parent (the domain root when empty) and
// returns its DN.
func (dc *DC) CreateOU(ctx context.Context, name, parent string) (string, error) {
	if parent == "" {
		parent = dc.BaseDN()
	}
	dn := "OU=" + ldap.EscapeDN(name) + "," + parent
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"top", "organizationalUnit"})
	req.Attribute("ou", []string{name})
	if err := dc.add(ctx, "OU", req); err != nil {
		return "", err
	}
	return dn, nil
}

// UserSpec describes a user to create.
type UserSpec struct {
	// Name is the sAMAccountName and the CN.
	Name string
	// OU is the parent DN; default CN=Users of the domain.
	OU string
	// Password is the initial password; nil creates the account without
	// one (and therefore disabled, as AD requires).
	Password *secret.Secret
	// UPN defaults to Name@realm; "-" leaves it unset.
	UPN string
	// Disabled creates the account disabled.
	Disabled bool
	// Attrs are extra attributes to set on creation.
	Attrs map[string][]string
}

// User is a created account.
type User struct {
	DN             string
	SAMAccountName string
	UPN            string
	// ObjectGUID in the text form Windows prints (protocol-v1 §4).
	ObjectGUID string
	// GUIDBytes are objectGUID's 16 stored bytes.
	GUIDBytes []byte
}

// CreateUser adds a user account and returns it with its objectGUID.
func (dc *DC) CreateUser(ctx context.Context, u UserSpec) (*User, error) {
	if u.Name == "" {
		return nil, errors.New("create user: name is empty")
	}
	parent := u.OU
	if parent == "" {
		parent = "CN=Users," + dc.BaseDN()
	}
	upn := u.UPN
	switch upn {
	case "":
		upn = u.Name + "@" + dc.realm
	case "-":
		upn = ""
	}
	dn := "CN=" + ldap.EscapeDN(u.Name) + "," + parent
	uac := 512 // NORMAL_ACCOUNT
	if u.Disabled || u.Password == nil {
		uac |= 2 // ACCOUNTDISABLE
	}
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
	req.Attribute("sAMAccountName", []string{u.Name})
	if upn != "" {
		req.Attribute("userPrincipalName", []string{upn})
	}
	if u.Password != nil {
		req.Attribute("unicodePwd", []string{string(EncodePassword(u.Password))})
	}
	req.Attribute("userAccountControl", []string{strconv.Itoa(uac)})
	for k, v := range u.Attrs {
		req.Attribute(k, v)
	}
	guid, raw, err := dc.addWithGUID(ctx, "user", req)
	if err != nil {
		return nil, err
	}
	return &User{DN: dn, SAMAccountName: u.Name, UPN: upn, ObjectGUID: protocol.GUIDString(guid), GUIDBytes: raw}, nil
}

// add creates the entry req describes, as Administrator; what names the
// kind of object in errors.
func (dc *DC) add(ctx context.Context, what string, req *ldap.AddRequest) error {
	if err := dc.withAdmin(ctx, func(c *ldap.Conn) error { return c.Add(req) }); err != nil {
		return fmt.Errorf("create %s %s: %w", what, req.DN, err)
	}
	return nil
}

// addWithGUID adds the entry req describes and reads back the objectGUID
// the DC gave it, the value a request names its target by; what names the
// kind of object in errors.
func (dc *DC) addWithGUID(ctx context.Context, what string, req *ldap.AddRequest) (guid [16]byte, raw []byte, err error) {
	dn := req.DN
	if err := dc.add(ctx, what, req); err != nil {
		return guid, nil, err
	}
	e, err := dc.Entry(ctx, dn, "objectGUID")
	if err != nil {
		return guid, nil, err
	}
	raw = e.GetRawAttributeValue("objectGUID")
	if len(raw) != len(guid) {
		return guid, nil, fmt.Errorf("create %s %s: objectGUID has %d bytes, want 16", what, dn, len(raw))
	}
	copy(guid[:], raw)
	return guid, raw, nil
}

// CreateGroup adds a global security group named name under parent (CN=Users
// when empty) and returns its DN.
func (dc *DC) CreateGroup(ctx context.Context, name, parent string) (string, error) {
	if parent == "" {
		parent = "CN=Users," + dc.BaseDN()
	}
	dn := "CN=" + ldap.EscapeDN(name) + "," + parent
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"top", "group"})
	req.Attribute("sAMAccountName", []string{name})
	if err := dc.add(ctx, "group", req); err != nil {
		return "", err
	}
	return dn, nil
}

// AddMember adds memberDN (a user or a group) to groupDN.
func (dc *DC) AddMember(ctx context.Context, groupDN, memberDN string) error {
	req := ldap.NewModifyRequest(groupDN, nil)
	req.Add("member", []string{memberDN})
	if err := dc.withAdmin(ctx, func(c *ldap.Conn) error { return c.Modify(req) }); err != nil {
		return fmt.Errorf("add %s to %s: %w", memberDN, groupDN, err)
	}
	return nil
}

// SetAdminCount writes adminCount, as AdminSDHolder does for protected
// accounts.
func (dc *DC) SetAdminCount(ctx context.Context, dn string, v int) error {
	return dc.Modify(ctx, dn, "adminCount", strconv.Itoa(v))
}

// Modify replaces attr on dn with values (no values deletes it) as
// Administrator.
func (dc *DC) Modify(ctx context.Context, dn, attr string, values ...string) error {
	req := ldap.NewModifyRequest(dn, nil)
	req.Replace(attr, values)
	if err := dc.withAdmin(ctx, func(c *ldap.Conn) error { return c.Modify(req) }); err != nil {
		return fmt.Errorf("modify %s on %s: %w", attr, dn, err)
	}
	return nil
}

// Delete removes the object dn.
func (dc *DC) Delete(ctx context.Context, dn string) error {
	if err := dc.withAdmin(ctx, func(c *ldap.Conn) error { return c.Del(ldap.NewDelRequest(dn, nil)) }); err != nil {
		return fmt.Errorf("delete %s: %w", dn, err)
	}
	return nil
}

// Entry reads attrs of dn (a DN or "<GUID=...>") as Administrator.
func (dc *DC) Entry(ctx context.Context, dn string, attrs ...string) (*ldap.Entry, error) {
	var res *ldap.SearchResult
	err := dc.withAdmin(ctx, func(c *ldap.Conn) error {
		var err error
		res, err = c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", attrs, nil))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dn, err)
	}
	if len(res.Entries) != 1 {
		return nil, fmt.Errorf("read %s: %d entries", dn, len(res.Entries))
	}
	return res.Entries[0], nil
}

// Bind tries a simple bind as user (UPN or DN) with password over a new
// LDAPS connection, the way the user's own logon would check it.
func (dc *DC) Bind(ctx context.Context, user string, password *secret.Secret) error {
	conn, err := ldap.DialURL(dc.LDAPSURL(), ldap.DialWithTLSConfig(dc.TLSConfig()), ldap.DialWithDialer(dialer()))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", dc.LDAPSURL(), err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetTimeout(30 * time.Second)
	return conn.Bind(user, password.Reveal())
}

// BindCode binds as user and returns "" on success or the AD reason code of
// a failed bind (result 49, "data XXX"): 52e bad password, 775 locked, 533
// disabled, 773 must change, 701 expired account, 532 expired password.
// Other failures are errors.
func (dc *DC) BindCode(ctx context.Context, user string, password *secret.Secret) (string, error) {
	err := dc.Bind(ctx, user, password)
	if err == nil {
		return "", nil
	}
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode == ldap.LDAPResultInvalidCredentials {
		msg := le.Err.Error()
		if i := strings.Index(msg, "data "); i >= 0 {
			code := msg[i+5:]
			if j := strings.IndexAny(code, ", "); j >= 0 {
				code = code[:j]
			}
			return strings.ToLower(code), nil
		}
		return "49", nil
	}
	return "", err
}

// Lock locks user (a UPN or DN) out by failing binds until the DC reports
// the lockout. The domain (or the user's PSO) needs a lockout threshold:
// see SetPasswordPolicy.
func (dc *DC) Lock(ctx context.Context, user, dn string) error {
	wrong := secret.FromString("wrong-" + randomPassword())
	defer wrong.Destroy()
	for i := 0; i < 50; i++ {
		locked, err := dc.Locked(ctx, dn)
		if err != nil {
			return err
		}
		if locked {
			return nil
		}
		if _, err := dc.BindCode(ctx, user, wrong); err != nil {
			return fmt.Errorf("lock %s: %w", user, err)
		}
	}
	return fmt.Errorf("lock %s: still not locked after 50 bad binds: set a lockout threshold with SetPasswordPolicy", user)
}

// Locked reports whether the account dn is locked out
// (msDS-User-Account-Control-Computed bit 0x10).
func (dc *DC) Locked(ctx context.Context, dn string) (bool, error) {
	v, err := dc.computedUAC(ctx, dn)
	return v&0x10 != 0, err
}

// MustChange reports whether the account dn must change its password at
// next logon (msDS-User-Account-Control-Computed bit 0x800000).
func (dc *DC) MustChange(ctx context.Context, dn string) (bool, error) {
	v, err := dc.computedUAC(ctx, dn)
	return v&0x800000 != 0, err
}

func (dc *DC) computedUAC(ctx context.Context, dn string) (int64, error) {
	e, err := dc.Entry(ctx, dn, "msDS-User-Account-Control-Computed")
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(e.GetAttributeValue("msDS-User-Account-Control-Computed"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read msDS-User-Account-Control-Computed of %s: %w", dn, err)
	}
	return v, nil
}

// PasswordPolicy is the domain's password and lockout policy. Nil fields
// are left as they are.
type PasswordPolicy struct {
	MinLength        *int
	Complexity       *bool
	History          *int
	MinAge           *time.Duration
	MaxAge           *time.Duration // 0 means never expires
	LockoutThreshold *int
	LockoutDuration  *time.Duration
	LockoutWindow    *time.Duration
}

// Ptr returns a pointer to v, for PasswordPolicy and PSO fields.
func Ptr[T any](v T) *T { return &v }

// SetPasswordPolicy changes the domain's default password and lockout
// policy (the attributes samba-tool domain passwordsettings writes).
func (dc *DC) SetPasswordPolicy(ctx context.Context, p PasswordPolicy) error {
	req := ldap.NewModifyRequest(dc.BaseDN(), nil)
	replaceSet(req, "minPwdLength", p.MinLength, strconv.Itoa)
	replaceSet(req, "pwdHistoryLength", p.History, strconv.Itoa)
	replaceSet(req, "minPwdAge", p.MinAge, interval)
	replaceSet(req, "maxPwdAge", p.MaxAge, interval)
	replaceSet(req, "lockoutThreshold", p.LockoutThreshold, strconv.Itoa)
	replaceSet(req, "lockoutDuration", p.LockoutDuration, interval)
	replaceSet(req, "lockOutObservationWindow", p.LockoutWindow, interval)
	if p.Complexity != nil {
		e, err := dc.Entry(ctx, dc.BaseDN(), "pwdProperties")
		if err != nil {
			return err
		}
		props, _ := strconv.Atoi(e.GetAttributeValue("pwdProperties"))
		if *p.Complexity {
			props |= 1
		} else {
			props &^= 1
		}
		req.Replace("pwdProperties", []string{strconv.Itoa(props)})
	}
	if len(req.Changes) == 0 {
		return nil
	}
	if err := dc.withAdmin(ctx, func(c *ldap.Conn) error { return c.Modify(req) }); err != nil {
		return fmt.Errorf("set password policy: %w", err)
	}
	return nil
}

// replaceSet has req replace attr with v encoded by enc, unless v is nil:
// a PasswordPolicy field left nil leaves the domain's value as it is.
func replaceSet[T any](req *ldap.ModifyRequest, attr string, v *T, enc func(T) string) {
	if v != nil {
		req.Replace(attr, []string{enc(*v)})
	}
}

// interval encodes d as AD's negative 100-nanosecond count; 0 stays 0
// except for MaxAge where AD's "never" is the most negative value.
func interval(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return strconv.FormatInt(-int64(d/100), 10)
}

// PSO is a fine-grained password policy (msDS-PasswordSettings).
type PSO struct {
	Name             string
	Precedence       int
	MinLength        int
	Complexity       bool
	History          int
	MinAge           time.Duration
	MaxAge           time.Duration // 0: never expires
	LockoutThreshold int
	LockoutDuration  time.Duration // default 30 min
	LockoutWindow    time.Duration // default 30 min
	// AppliesTo are user or group DNs.
	AppliesTo []string
}

// CreatePSO adds a password settings object and returns its DN.
func (dc *DC) CreatePSO(ctx context.Context, p PSO) (string, error) {
	if p.Name == "" {
		return "", errors.New("create PSO: name is empty")
	}
	if p.Precedence == 0 {
		p.Precedence = 1
	}
	if p.LockoutDuration == 0 {
		p.LockoutDuration = 30 * time.Minute
	}
	if p.LockoutWindow == 0 {
		p.LockoutWindow = 30 * time.Minute
	}
	maxAge := "-9223372036854775808"
	if p.MaxAge != 0 {
		maxAge = interval(p.MaxAge)
	}
	dn := "CN=" + ldap.EscapeDN(p.Name) + ",CN=Password Settings Container,CN=System," + dc.BaseDN()
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"top", "msDS-PasswordSettings"})
	req.Attribute("msDS-PasswordSettingsPrecedence", []string{strconv.Itoa(p.Precedence)})
	req.Attribute("msDS-PasswordReversibleEncryptionEnabled", []string{"FALSE"})
	req.Attribute("msDS-PasswordHistoryLength", []string{strconv.Itoa(p.History)})
	req.Attribute("msDS-PasswordComplexityEnabled", []string{strings.ToUpper(strconv.FormatBool(p.Complexity))})
	req.Attribute("msDS-MinimumPasswordLength", []string{strconv.Itoa(p.MinLength)})
	req.Attribute("msDS-MinimumPasswordAge", []string{interval(p.MinAge)})
	req.Attribute("msDS-MaximumPasswordAge", []string{maxAge})
	req.Attribute("msDS-LockoutThreshold", []string{strconv.Itoa(p.LockoutThreshold)})
	req.Attribute("msDS-LockoutObservationWindow", []string{interval(p.LockoutWindow)})
	req.Attribute("msDS-LockoutDuration", []string{interval(p.LockoutDuration)})
	if len(p.AppliesTo) > 0 {
		req.Attribute("msDS-PSOAppliesTo", p.AppliesTo)
	}
	if err := dc.add(ctx, "PSO", req); err != nil {
		return "", err
	}
	return dn, nil
}

// ApplyPSO makes the password settings object pso apply to more users or
// groups (DNs), in addition to those it already names.
func (dc *DC) ApplyPSO(ctx context.Context, pso string, dns ...string) error {
	req := ldap.NewModifyRequest(pso, nil)
	req.Add("msDS-PSOAppliesTo", dns)
	if err := dc.withAdmin(ctx, func(c *ldap.Conn) error { return c.Modify(req) }); err != nil {
		return fmt.Errorf("apply PSO %s: %w", pso, err)
	}
	return nil
}

// EncodePassword returns the unicodePwd value for password: the password in
// double quotes, UTF-16LE. The caller should clear the returned bytes.
func EncodePassword(password *secret.Secret) []byte {
	units := utf16.Encode([]rune(`"` + password.Reveal() + `"`))
	b := make([]byte, 2*len(units))
	for i, u := range units {
		binary.LittleEndian.PutUint16(b[2*i:], u)
	}
	clear(units)
	return b
}

// BuiltinGroupDN is the DN of a BUILTIN group of the domain by its English
// name, e.g. "Backup Operators" (CN=Builtin).
func (dc *DC) BuiltinGroupDN(name string) string {
	return "CN=" + ldap.EscapeDN(name) + ",CN=Builtin," + dc.BaseDN()
}

// UsersGroupDN is the DN of a group provisioned in CN=Users by its English
// name, e.g. "Domain Admins" or "Enterprise Admins".
func (dc *DC) UsersGroupDN(name string) string {
	return "CN=" + ldap.EscapeDN(name) + ",CN=Users," + dc.BaseDN()
}

// SetPrimaryGroup makes the global group groupDN the primary group of the
// account dn. AD requires the account to be a member first: it is added,
// and then leaves the group's member list (the primary group is implied).
func (dc *DC) SetPrimaryGroup(ctx context.Context, dn, groupDN string) error {
	g, err := dc.Entry(ctx, groupDN, "primaryGroupToken")
	if err != nil {
		return err
	}
	rid := g.GetAttributeValue("primaryGroupToken")
	if rid == "" {
		return fmt.Errorf("set primary group of %s: %s has no primaryGroupToken (not a global group?)", dn, groupDN)
	}
	if err := dc.AddMember(ctx, groupDN, dn); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		return err
	}
	return dc.Modify(ctx, dn, "primaryGroupID", rid)
}

// CreateComputer adds a computer account (sAMAccountName name$,
// WORKSTATION_TRUST_ACCOUNT) under parent (CN=Computers when empty) with
// password, and returns it with its objectGUID.
func (dc *DC) CreateComputer(ctx context.Context, name, parent string, password *secret.Secret) (*User, error) {
	if name == "" {
		return nil, errors.New("create computer: name is empty")
	}
	if parent == "" {
		parent = "CN=Computers," + dc.BaseDN()
	}
	dn := "CN=" + ldap.EscapeDN(name) + "," + parent
	sam := name + "$"
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user", "computer"})
	req.Attribute("sAMAccountName", []string{sam})
	req.Attribute("userAccountControl", []string{"4096"}) // WORKSTATION_TRUST_ACCOUNT
	req.Attribute("unicodePwd", []string{string(EncodePassword(password))})
	guid, raw, err := dc.addWithGUID(ctx, "computer", req)
	if err != nil {
		return nil, err
	}
	return &User{DN: dn, SAMAccountName: sam, ObjectGUID: protocol.GUIDString(guid), GUIDBytes: raw}, nil
}

package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"wbagent/internal/lab/sambadc"
	"wbagent/internal/secret"
)

// DomainOptions configure StartDomain.
type DomainOptions struct {
	// Realm and NetBIOS name the domain; default corp.example.test (CORP).
	Realm   string
	NetBIOS string
	// CacheDir is sambadc's template and address-lock folder.
	CacheDir string
	// Output also receives Samba's own output.
	Output io.Writer
	// Secrets tracks every password; default a new registry.
	Secrets *Secrets
}

// ServiceAccountName is the sAMAccountName of the agent's delegated
// service account.
const ServiceAccountName = "svc-wb"

// Domain is a running Samba AD DC laid out for writeback tests:
//
//	OU=Staff    in scope; writeback rights delegated to svc-wb by
//	            installer/ad/delegate-samba.sh (the installer's script)
//	OU=Other    in scope, not delegated: writes there are access_denied
//	OU=Outside  not in scope: out_of_scope
//	CN=Helpdesk Admins  a group nested in Domain Admins
//
// Policy: minimum length 7, complexity, history 24, no minimum age,
// lockout after 3 bad passwords (for 30 minutes).
type Domain struct {
	DC *sambadc.DC
	// Secrets holds every password the domain's accounts were given.
	Secrets *Secrets

	Staff, Other, Outside string
	// DomainAdmins is the protected group the agent's config names;
	// NestedGroup is a member of it.
	DomainAdmins string
	NestedGroup  string
	// Service is the agent's bind account: an ordinary user with only the
	// delegated rights.
	Service *User
	// Sample are accounts for every case of the guard and the policy.
	Sample Sample

	mu  sync.Mutex
	seq int
}

// Sample is the domain's ready-made accounts.
type Sample struct {
	// InScope is an ordinary user in OU=Staff (UPN = sAMAccountName@realm).
	InScope *User
	// DistinctUPN has a UPN that differs from its sAMAccountName.
	DistinctUPN *User
	// NoUPN has no userPrincipalName: only sAMAccountName finds it.
	NoUPN *User
	// OutOfScope lives in OU=Outside.
	OutOfScope *User
	// NotDelegated lives in OU=Other (in scope, no rights).
	NotDelegated *User
	// DomainAdmin is in Staff, a member of Domain Admins with adminCount=1.
	DomainAdmin *User
	// Nested is in Staff, a member of Helpdesk Admins (nested in Domain
	// Admins), without adminCount.
	Nested *User
	// Disabled is a disabled account in Staff.
	Disabled *User
	// Locked is a Staff account locked out by bad passwords.
	Locked *User
}

// User is an account of the domain with the password it was created with.
type User struct {
	sambadc.User
	// Password is the account's initial password.
	Password *secret.Secret
}

// BindName is what to bind as: the UPN, or the DN when there is none.
func (u *User) BindName() string {
	if u.UPN != "" {
		return u.UPN
	}
	return u.DN
}

// StartDomain provisions and starts the DC and creates the layout and the
// sample accounts.
func StartDomain(ctx context.Context, o DomainOptions) (*Domain, error) {
	if o.Secrets == nil {
		o.Secrets = NewSecrets()
	}
	dc, err := sambadc.Start(ctx, sambadc.Options{Realm: o.Realm, NetBIOS: o.NetBIOS, CacheDir: o.CacheDir, Output: o.Output})
	if err != nil {
		return nil, fmt.Errorf("start the Samba AD DC (install Samba with `make deps`): %w", err)
	}
	d := &Domain{DC: dc, Secrets: o.Secrets}
	if err := d.layout(ctx); err != nil {
		_ = dc.Stop()
		return nil, fmt.Errorf("lay out the test domain: %w", err)
	}
	return d, nil
}

func (d *Domain) layout(ctx context.Context) error {
	dc := d.DC
	if err := dc.SetPasswordPolicy(ctx, sambadc.PasswordPolicy{
		MinLength: sambadc.Ptr(7), Complexity: sambadc.Ptr(true), History: sambadc.Ptr(24),
		MinAge: sambadc.Ptr(time.Duration(0)), LockoutThreshold: sambadc.Ptr(3),
		LockoutDuration: sambadc.Ptr(30 * time.Minute), LockoutWindow: sambadc.Ptr(30 * time.Minute),
	}); err != nil {
		return err
	}
	var err error
	for _, ou := range []struct {
		name string
		dn   *string
	}{{"Staff", &d.Staff}, {"Other", &d.Other}, {"Outside", &d.Outside}} {
		if *ou.dn, err = dc.CreateOU(ctx, ou.name, ""); err != nil {
			return err
		}
	}
	d.DomainAdmins = "CN=Domain Admins,CN=Users," + dc.BaseDN()
	if d.NestedGroup, err = dc.CreateGroup(ctx, "Helpdesk Admins", ""); err != nil {
		return err
	}
	if err := dc.AddMember(ctx, d.DomainAdmins, d.NestedGroup); err != nil {
		return err
	}
	if d.Service, err = d.AddUser(ctx, ServiceAccountName, "CN=Users,"+dc.BaseDN()); err != nil {
		return err
	}
	if err := dc.Delegate(ctx, ServiceAccountName, d.Staff); err != nil {
		return err
	}
	s := &d.Sample
	type spec struct {
		u    **User
		name string
		ou   string
		edit func(*sambadc.UserSpec)
	}
	for _, sp := range []spec{
		{&s.InScope, "ann", d.Staff, nil},
		{&s.DistinctUPN, "bo", d.Staff, func(u *sambadc.UserSpec) { u.UPN = "bo.berg@" + dc.Realm() }},
		{&s.NoUPN, "cy", d.Staff, func(u *sambadc.UserSpec) { u.UPN = "-" }},
		{&s.OutOfScope, "olaf", d.Outside, nil},
		{&s.NotDelegated, "otto", d.Other, nil},
		{&s.DomainAdmin, "dana.admin", d.Staff, nil},
		{&s.Nested, "nina", d.Staff, nil},
		{&s.Disabled, "dora", d.Staff, func(u *sambadc.UserSpec) { u.Disabled = true }},
		{&s.Locked, "lou", d.Staff, nil},
	} {
		if *sp.u, err = d.AddUserSpec(ctx, sp.name, sp.ou, sp.edit); err != nil {
			return err
		}
	}
	if err := dc.AddMember(ctx, d.DomainAdmins, s.DomainAdmin.DN); err != nil {
		return err
	}
	// AdminSDHolder marks members of protected groups so; Samba does not
	// run it, so the harness does.
	if err := dc.SetAdminCount(ctx, s.DomainAdmin.DN, 1); err != nil {
		return err
	}
	if err := dc.AddMember(ctx, d.NestedGroup, s.Nested.DN); err != nil {
		return err
	}
	return d.Lock(ctx, s.Locked)
}

// Lock locks u out with bad passwords.
func (d *Domain) Lock(ctx context.Context, u *User) error {
	return d.DC.Lock(ctx, u.BindName(), u.DN)
}

// AddUser creates an enabled account name in ou (a DN; empty = CN=Users)
// with a fresh tracked password and the UPN name@realm.
func (d *Domain) AddUser(ctx context.Context, name, ou string) (*User, error) {
	return d.AddUserSpec(ctx, name, ou, nil)
}

// AddUserSpec is AddUser with a chance to edit the account's spec (UPN,
// disabled, extra attributes) before it is created.
func (d *Domain) AddUserSpec(ctx context.Context, name, ou string, edit func(*sambadc.UserSpec)) (*User, error) {
	pw := d.Secrets.New()
	spec := sambadc.UserSpec{Name: name, OU: ou, Password: pw}
	if edit != nil {
		edit(&spec)
	}
	su, err := d.DC.CreateUser(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &User{User: *su, Password: pw}, nil
}

// AddUsers creates n accounts in ou named prefix-1 ... prefix-n.
func (d *Domain) AddUsers(ctx context.Context, prefix, ou string, n int) ([]*User, error) {
	users := make([]*User, 0, n)
	for i := 1; i <= n; i++ {
		u, err := d.AddUser(ctx, fmt.Sprintf("%s-%d", prefix, i), ou)
		if err != nil {
			return users, err
		}
		users = append(users, u)
	}
	return users, nil
}

// UniqueName returns prefix followed by a number no earlier call returned,
// for accounts that must not collide between tests sharing one DC.
func (d *Domain) UniqueName(prefix string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	return fmt.Sprintf("%s%d", prefix, d.seq)
}

// CheckPassword binds as u with pw over LDAPS, as the user's own logon
// would. It returns nil when the bind succeeds, and otherwise an error that
// carries AD's reason code (52e wrong password, 775 locked, 533 disabled,
// 773 must change).
func (d *Domain) CheckPassword(ctx context.Context, u *User, pw *secret.Secret) error {
	code, err := d.DC.BindCode(ctx, u.BindName(), pw)
	switch {
	case err != nil:
		return fmt.Errorf("bind as %s: %w", u.SAMAccountName, err)
	case code != "":
		return &BindError{User: u.SAMAccountName, Code: code}
	}
	return nil
}

// BindError is a refused bind with AD's reason code.
type BindError struct {
	User string
	Code string
}

// Error spells out AD's data code (52e, 775, …), so a failed test says
// why the bind was refused without a lookup.
func (e *BindError) Error() string {
	what := map[string]string{"52e": "wrong password", "775": "account locked", "533": "account disabled",
		"773": "must change password", "701": "account expired", "532": "password expired"}[e.Code]
	return fmt.Sprintf("bind as %s refused: data %s %s", e.User, e.Code, what)
}

// BindCode returns "" when err is nil, the AD reason code of a BindError,
// or err's text otherwise.
func BindCode(err error) string {
	var be *BindError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &be):
		return be.Code
	}
	return err.Error()
}

// HighestUSN reads the DC's highestCommittedUSN: it grows with every write
// anywhere in the directory, so an unchanged value proves nothing was
// written.
func (d *Domain) HighestUSN(ctx context.Context) (string, error) {
	e, err := d.DC.Entry(ctx, "", "highestCommittedUSN")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(e.GetAttributeValue("highestCommittedUSN")), nil
}

// Stop stops the DC and removes its files.
func (d *Domain) Stop() error { return d.DC.Stop() }

package directory

import (
	"testing"
)

func TestPrivilegedSIDs(t *testing.T) {
	if s := sidString(builtinSID(551)); s != "S-1-5-32-551" {
		t.Fatalf("builtin SID %s", s)
	}
	domain := []byte{1, 4, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0}
	da, err := appendRID(domain, 512)
	if err != nil || sidString(da) != "S-1-5-21-1-2-3-512" {
		t.Fatalf("domain admins SID %s %v", sidString(da), err)
	}
	if _, err := appendRID(domain[:10], 512); err == nil {
		t.Fatal("malformed SID accepted")
	}
	set := &privilegedSet{domainSID: domain, accounts: map[uint32]string{500: "Administrator"}}
	admin, _ := appendRID(domain, 500)
	if set.privilegedAccount(&account{sid: admin}) != "Administrator" {
		t.Fatal("RID 500 not recognised")
	}
	other := append([]byte{}, admin...)
	other[12] = 9 // another domain's RID 500
	user, _ := appendRID(domain, 1105)
	for _, sid := range [][]byte{other, user, nil, domain} {
		if n := set.privilegedAccount(&account{sid: sid}); n != "" {
			t.Fatalf("%s taken for %s", sidString(sid), n)
		}
	}
}

func TestMachineAccount(t *testing.T) {
	cases := []struct {
		a    account
		want string
	}{
		{account{objectClass: []string{"top", "person", "user"}, uac: 512}, ""},
		{account{objectClass: []string{"top", "user", "computer"}, uac: 4096}, "a computer account"},
		{account{objectClass: []string{"user", "computer"}, uac: 0x2000}, "a domain controller's account"},
		{account{objectClass: []string{"user"}, uac: 0x800}, "a trust account"},
		{account{objectClass: []string{"user", "computer", "msDS-GroupManagedServiceAccount"}, uac: 4096}, "a group managed service account"},
		{account{objectClass: []string{"user", "computer", "msDS-ManagedServiceAccount"}}, "a managed service account"},
	}
	for _, c := range cases {
		if got := machineAccount(&c.a); got != c.want {
			t.Errorf("%v uac %#x: %q, want %q", c.a.objectClass, c.a.uac, got, c.want)
		}
	}
}

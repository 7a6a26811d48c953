package directory

import (
	"slices"
	"testing"
)

// Whatever order the DC returns the groups in, the builtin Administrators
// (which holds Domain and Enterprise Admins) comes after the groups nested
// in it, so the refusal names the group the account was put in.
func TestPrivilegedGroupsMostSpecificFirst(t *testing.T) {
	groups := []privilegedGroup{{name: "Administrators"}, {name: "Backup Operators"}, {name: "Enterprise Admins"}, {name: "Domain Admins"}}
	sortMostSpecificFirst(groups)
	var got []string
	for _, g := range groups {
		got = append(got, g.name)
	}
	if want := []string{"Domain Admins", "Enterprise Admins", "Administrators", "Backup Operators"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

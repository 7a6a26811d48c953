// Package sambadc starts throwaway Samba Active Directory domain controllers
// for integration tests, the demo and benchmarks.
//
// Samba speaks the same LDAP, controls, ACLs and error codes as Windows AD,
// so the project tests its directory code against a real DC instead of a
// mock. Each DC runs as a child process (`samba -i -M single`) on its own
// loopback address 127.0.0.N, because Samba's ports are fixed and several
// test binaries run side by side. Addresses are handed out with flock'd lock
// files under the cache directory; a DC whose parent dies exits too (Samba
// in interactive mode stops when its standard input closes).
//
// Provisioning takes seconds, so a provisioned domain is kept as a template
// in the cache directory, keyed by the Samba version, realm and NetBIOS name,
// and copied for every DC (tens of milliseconds). Each DC gets its own TLS
// certificate authority and a server certificate naming its host name and
// address, so clients verify the chain for real.
//
// Public API in brief:
//
//	dc, err := sambadc.Start(ctx, sambadc.Options{})
//	defer dc.Stop()
//	dc.LDAPSURL(), dc.LDAPURL(), dc.GlobalCatalogURL(), dc.KDCAddr()
//	dc.Realm(), dc.NetBIOS(), dc.BaseDN(), dc.ServerName(), dc.CACertPath()
//	dc.AdminUPN(), dc.AdminPassword(), dc.Krb5ConfPath(), dc.Dir()
//	dc.CreateOU, CreateUser, CreateGroup, AddMember, SetAdminCount, Modify,
//	dc.Entry, Bind, BindCode, Lock, SetPasswordPolicy, CreatePSO,
//	dc.Delegate (runs installer/ad/delegate-samba.sh), ExportKeytab,
//	dc.Kill, Restart, Stop
//	sambadc.NewProxy(ctx, target) for cutting connections in chaos tests
//
// Start fails with an error naming `make deps` when Samba is missing, and
// with one naming root when the loopback address cannot be added.
package sambadc

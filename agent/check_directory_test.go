package main

import (
	"strings"
	"testing"
	"time"

	"wbagent/internal/config"
	"wbagent/internal/directory"
	"wbagent/internal/lab/sambadc"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/secret"
)

// The rows `wbagent check` shows for the directory: all OK for an account
// delegated by the installer script, and a FAIL with the script as the fix
// before the delegation.
func TestDirectoryChecks(t *testing.T) {
	ctx := testbed.IntegrationContext(t, "integration test: starts a Samba AD DC", 2*time.Minute)
	dc := sambadc.StartTest(ctx, t, sambadc.Options{})
	ou, err := dc.CreateOU(ctx, "Staff", "")
	if err != nil {
		t.Fatal(err)
	}
	pw := secret.FromString("Svc-Writeback-Passw0rd")
	if _, err := dc.CreateUser(ctx, sambadc.UserSpec{Name: "svc-wb", Password: pw}); err != nil {
		t.Fatal(err)
	}
	opts := directory.Options{
		Domains: []directory.Domain{{
			Name: dc.Realm(), BaseDN: dc.BaseDN(), Servers: []string{dc.LDAPSURL()},
			TLS:  directory.TLS{CAFile: dc.CACertPath(), ServerName: dc.ServerName()},
			Bind: directory.Bind{User: "svc-wb@" + dc.Realm(), Password: pw},
		}},
		Scope:          directory.Scope{IncludeOUs: []string{ou}, ProtectAdminCount: true},
		HistoryOnReset: directory.HistoryAuto, Timeout: 10 * time.Second, PoolSize: 4,
		DialTimeout: config.DirectoryDialTimeout, IdleCheck: config.DirectoryIdleCheck, DiscoverTTL: config.DirectoryDiscoverTTL,
	}
	var fails []checkRow
	for _, r := range directoryChecks(ctx, opts) {
		if !r.OK {
			fails = append(fails, r)
		}
	}
	if len(fails) != 1 || !strings.Contains(fails[0].Name, "rights on "+ou) || !strings.Contains(fails[0].Fix, "delegate-samba.sh") {
		t.Fatalf("before delegation: want one rights FAIL naming the script, got %+v", fails)
	}
	if err := dc.Delegate(ctx, "svc-wb", ou); err != nil {
		t.Fatal(err)
	}
	for _, r := range directoryChecks(ctx, opts) {
		if !r.OK {
			t.Fatalf("after delegation: %+v", r)
		}
	}
}

// Package demo is `make demo`: on one machine it provisions a throwaway
// Active Directory domain (Samba AD DC) with sample users and a delegated,
// non-admin service account, starts a local Service Bus (`wbagent devbus`)
// and the agent (`wbagent run`) as processes, sends five password requests
// the way a cloud portal would, prints what was asked and what happened in
// words an administrator new to the project can follow, prints the audit
// trail and verifies its hash chain with `wbagent audit verify`, checks
// that no password reached any file, and tears everything down.
//
//	err := demo.Run(ctx, os.Stdout)                          // builds wbagent from the checkout
//	err := demo.Options{Agent: "bin/wbagent"}.Run(ctx, os.Stdout)
//
// Run returns an error when any step does not end as expected, so the demo
// doubles as a smoke test (this package's test runs it).
package demo

// Package testbed assembles a complete, throwaway wbagent installation for
// end-to-end tests, the demo and benchmarks: a Samba AD DC with sample
// accounts and a delegated non-admin service account, agent and sender
// keys, a devbus (in process or as a `wbagent devbus` process), agent
// config files, `wbagent run` processes that can be stopped or killed -9,
// a sender that puts signed requests on the queue (through the
// azservicebus SDK or the `wbagent send` CLI) and collects the signed
// results, and a scanner that proves no password used reached any file the
// run wrote.
//
// Everything listens on loopback and lives in directories the caller
// gives; nothing here is global, so several beds can run side by side.
//
// Public API in brief:
//
//	bin, err := testbed.BuildAgent(ctx, dir)          // go build -o dir/wbagent ./agent
//	dom, err := testbed.StartDomain(ctx, testbed.DomainOptions{})
//	defer dom.Stop()
//	dom.Sample.InScope, .DomainAdmin, .Nested, .Disabled, .Locked, ...
//	u, err := dom.AddUser(ctx, "name", dom.Staff)     // with a fresh password
//	err = dom.CheckPassword(ctx, u, pw)               // binds as the user
//	keys, err := testbed.NewKeys(dir)                 // agent + sender key files
//	bus, err := testbed.StartBus(ctx, testbed.BusOptions{Queues: ..., Binary: bin}) // process; or Binary "" for in-process
//	cfg, err := testbed.WriteAgentConfig(testbed.AgentConfig{Dir: d, Queue: q, ...}, dom, keys)
//	agent, err := testbed.StartAgent(ctx, bin, cfg, bus, dom)  // agent.Stop, Kill, Restart
//	s, err := testbed.NewSender(ctx, bus, keys, testbed.SenderOptions{Queue: q, ReplyQueue: r})
//	msg, err := s.Send(ctx, spec); res, err := s.Wait(ctx, msg.MessageID)
//	res, out, err := testbed.SendCLI(ctx, bin, bus, keys, args, stdin)
//	leaks, err := dom.Secrets.Scan(dirs...)           // every password used, in any file written
package testbed

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
//	bin, err := testbed.BuildAgent(ctx, dir)          // go build -o dir/wbagent ./agent, once per test binary
//	dom, err := testbed.StartDomain(ctx, testbed.DomainOptions{})
//	defer dom.Stop()
//	dom.Sample.InScope, .DistinctUPN, .NoUPN, .OutOfScope, .NotDelegated,
//	  .DomainAdmin, .Nested, .Disabled, .Locked      // ready-made accounts
//	u, err := dom.AddUser(ctx, dom.UniqueName("x"), dom.Staff) // with a fresh, tracked password
//	err = dom.CheckPassword(ctx, u, pw)               // binds as the user; BindCode(err) is "", 52e, 775, 533, 773
//	usn, err := dom.HighestUSN(ctx)                   // unchanged = nothing written
//	keys, err := testbed.NewKeys(dir)                 // agent + sender key files, loaded for the sender side
//	bus, err := testbed.StartBus(ctx, testbed.BusOptions{Queues: qs, Binary: bin, Dir: dir}) // Binary "": in process
//	  BusOptions{TLS: true, WebSockets: true, Entra: &devbus.EntraOptions{...}} // production paths:
//	  bus.TLSConnectionString(), .WebSocketConnectionString(), .CAFile(), .CertPool(), .AuthorityHost()
//	  bus.Server.StallReceivers(q)                  // in process: the receivers go silent, for watchdogs
//	cert, err := testbed.EntraClientCert(path, "app", notBefore, notAfter) // an app registration's certificate + key
//	files, err := testbed.WriteAgentConfig(testbed.AgentConfig{Dir: d, Queue: q, Sessions: true, Keys: keys}, dom)
//	agent, err := testbed.StartAgent(bin, files, testbed.AgentEnv(bus, dom))
//	agent.WaitRunning(ctx); agent.Stop(grace); agent.Kill(); agent.Restart()
//	agent.Audit(), agent.Handled()                    // audit records, "message handled" log lines
//	s, err := testbed.NewSender(bus, keys, testbed.SenderOptions{Queue: q, Sessions: true, ReplyQueue: r, Secrets: dom.Secrets})
//	m, err := s.Send(ctx, s.Spec(op, target)+passwords); res, err := s.Wait(ctx, m.MessageID)
//	dead, err := s.DeadLetters(ctx, wait)
//	out, err := testbed.SendCLI(ctx, bin, bus, keys, "password\n", "--queue", q, ...)
//	leaks, err := dom.Secrets.Scan(dirs...)           // every password used, in any file written
package testbed

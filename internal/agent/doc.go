// Package agent is the composition root: it assembles one running
// writeback agent from a config.Config (keys, directory, ledger, audit
// trail, writeback handler, Service Bus consumer, metrics and HTTP
// endpoints) and owns its lifecycle. `wbagent run`, the service, `wbagent
// dev` and the capacity benchmark all build the agent here, and `wbagent
// check` tests the config through the same mappings (DirectoryOptions,
// BusConnection), so what is benchmarked and checked is what runs.
//
// The API:
//
//	a, err := agent.New(ctx, cfg, agent.Deps{Logger: log, Getenv: os.Getenv, Clock: writeback.SystemClock{}})
//	err = a.Start(ctx)     // HTTP, then the bus consumer; returns at once
//	err = <-a.Fatal()      // the first error the agent cannot go on after
//	err = a.Stop(graceCtx) // the one ordered shutdown; also after a failed Start
//
// Deps.Directory replaces the Active Directory with another
// writeback.Directory (the capacity benchmark's instant one); everything
// else is what the service runs.
package agent

// Package telemetry holds the agent's Prometheus metrics and the small HTTP
// server behind http.listen: /healthz (the process is up), /readyz (every
// registered check passes, within a timeout; why one fails is shown to
// loopback callers only, unless ServerOptions.ReadyDetails) and /metrics.
//
// The metrics live on their own registry (NewRegistry: Go and process
// collectors, nothing global), and every label value is folded onto a fixed
// set, so a flood of malformed messages cannot create new series:
//
//	wbagent_requests_total{op,code}              outcomes by op and result code
//	wbagent_request_duration_seconds{op}         receipt to settlement
//	wbagent_queue_wait_seconds                   enqueued to received
//	wbagent_directory_duration_seconds{op}       time spent in the directory
//	wbagent_directory_retries_total{op}          transient directory failures retried
//	wbagent_dead_letters_total{reason}           malformed, unauthenticated, invalid_request
//	wbagent_requests_in_flight                   writebacks running now
//	wbagent_lock_renewals_total{result}          ok or failed
//	wbagent_directory_failovers_total            switches to another DC
//	wbagent_bus_reconnects_total                 Service Bus connections re-established
//	wbagent_bus_watchdog_rebuilds_total          connections rebuilt after the broker stayed silent
//	wbagent_audit_write_failures_total           audit lines that could not be written
//	wbagent_session_state_refused_total          session-state records whose MAC did not verify
//	wbagent_intake_paused                        1 while no message is taken (audit or state disk failing)
//
// The API:
//
//	reg := telemetry.NewRegistry()
//	m, err := telemetry.NewMetrics(reg) // a nil *Metrics records nothing
//	m.Request("reset", "ok", took)
//	srv, err := telemetry.NewServer(telemetry.ServerOptions{Addr: cfg.HTTP.Listen, Gatherer: reg,
//		CheckTimeout: 5 * time.Second, Logger: log})
//	srv.AddCheck("directory", dir.Ready)
//	err = srv.Start()          // listens, serves in the background
//	err = srv.Shutdown(ctx)
package telemetry

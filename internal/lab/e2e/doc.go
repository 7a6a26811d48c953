// Package e2e holds the end-to-end tests of the writeback pipeline: a
// Samba AD DC, `wbagent devbus` and `wbagent run` as separate processes,
// requests sent through the azservicebus SDK and the `wbagent send` CLI.
// They prove the acceptance list of the pipeline: every result code a
// directory or a request can produce, answered, settled and audited as
// protocol v1 says, on session and plain queues; the protocol vectors'
// negative cases sent as real messages; replay; forged session state
// ignored; two agents on one session queue; kill -9 mid-batch; the shortest
// config refusing privileged accounts, and a config without includeOUs
// stopping check and run; /readyz on an idle session queue; a reset over WebSockets through
// a real proxy and with Entra ID credentials; the watchdog rebuilding a
// silenced connection; and, after every test, no password in any file the
// run wrote.
//
// The package has only tests (and this file). One DC is shared by the
// whole test binary (TestMain); each test starts its own devbus and agents
// in its own folder, with accounts of its own.
package e2e

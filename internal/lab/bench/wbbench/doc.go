// Command wbbench is `make bench`: it provisions a Samba AD DC and a
// `wbagent devbus` on loopback, measures the directory ceiling, the end-to-end
// path, the agent's capacity and how its cost grows, prints one markdown
// table and writes the figures as JSON (BENCH_OUT, default bin/bench.json).
// See package wbagent/internal/lab/bench.
package main

package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Report is everything one benchmark run measured; it is written as JSON
// and rendered as a markdown table.
type Report struct {
	Machine  Machine   `json:"machine"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Commit   string    `json:"commit,omitempty"`
	Ceiling  []Row     `json:"directoryCeiling"`
	EndToEnd []Row     `json:"endToEnd"`
	Capacity []Row     `json:"agentCapacity"`
	Growth   []Row     `json:"growth"`
	Drain    *Row      `json:"drain,omitempty"`
	Targets  []Target  `json:"targets"`
	Notes    []string  `json:"notes,omitempty"`

	// Transport compares plain AMQP with WebSockets over TLS.
	Transport []Row `json:"transport,omitempty"`
	// TransportRatios compare each transport's runs with plain AMQP's.
	TransportRatios []TransportRatio `json:"transportRatios,omitempty"`
}

// Row is one measured run.
type Row struct {
	// Name says what ran, e.g. "reset c=4 sessions".
	Name string `json:"name"`
	Figures
	// Agent is the agent process's cost over the measured interval;
	// absent for the directory ceiling.
	Agent *AgentCost `json:"agent,omitempty"`
	// RatioToCeiling is requests/s over the directory ceiling's for the
	// same op and concurrency (end to end only).
	RatioToCeiling float64 `json:"ratioToCeiling,omitempty"`
	// P50OverRawMs is the p50 minus the raw directory p50 (end to end).
	P50OverRawMs float64 `json:"p50OverRawMs,omitempty"`
	// DrainSeconds is the time from starting the agent to the last result
	// (backlog runs).
	DrainSeconds float64 `json:"drainSeconds,omitempty"`
	// BrokerCPUPerRequestUs is the `wbagent devbus` process's CPU per
	// request over the same interval (backlog runs): on a small machine
	// the broker shares the cores with the agent.
	BrokerCPUPerRequestUs float64 `json:"brokerCpuPerRequestUs,omitempty"`
	// Settings are the agent settings of the run.
	Settings string `json:"settings,omitempty"`
	// Components names what the measured capacity agent was built from,
	// by the service's own constructor.
	Components string `json:"components,omitempty"`
}

// AgentCost is what the agent process spent during a run.
type AgentCost struct {
	// CPUPerRequestUs is user+system CPU time per request, in µs.
	CPUPerRequestUs float64 `json:"cpuPerRequestUs"`
	// PeakRSSMB is the process's peak resident set (VmHWM) at the end of
	// the run, in MiB.
	PeakRSSMB float64 `json:"peakRssMB"`
}

// Target is one goal of the benchmark and whether this run met it.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteMarkdown writes the machine line, one table with every run, and
// the targets.
func (r *Report) WriteMarkdown(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %d MiB RAM, Linux %s, %s, %s.\n\n", m.CPUs, m.CPUModel, m.MemoryMB, m.Kernel, m.Go, m.Samba)
	fmt.Fprintln(w, "| measure | run | requests | req/s | p50 ms | p95 ms | p99 ms | agent CPU µs/req | agent peak RSS MiB | notes |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
	section := func(title string, rows []Row) {
		for _, row := range rows {
			cpu, rss := "", ""
			if row.Agent != nil {
				cpu = fmt.Sprintf("%.0f", row.Agent.CPUPerRequestUs)
				rss = fmt.Sprintf("%.1f", row.Agent.PeakRSSMB)
			}
			var notes []string
			if row.RatioToCeiling > 0 {
				notes = append(notes, fmt.Sprintf("÷ ceiling %.2f", row.RatioToCeiling))
			}
			if row.P50OverRawMs != 0 {
				notes = append(notes, fmt.Sprintf("p50 − raw p50 %+.1f ms", row.P50OverRawMs))
			}
			if row.DrainSeconds > 0 {
				notes = append(notes, fmt.Sprintf("drained in %.1f s", row.DrainSeconds))
			}
			if row.BrokerCPUPerRequestUs > 0 {
				notes = append(notes, fmt.Sprintf("devbus CPU %.0f µs/req", row.BrokerCPUPerRequestUs))
			}
			if row.Errors > 0 {
				notes = append(notes, fmt.Sprintf("%d errors", row.Errors))
			}
			if row.Settings != "" {
				notes = append(notes, row.Settings)
			}
			lat := []string{"", "", ""}
			if row.Latency.N > 0 {
				lat = []string{fmt.Sprintf("%.1f", row.Latency.P50), fmt.Sprintf("%.1f", row.Latency.P95), fmt.Sprintf("%.1f", row.Latency.P99)}
			}
			fmt.Fprintf(w, "| %s | %s | %d | %.1f | %s | %s | %s | %s | %s | %s |\n", title, row.Name, row.Requests,
				row.PerSecond, lat[0], lat[1], lat[2], cpu, rss, strings.Join(notes, "; "))
		}
	}
	section("directory ceiling (raw go-ldap)", r.Ceiling)
	section("end to end (devbus → wbagent run → Samba)", r.EndToEnd)
	section("agent capacity (instant directory)", r.Capacity)
	section("growth (instant directory, sessions)", r.Growth)
	if r.Drain != nil {
		section("backlog drain (instant directory)", []Row{*r.Drain})
	}
	section("transport (instant directory)", r.Transport)
	if len(r.TransportRatios) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Transports in the same run (agent CPU ratio: plain's µs/req over the transport's, the throughput ratio where the agent's own CPU is the limit):")
		for _, tr := range r.TransportRatios {
			fmt.Fprintf(w, "- %s\n", tr.line())
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	for _, t := range r.Targets {
		mark := "missed"
		if t.Met {
			mark = "met"
		}
		fmt.Fprintf(w, "- %s: want %s, got %s — %s\n", t.Name, t.Want, t.Got, mark)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
}

package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := Summarise(ds)
	if l.N != 100 || l.P50 != 50 || l.P95 != 95 || l.P99 != 99 || l.Max != 100 || l.Mean != 50.5 {
		t.Fatalf("%+v", l)
	}
	if ds[0] != 100*time.Millisecond {
		t.Fatal("Summarise sorted its input")
	}
	if (Summarise(nil) != Latency{}) {
		t.Fatal("no durations must summarise to zeros")
	}
}

func TestSampleAdds(t *testing.T) {
	a := Sample{Latencies: []time.Duration{time.Millisecond}, Took: time.Second}
	a.Add(Sample{Latencies: []time.Duration{3 * time.Millisecond}, Errors: 2, Took: time.Second})
	f := a.Figures()
	if f.Requests != 2 || f.Errors != 2 || f.Seconds != 2 || f.PerSecond != 1 || f.Latency.Max != 3 {
		t.Fatalf("%+v", f)
	}
}

func TestReadProcAndFindProcess(t *testing.T) {
	// cat blocks reading its stdin and never forks, so no child of it can
	// briefly carry the same command line (a shell running `sleep` can).
	marker := fmt.Sprintf("wbbench-test-marker-%d", os.Getpid())
	cmd := exec.Command("cat", "-", marker)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start cat: %v", err)
	}
	defer func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var pid int
	for range 100 { // the child execs cat a moment after Start
		if pid, err = FindProcess("cat", "-", marker); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || pid != cmd.Process.Pid {
		t.Fatalf("FindProcess = %d, %v; want %d", pid, err, cmd.Process.Pid)
	}
	if _, err := FindProcess("cat", "-", marker+"-no-such"); err == nil {
		t.Fatal("FindProcess found a process that does not run")
	}
	// Burn CPU in this process until it is counted (in 10 ms ticks; on a
	// busy machine the burning thread may wait for a core).
	before, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	after, x := before, 0
	for end := time.Now().Add(10 * time.Second); after.CPU == before.CPU && time.Now().Before(end); x++ {
		for range 1_000_000 {
			x++
		}
		if after, err = ReadProc(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	if after.CPU <= before.CPU || after.RSS <= 0 || after.PeakRSS < after.RSS || after.RSSAnon <= 0 || after.Threads < 1 {
		t.Fatalf("before %+v after %+v (%d loops)", before, after, x)
	}
	if _, err := ReadProc(1 << 30); err == nil {
		t.Fatal("ReadProc of a process that does not exist succeeded")
	}
}

func TestReportAndTargets(t *testing.T) {
	r := &Report{Machine: Machine{CPUs: 2, CPUModel: "Test CPU", MemoryMB: 1024}}
	r.Ceiling = []Row{{Name: "reset c=4", Figures: Figures{Requests: 100, PerSecond: 30}}}
	r.EndToEnd = []Row{
		{Name: "reset c=4 plain", Figures: Figures{Requests: 90, PerSecond: 28}, RatioToCeiling: 0.93},
		{Name: "reset c=1 plain", Figures: Figures{Requests: 90, PerSecond: 28}, P50OverRawMs: 12.5},
	}
	r.Capacity = []Row{{Name: "x-wing plain", Figures: Figures{PerSecond: 2500}, Agent: &AgentCost{CPUPerRequestUs: 400, PeakRSSMB: 22}}}
	r.Growth = []Row{{Name: "64 sessions", Agent: &AgentCost{PeakRSSMB: 61}}}
	r.Targets = targets(r)
	met := map[string]bool{}
	for _, tg := range r.Targets {
		met[tg.Name] = tg.Met
	}
	want := map[string]bool{
		"end to end ÷ ceiling, reset c=4 plain":     true,
		"end-to-end p50 − raw reset p50, c=1 plain": false,
		"agent capacity with x-wing (best run)":     true,
		"agent peak RSS at 64 sessions":             false,
	}
	for name, w := range want {
		if got, ok := met[name]; !ok || got != w {
			t.Errorf("target %q: met=%v present=%v, want met=%v", name, got, ok, w)
		}
	}
	var md bytes.Buffer
	r.WriteMarkdown(&md)
	for _, s := range []string{"| measure | run |", "| agent capacity (instant directory) | x-wing plain | 0 | 2500.0 |  |  |  | 400 | 22.0 |", "÷ ceiling 0.93", "p50 − raw p50 +12.5 ms", "Test CPU", "— missed"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, md.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Capacity[0].Agent.CPUPerRequestUs != 400 {
		t.Fatalf("JSON round trip: %v %+v", err, back.Capacity)
	}
}

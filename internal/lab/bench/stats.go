package bench

import (
	"math"
	"slices"
	"time"
)

// Latency summarises a set of durations, in milliseconds for the report.
type Latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50Ms"`
	P95  float64 `json:"p95Ms"`
	P99  float64 `json:"p99Ms"`
	Max  float64 `json:"maxMs"`
	Mean float64 `json:"meanMs"`
}

// Summarise computes the percentiles of ds (nearest rank).
func Summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return ms(s[max(0, min(i, len(s)-1))])
	}
	return Latency{N: len(s), P50: rank(0.50), P95: rank(0.95), P99: rank(0.99), Max: ms(s[len(s)-1]),
		Mean: ms(sum / time.Duration(len(s)))}
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }

// round keeps n decimals, so the JSON stays readable.
func round(v float64, n int) float64 {
	p := math.Pow(10, float64(n))
	return math.Round(v*p) / p
}

// perSecond is count events over d.
func perSecond(count int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return round(float64(count)/d.Seconds(), 1)
}

// Sample is the raw outcome of one or more measured runs: every latency,
// the errors and the time taken. Samples of repeated runs add up.
type Sample struct {
	Latencies []time.Duration
	Errors    int
	Took      time.Duration
	// First is the first error seen, for the report when nothing worked.
	First error
}

// Add merges o into s.
func (s *Sample) Add(o Sample) {
	s.Latencies = append(s.Latencies, o.Latencies...)
	s.Errors += o.Errors
	s.Took += o.Took
	if s.First == nil {
		s.First = o.First
	}
}

// Figures summarises s.
func (s Sample) Figures() Figures {
	return Figures{Requests: len(s.Latencies), Errors: s.Errors, Seconds: round(s.Took.Seconds(), 2),
		PerSecond: perSecond(len(s.Latencies), s.Took), Latency: Summarise(s.Latencies)}
}

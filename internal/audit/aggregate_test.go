package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

type memRecorder struct {
	mu   sync.Mutex
	recs []Record
	fail bool
}

func (m *memRecorder) Record(_ context.Context, r Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("disk full")
	}
	m.recs = append(m.recs, r)
	return nil
}

func (m *memRecorder) all() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Record(nil), m.recs...)
}

func rejection(i int, kid, code string) Record {
	return Record{Event: EventDeadLettered, RequestID: fmt.Sprintf("msg-%d", i), Code: code, SenderKID: kid, Detail: "signature does not verify"}
}

// A flood costs one line per sender kid and reason per window, plus one
// summary with the count; the counts add up to every rejection.
func newAggregator(t *testing.T, rec Recorder, o AggregateOptions) *Aggregator {
	t.Helper()
	a, err := NewAggregator(rec, o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The config owns the window and the bound; a zero is a wiring mistake,
// refused rather than replaced by a value nobody chose.
func TestAggregatorRefusesZeroOptions(t *testing.T) {
	for _, o := range []AggregateOptions{{MaxKeys: 16}, {Interval: time.Minute}} {
		if a, err := NewAggregator(&memRecorder{}, o); err == nil {
			a.Close()
			t.Errorf("NewAggregator(%+v) succeeded; want an error", o)
		}
	}
}

func TestAggregatorBoundsLines(t *testing.T) {
	m := &memRecorder{}
	now := t0
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := newAggregator(t, m, AggregateOptions{Interval: time.Hour, MaxKeys: 4, Now: clock})
	ctx := context.Background()
	n := 0
	for i := range 1000 {
		kid := fmt.Sprintf("%016x", i%3)
		if err := a.Record(ctx, rejection(i, kid, "unauthenticated")); err != nil {
			t.Fatal(err)
		}
		n++
	}
	// Many claimed kids: beyond MaxKeys they share one window.
	for i := range 500 {
		if err := a.Record(ctx, rejection(i, fmt.Sprintf("f%015x", i), "unauthenticated")); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if got := len(m.all()); got != 4+1 {
		t.Fatalf("%d lines written during the window; want one per kid (3), one for a fourth, one for the rest", got)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if err := a.Record(ctx, rejection(9999, fmt.Sprintf("%016x", 0), "unauthenticated")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	total, summaries := 0, 0
	for _, r := range m.all() {
		if r.Count > 0 {
			summaries++
			total += r.Count
		} else {
			total++
		}
	}
	if total != n+1 {
		t.Fatalf("lines account for %d rejections; want %d", total, n+1)
	}
	if got := len(m.all()); got > 12 {
		t.Fatalf("%d lines for %d rejections", got, n+1)
	}
	if summaries == 0 {
		t.Fatal("no summary line")
	}
}

// A first line that cannot be written is an error (the caller withholds
// the settlement); a summary that cannot be written is kept and retried.
func TestAggregatorFailures(t *testing.T) {
	m := &memRecorder{fail: true}
	now := t0
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := newAggregator(t, m, AggregateOptions{Interval: 40 * time.Millisecond, MaxKeys: 16, Now: clock})
	defer a.Close()
	ctx := context.Background()
	if err := a.Record(ctx, rejection(0, "00", "malformed")); err == nil {
		t.Fatal("first line of a window accepted while the disk is full")
	}
	m.mu.Lock()
	m.fail = false
	m.mu.Unlock()
	for i := range 5 {
		if err := a.Record(ctx, rejection(i, "00", "malformed")); err != nil {
			t.Fatal(err)
		}
	}
	m.mu.Lock()
	m.fail = true
	m.mu.Unlock()
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	time.Sleep(100 * time.Millisecond) // flushes fail; the count is kept
	m.mu.Lock()
	m.fail = false
	m.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := m.all()
		if len(recs) == 2 && recs[1].Count == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records %+v; want the first line and a summary counting 4", recs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A kid that is not 16 hex digits is made up: all such rejections share
// one window, however many different ones a flood claims.
func TestAggregatorMadeUpKidsShareAWindow(t *testing.T) {
	m := &memRecorder{}
	a := newAggregator(t, m, AggregateOptions{Interval: time.Hour, MaxKeys: 16})
	ctx := context.Background()
	for i := range 100 {
		if err := a.Record(ctx, rejection(i, fmt.Sprintf("not-a-kid-%d", i), "unauthenticated")); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	recs := m.all()
	if len(recs) != 2 || recs[1].Count != 99 || recs[1].SenderKID != OtherSenders {
		t.Fatalf("records %+v; want a first line and a summary of 99 under %q", recs, OtherSenders)
	}
}
